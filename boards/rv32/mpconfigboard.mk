# The rv32 machine: MicroPython's qemu port on QEMU's RISC-V "virt" board (rv32imac,
# the ESP32-C3's instruction set plus atomics), built out of tree with this directory
# as BOARD_DIR (hsmtls board build --machine rv32; host/hsmtls/board/rv32.py). What an
# ESP32 image has and the port lacks is added here and in board.c, without editing the
# port: mbedTLS for hashlib, cryptolib and tls; os.urandom from a seeded DRBG; the
# board's flash; sleeping while it waits for the serial port.

QEMU_ARCH = riscv32
QEMU_MACHINE = virt

# (The ISA flags for GCC 12 are on make's command line: host/hsmtls/board/rv32.py.)

CFLAGS += -DQEMU_SOC_VIRT
CFLAGS += -DMICROPY_HW_MCU_NAME='"$(RV32_ARCH)"'
CFLAGS += -I$(BOARD_DIR) -include $(BOARD_DIR)/mpconfigboard.h

LDSCRIPT = mcu/rv32/virt.ld

SRC_BOARD_O += shared/runtime/gchelper_native.o shared/runtime/gchelper_rv32i.o
SRC_C += $(BOARD_DIR)/board.c shared/runtime/semihosting_rv32.c shared/timeutils/timeutils.c
SRC_QSTR += $(BOARD_DIR)/board.c

# The port's main.c has no board hooks, so board.c takes two calls main.c makes:
# gc_init (the heap size given at boot, and the board's set-up), mp_init (then the
# board boots: flash, main.py); and it replaces the port's fixed-LCG random bytes, its
# ticks_cpu() (0) and its spinning stdin with its own.
LDFLAGS += -Wl,--wrap=gc_init -Wl,--wrap=mp_init -Wl,--wrap=mp_hal_get_random -Wl,--wrap=mp_hal_ticks_cpu \
	-Wl,--wrap=mp_hal_stdin_rx_chr -Wl,--wrap=mp_hal_stdio_poll

# MicroPython's own TLS client, as on an ESP32: mbedTLS, which also gives hashlib
# (sha256, sha1) and cryptolib (AES ECB/CBC)
MICROPY_PY_SSL = 1
MICROPY_SSL_MBEDTLS = 1

# viper code for the ESP32-C3's ISA (no Zba there)
MPY_CROSS_FLAGS += -march=rv32imc

# the heap's upper bound; the machine's heap is set at boot (board.c, BOOT_BLOCK)
MICROPY_HEAP_SIZE ?= 1048576
