// The rv32 machine's board support: what an ESP32 gives the firmware and MicroPython's
// qemu port, on QEMU's RISC-V virt machine, does not.
//
// * Boot block: the host (host/hsmtls/board/rv32.py) has QEMU's generic loader place
//   BOOT_BLOCK in RAM at every boot: the heap size for this boot, whether to run
//   main.py, and 32 bytes of fresh host entropy.
// * Random numbers: the virt machine has no hardware RNG and the port's
//   mp_hal_get_random is a fixed LCG (the same bytes every boot). The seed from the
//   boot block keys a ChaCha20 generator with fast key erasure (each refill's first
//   32 bytes become the next key; bytes handed out are wiped). This is the emulator's
//   stand-in for the ESP32's hardware RNG: os.urandom, random's seed and mbedTLS's
//   entropy all come from it. Without a seed it refuses rather than repeat itself.
// * Time: QEMU runs with -icount shift=0, so the clock advances 1 ns per instruction
//   executed, and, while the CPU sleeps in rv32_wfe (waiting for the UART or a
//   timeout), by the real time slept. time.ticks_cpu() is the first part only: the
//   board's instructions in thousands (µs at 1 ns each), the same on every run.
// * Serial port: the UART's receive side read a burst at a time into a ring (below),
//   and waited for asleep.
// * Flash: a directory on the host (QEMU's working directory) through semihosting,
//   the `hostfs` module below; board_port/qemu.py mounts it as a VFS at /.
// * Boot: after the runtime starts, the frozen _boot.py (the flash), then main.py.
//
// The port's main.c has no board hooks, so the linker hands us its calls to gc_init
// and mp_init, and replaces mp_hal_get_random and mp_hal_ticks_cpu (mpconfigboard.mk).

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "py/gc.h"
#include "py/mperrno.h"
#include "py/mphal.h"
#include "py/runtime.h"
#include "py/stream.h"
#include "shared/runtime/pyexec.h"
#include "shared/runtime/semihosting_rv32.h"
#include "uart.h"

// --- the virt machine's devices (QEMU hw/riscv/virt.c) ---------------------------------

#define REG32(a) (*(volatile uint32_t *)(a))
#define RTC_BASE 0x00101000u // goldfish RTC: host time in ns
#define CLINT_MTIMECMP 0x02004000u // hart 0
#define CLINT_MTIME 0x0200bff8u // 10 MHz
#define PLIC_BASE 0x0c000000u
#define PLIC_ENABLE_M (PLIC_BASE + 0x2000u) // context 0: hart 0, M mode
#define PLIC_THRESHOLD_M (PLIC_BASE + 0x200000u)
#define PLIC_CLAIM_M (PLIC_BASE + 0x200004u)
#define UART0_IRQ 10
#define UART0_IER 0x10000001u
#define UART0_FCR 0x10000002u
#define MIE_MTIE (1u << 7)
#define MIE_MEIE (1u << 11)
#define MTIME_PER_MS 10000u

// --- the boot block -------------------------------------------------------------------

// Outside everything the image uses (virt.ld: ROM 4 MiB, RAM 2 MiB, stack 64 KiB from
// 0x80000000) and inside the machine's 128 MiB of RAM.
#define BOOT_BLOCK 0x80800000u
#define BOOT_MAGIC 0x544d5348u // "HSMT"
#define BOOT_NO_MAIN 1u // flags: the REPL, not main.py (a board that left link mode)
// (flag 2 is board_port/qemu.py's: the host's end holds it back, no 260-byte ring)

typedef struct {
    uint32_t magic;
    uint32_t heap; // bytes; 0: all the image has
    uint32_t flags;
    uint32_t reserved;
    uint8_t seed[32];
} boot_block_t;

static uint32_t boot_flags;

// --- random numbers ---------------------------------------------------------------------

