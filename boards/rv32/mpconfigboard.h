// The rv32 machine's additions to the qemu port's configuration (force-included in
// every C file by mpconfigboard.mk, ahead of the port's mpconfigport.h). Only what the
// port leaves undefined can be set here.
#ifndef HSMTLS_RV32_MPCONFIGBOARD_H
#define HSMTLS_RV32_MPCONFIGBOARD_H

// os.urandom, and random's seed, from board.c's DRBG
#define MICROPY_PY_OS_URANDOM (1)
#define MICROPY_PY_RANDOM_SEED_INIT_FUNC (rv32_random_u32())
unsigned int rv32_random_u32(void);

// select.poll and time.sleep wait here: the CPU sleeps until the UART has a byte or the
// timeout ends (board.c)
#define MICROPY_INTERNAL_WFE(TIMEOUT_MS) rv32_wfe(TIMEOUT_MS)
void rv32_wfe(int timeout_ms);

// mbedTLS's memory comes from the GC heap (there is no other heap), its entropy from
// mp_hal_get_random, its clock from board.c
#define MICROPY_MBEDTLS_CONFIG_BARE_METAL (1)
#define MICROPY_TRACKED_ALLOC (1)

#endif
