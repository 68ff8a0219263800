# The ESP32 (classic, S2, S3, C3): USB serial REPL channel as the link. The RF is
# switched on so that os.urandom is a true RNG (ESP-IDF: esp_random() is only
# pseudo-random with Wi-Fi and BT off); the radio is not otherwise used.


import machine

from .common import Serial, board_info, disable_ctrl_c, enable_ctrl_c, ticks_diff, ticks_ms  # noqa: F401

BOARD = "esp32"


def setup():
    machine.freq(240000000)
    try:
        import network

        network.WLAN(network.STA_IF).active(True)
    except Exception:
        pass
    disable_ctrl_c()


def info():
    d = board_info(BOARD)
    d["freq"] = machine.freq()
    return d


def flash_path(name):
    return "/" + name


def leave_link_mode():
    enable_ctrl_c()