#define ROTL(a, b) (((a) << (b)) | ((a) >> (32 - (b))))
#define QR(a, b, c, d) ( \
    a += b, d ^= a, d = ROTL(d, 16), \
    c += d, b ^= c, b = ROTL(b, 12), \
    a += b, d ^= a, d = ROTL(d, 8), \
    c += d, b ^= c, b = ROTL(b, 7))

static uint32_t drbg_key[8];
static uint8_t drbg_pool[96];
static size_t drbg_avail;
static bool drbg_seeded;

static void chacha20_block(uint32_t out[16], const uint32_t key[8], uint32_t counter) {
    uint32_t in[16] = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
    memcpy(&in[4], key, 32);
    in[12] = counter;
    uint32_t x[16];
    memcpy(x, in, sizeof(x));
    for (int i = 0; i < 10; ++i) {
        QR(x[0], x[4], x[8], x[12]);
        QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]);
        QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]);
        QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]);
        QR(x[3], x[4], x[9], x[14]);
    }
    for (int i = 0; i < 16; ++i) {
        out[i] = x[i] + in[i];
    }
}

static void drbg_refill(void) {
    uint32_t block[32];
    chacha20_block(block, drbg_key, 0);
    chacha20_block(block + 16, drbg_key, 1);
    memcpy(drbg_key, block, 32); // the next key: the old one is gone
    memcpy(drbg_pool, (uint8_t *)block + 32, sizeof(drbg_pool));
    memset(block, 0, sizeof(block));
    drbg_avail = sizeof(drbg_pool);
}

void __wrap_mp_hal_get_random(size_t n, uint8_t *buf) {
    if (!drbg_seeded) {
        mp_raise_msg(&mp_type_OSError, MP_ERROR_TEXT("no RNG seed: start the board with hsmtls board emulate"));
    }
    while (n) {
        if (!drbg_avail) {
            drbg_refill();
        }
        size_t k = n < drbg_avail ? n : drbg_avail;
        uint8_t *src = drbg_pool + sizeof(drbg_pool) - drbg_avail;
        memcpy(buf, src, k);
        memset(src, 0, k);
        drbg_avail -= k;
        buf += k;
        n -= k;
    }
}

unsigned int rv32_random_u32(void) {
    uint32_t r;
    __wrap_mp_hal_get_random(sizeof(r), (uint8_t *)&r);
    return r;
}

// --- time -----------------------------------------------------------------------------------

static uint64_t mtime(void) {
    uint32_t hi, lo;
    do {
        hi = REG32(CLINT_MTIME + 4);
        lo = REG32(CLINT_MTIME);
    } while (hi != REG32(CLINT_MTIME + 4));
    return ((uint64_t)hi << 32) | lo;
}

static void set_mtimecmp(uint64_t t) {
    REG32(CLINT_MTIMECMP + 4) = 0xffffffff; // no interrupt while the halves disagree
    REG32(CLINT_MTIMECMP) = (uint32_t)t;
    REG32(CLINT_MTIMECMP + 4) = (uint32_t)(t >> 32);
}

static uint64_t slept; // mtime ticks spent in wfi

// Sleep until the UART has a byte or `ticks` of mtime (-1: no limit) have passed;
// -> whether a byte came. Nothing is taken as a trap (interrupts stay off globally):
// wfi only waits for them. The time asleep is not the board's work (ticks_cpu).
static bool sleep_for_rx(int64_t ticks) {
    if (uart_rx_any()) {
        return true;
    }
    uint64_t t0 = mtime();
    uint32_t mie = MIE_MEIE;
    if (ticks >= 0) {
        set_mtimecmp(t0 + (uint64_t)ticks);
        mie |= MIE_MTIE;
    }
    __asm volatile ("csrc mstatus, 8");
    __asm volatile ("csrw mie, %0" : : "r" (mie));
    if (!uart_rx_any()) {
        __asm volatile ("wfi");
    }
    __asm volatile ("csrw mie, zero");
    uint32_t irq = REG32(PLIC_CLAIM_M);
    if (irq) {
        REG32(PLIC_CLAIM_M) = irq;
    }
    set_mtimecmp(UINT64_MAX);
    slept += mtime() - t0;
    return uart_rx_any();
}

