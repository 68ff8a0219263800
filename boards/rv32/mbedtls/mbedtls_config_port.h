// mbedTLS for the rv32 machine: bare metal (memory from the GC heap, entropy from
// mp_hal_get_random), with certificate dates checked against the virt machine's
// real-time clock (board.c).
#ifndef HSMTLS_RV32_MBEDTLS_CONFIG_PORT_H
#define HSMTLS_RV32_MBEDTLS_CONFIG_PORT_H

#include <time.h>
time_t rv32_rtc_time(time_t *timer);
#define MBEDTLS_PLATFORM_TIME_MACRO rv32_rtc_time
#define MBEDTLS_PLATFORM_MS_TIME_ALT
// the C library's gmtime() needs a reentrancy struct bare metal does not set up
#define MBEDTLS_PLATFORM_GMTIME_R_ALT

#include "extmod/mbedtls/mbedtls_config_common.h"

#endif
