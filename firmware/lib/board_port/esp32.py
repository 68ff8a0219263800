# The ESP32 (classic, S2, S3, C3): USB serial REPL channel as the link. The RF is
# switched on so that os.urandom is a true RNG (ESP-IDF: esp_random() is only
# pseudo-random with Wi-Fi and BT off); the radio is not otherwise used, and HELLO
# says whether it is on (rng_seeded). MicroPython does not call
# bootloader_random_enable(), so without the radio nothing else seeds it: a build
# without `network` reports an RNG that is not fully seeded.
# The BOOT button held as main.py starts puts the board in development mode for that
# boot (the link then leaves for the REPL when asked): GPIO0 on the ESP32, S2 and S3,
# GPIO9 on the C3 and C6, low while pressed. Held through the reset itself it would
# select the ROM bootloader instead: press RESET, release it, then hold BOOT.


import os

import machine

from .common import (  # noqa: F401
    RING_WINDOW,
    Serial,
    board_info,
    disable_ctrl_c,
    enable_ctrl_c,
    ticks_diff,
    ticks_ms,
    ticks_us,
)

BOARD = "esp32"
RX_CHUNK = 256
# The S2/S3 (TinyUSB CDC) and C3 (USB-Serial/JTAG) hold the host back when the stdin
# ring is full; the classic ESP32's UART0 drops what overflows it.
_NATIVE_USB = any(c in os.uname().machine for c in ("ESP32S2", "ESP32S3", "ESP32C3", "ESP32C6"))


# the fastest clock the chip takes: 240 MHz (ESP32, S2, S3); the C3 and C6 stop at 160
# and refuse more with ValueError
CPU_HZ = (240000000, 160000000)


def setup():
    for hz in CPU_HZ:
        try:
            machine.freq(hz)
            break
        except ValueError:
            pass
    try:
        import network

        network.WLAN(network.STA_IF).active(True)
    except Exception:
        pass
    disable_ctrl_c()


def info():
    d = board_info(BOARD, 2048 if _NATIVE_USB else RING_WINDOW)
    d["freq"] = machine.freq()
    return d


def flash_path(name):
    return "/" + name


BOOT_PIN = 9 if any(c in os.uname().machine for c in ("ESP32C3", "ESP32C6")) else 0


def dev_button():
    try:
        return machine.Pin(BOOT_PIN, machine.Pin.IN, machine.Pin.PULL_UP).value() == 0
    except Exception:
        return False


def rng_seeded():
    try:
        import network

        return bool(network.WLAN(network.STA_IF).active())
    except Exception:
        return False


def leave_link_mode():
    enable_ctrl_c()


def restart():
    machine.reset()