// --- the serial port's receive side ----------------------------------------------------------
//
// What the host sends arrives through QEMU 16 bytes at a time (the UART's FIFO),
// refilled as the board reads it, as fast as the host process happens to run. So that
// the board's work per byte received does not depend on that (an instruction count
// that changes from run to run), a read takes a whole burst: the UART is drained into
// a 256-byte ring (an ESP32's stdin ring is 260) until it stays quiet for RX_QUIET,
// asleep meanwhile. rv32.uart_readinto() hands out what the ring holds in one call.

#define RX_RING 256
#define RX_QUIET (MTIME_PER_MS / 4) // 250 µs of the host not sending: the burst is over

static uint8_t rx_ring[RX_RING];
static size_t rx_head, rx_count;

static void rx_take_burst(void) {
    for (;;) {
        while (rx_count < RX_RING && uart_rx_any()) {
            rx_ring[(rx_head + rx_count++) % RX_RING] = uart_rx_chr();
        }
        if (rx_count == RX_RING || !sleep_for_rx(RX_QUIET)) {
            return;
        }
    }
}

static int rx_take(void) {
    int c = rx_ring[rx_head];
    rx_head = (rx_head + 1) % RX_RING;
    --rx_count;
    return c;
}

// select.poll's (and time.sleep's) wait: until the host sends or the timeout ends
void rv32_wfe(int timeout_ms) {
    if (rx_count) {
        return;
    }
    if (sleep_for_rx(timeout_ms >= 0 ? (int64_t)timeout_ms * MTIME_PER_MS : -1)) {
        rx_take_burst();
    }
}

uintptr_t __real_mp_hal_stdio_poll(uintptr_t poll_flags);
uintptr_t __wrap_mp_hal_stdio_poll(uintptr_t poll_flags) {
    uintptr_t ret = __real_mp_hal_stdio_poll(poll_flags);
    if ((poll_flags & MP_STREAM_POLL_RD) && rx_count) {
        ret |= MP_STREAM_POLL_RD;
    }
    return ret;
}

// sys.stdin and the REPL: the ring first; asleep, not spinning, while nothing comes
int __wrap_mp_hal_stdin_rx_chr(void) {
    for (;;) {
        if (rx_count) {
            return rx_take();
        }
        if (uart_rx_any()) {
            return uart_rx_chr();
        }
        sleep_for_rx(-1);
    }
}

// time.ticks_cpu(): the instructions executed, in thousands, sleep left out
mp_uint_t __wrap_mp_hal_ticks_cpu(void) {
    return (mp_uint_t)((mtime() - slept) / (MTIME_PER_MS / 1000));
}

// mbedTLS's clock, for certificate dates: the host's time (the virt machine's RTC)
time_t rv32_rtc_time(time_t *timer) {
    uint32_t lo = REG32(RTC_BASE); // reading the low half latches the high half
    uint32_t hi = REG32(RTC_BASE + 4);
    time_t t = (time_t)((((uint64_t)hi << 32) | lo) / 1000000000u);
    if (timer) {
        *timer = t;
    }
    return t;
}

#include "mbedtls/platform_time.h"
#include "mbedtls/platform_util.h"
#include "shared/timeutils/timeutils.h"

mbedtls_ms_time_t mbedtls_ms_time(void) {
    return mp_hal_ticks_ms();
}

struct tm *mbedtls_platform_gmtime_r(const mbedtls_time_t *tt, struct tm *tm_buf) {
    timeutils_struct_time_t t;
    timeutils_seconds_since_1970_to_struct_time(*tt, &t);
    memset(tm_buf, 0, sizeof(*tm_buf));
    tm_buf->tm_year = t.tm_year - 1900;
    tm_buf->tm_mon = t.tm_mon - 1;
    tm_buf->tm_mday = t.tm_mday;
    tm_buf->tm_hour = t.tm_hour;
    tm_buf->tm_min = t.tm_min;
    tm_buf->tm_sec = t.tm_sec;
    tm_buf->tm_wday = (t.tm_wday + 1) % 7; // struct tm counts from Sunday
    tm_buf->tm_yday = t.tm_yday - 1;
    return tm_buf;
}

// --- set-up and boot ------------------------------------------------------------------------

void __real_gc_init(void *start, void *end);
void __real_mp_init(void);

// main.c's first call: the board's set-up, then the heap this boot asks for
void __wrap_gc_init(void *start, void *end) {
    volatile boot_block_t *boot = (volatile boot_block_t *)BOOT_BLOCK;
    if (boot->magic == BOOT_MAGIC) {
        memcpy(drbg_key, (const void *)boot->seed, 32);
        drbg_seeded = true;
        boot_flags = boot->flags;
        size_t heap = boot->heap & ~(size_t)15;
        if (heap && heap < (size_t)((char *)end - (char *)start)) {
            end = (char *)start + heap;
        }
        memset((void *)boot, 0, sizeof(*boot)); // the seed lives on only in the DRBG
    }
    // the UART's receive interrupt wakes wfi (rv32_wfe) through the PLIC
    REG32(PLIC_BASE + 4 * UART0_IRQ) = 1;
    REG32(PLIC_ENABLE_M) = 1u << UART0_IRQ;
    REG32(PLIC_THRESHOLD_M) = 0;
    *(volatile uint8_t *)UART0_FCR = 0x07; // FIFO on and empty, an interrupt per byte
    *(volatile uint8_t *)UART0_IER = 1;
    set_mtimecmp(UINT64_MAX);
    __real_gc_init(start, end);
}

// after every (soft) reset, once the runtime is up: the flash, then the firmware
void __wrap_mp_init(void) {
    __real_mp_init();
    pyexec_frozen_module("_boot.py", false);
    if (pyexec_mode_kind == PYEXEC_MODE_FRIENDLY_REPL && !(boot_flags & BOOT_NO_MAIN)) {
        // main.py leaves link mode for the REPL when the host asks; if it dies instead
        // (a heap too small to start it), the machine stops, with the traceback on the
        // serial port, as the unix port's process does: the emulator says why
        if (pyexec_file_if_exists("main.py") == 0) {
            exit(1);
        }
    }
}

// --- hostfs: the flash directory on the host, through semihosting --------------------------

// (__noreturn__: semihosting_rv32.h brings stdnoreturn.h, whose `noreturn` breaks MP_NORETURN)
__attribute__((__noreturn__)) static void hostfs_error(void) {
    int e = mp_semihosting_errno();
    mp_raise_OSError(e > 0 ? e : MP_EIO);
}

static mp_obj_t hostfs_open(mp_obj_t path, mp_obj_t mode) {
    int h = mp_semihosting_open(mp_obj_str_get_str(path), mp_obj_str_get_str(mode));
    if (h < 0) {
        hostfs_error();
    }
    return MP_OBJ_NEW_SMALL_INT(h);
}
static MP_DEFINE_CONST_FUN_OBJ_2(hostfs_open_obj, hostfs_open);

static mp_obj_t hostfs_close(mp_obj_t h) {
    mp_semihosting_close(mp_obj_get_int(h));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(hostfs_close_obj, hostfs_close);

static mp_obj_t hostfs_readinto(mp_obj_t h, mp_obj_t buf) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(buf, &b, MP_BUFFER_WRITE);
    int left = mp_semihosting_read(mp_obj_get_int(h), b.buf, b.len);
    if (left < 0 || (size_t)left > b.len) {
        hostfs_error();
    }
    return MP_OBJ_NEW_SMALL_INT(b.len - left);
}
static MP_DEFINE_CONST_FUN_OBJ_2(hostfs_readinto_obj, hostfs_readinto);

static mp_obj_t hostfs_write(mp_obj_t h, mp_obj_t buf) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(buf, &b, MP_BUFFER_READ);
    int left = mp_semihosting_write(mp_obj_get_int(h), b.buf, b.len);
    if (left != 0) {
        hostfs_error();
    }
    return MP_OBJ_NEW_SMALL_INT(b.len);
}
static MP_DEFINE_CONST_FUN_OBJ_2(hostfs_write_obj, hostfs_write);

static mp_obj_t hostfs_flen(mp_obj_t h) {
    int n = mp_semihosting_flen(mp_obj_get_int(h));
    if (n < 0) {
        hostfs_error();
    }
    return MP_OBJ_NEW_SMALL_INT(n);
}
static MP_DEFINE_CONST_FUN_OBJ_1(hostfs_flen_obj, hostfs_flen);

static mp_obj_t hostfs_remove(mp_obj_t path) {
    if (mp_semihosting_remove(mp_obj_str_get_str(path)) != 0) {
        hostfs_error();
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(hostfs_remove_obj, hostfs_remove);

static mp_obj_t hostfs_rename(mp_obj_t old, mp_obj_t new) {
    if (mp_semihosting_rename(mp_obj_str_get_str(old), mp_obj_str_get_str(new)) != 0) {
        hostfs_error();
    }
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(hostfs_rename_obj, hostfs_rename);

// rv32.uart_readinto(buf) -> n: what the host has sent, a burst at a time (never waits
// for a first byte)
static mp_obj_t rv32_uart_readinto(mp_obj_t buf) {
    mp_buffer_info_t b;
    mp_get_buffer_raise(buf, &b, MP_BUFFER_WRITE);
    if (!rx_count && uart_rx_any()) {
        rx_take_burst();
    }
    size_t n = 0;
    while (n < b.len && rx_count) {
        ((uint8_t *)b.buf)[n++] = rx_take();
    }
    return MP_OBJ_NEW_SMALL_INT(n);
}
static MP_DEFINE_CONST_FUN_OBJ_1(rv32_uart_readinto_obj, rv32_uart_readinto);

// the boot block's flags, for board_port/qemu.py
static mp_obj_t rv32_boot_flags(void) {
    return MP_OBJ_NEW_SMALL_INT(boot_flags);
}
static MP_DEFINE_CONST_FUN_OBJ_0(rv32_boot_flags_obj, rv32_boot_flags);

// the module `rv32`: the flash's files (fs_*) and the boot flags
static const mp_rom_map_elem_t hostfs_globals_table[] = {
    { MP_ROM_QSTR(MP_QSTR_boot_flags), MP_ROM_PTR(&rv32_boot_flags_obj) },
    { MP_ROM_QSTR(MP_QSTR_uart_readinto), MP_ROM_PTR(&rv32_uart_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR___name__), MP_ROM_QSTR(MP_QSTR_rv32) },
    { MP_ROM_QSTR(MP_QSTR_fs_open), MP_ROM_PTR(&hostfs_open_obj) },
    { MP_ROM_QSTR(MP_QSTR_fs_close), MP_ROM_PTR(&hostfs_close_obj) },
    { MP_ROM_QSTR(MP_QSTR_fs_readinto), MP_ROM_PTR(&hostfs_readinto_obj) },
    { MP_ROM_QSTR(MP_QSTR_fs_write), MP_ROM_PTR(&hostfs_write_obj) },
    { MP_ROM_QSTR(MP_QSTR_fs_flen), MP_ROM_PTR(&hostfs_flen_obj) },
    { MP_ROM_QSTR(MP_QSTR_fs_remove), MP_ROM_PTR(&hostfs_remove_obj) },
    { MP_ROM_QSTR(MP_QSTR_fs_rename), MP_ROM_PTR(&hostfs_rename_obj) },
};
static MP_DEFINE_CONST_DICT(hostfs_globals, hostfs_globals_table);

const mp_obj_module_t rv32_module = {
    .base = { &mp_type_module },
    .globals = (mp_obj_dict_t *)&hostfs_globals,
};
MP_REGISTER_MODULE(MP_QSTR_rv32, rv32_module);
