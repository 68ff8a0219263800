"""firmware/lib/board_port/esp32.py's own logic, under MicroPython, with the chip's
`machine`, `network` and `os.uname()` standing in for each ESP32 kind (no board here):
link mode at the fastest clock the chip takes (the C3 refuses 240 MHz), Ctrl-C off, the
radio on for a true RNG (and no failure without one, but HELLO then says the RNG is not
fully seeded), the BOOT button read for development mode, the window native USB allows,
and a HELLO that stays one frame and keeps the features the host decides by."""

from __future__ import annotations

import json

import pytest

from support.mp_run import requires_micropython, run_mp

CHIP = """
import sys
CHIP, MAX_MHZ, HAS_NETWORK = %r, %d, %r
calls = []
class Pin:
    IN, PULL_UP = 1, 2
    def __init__(self, n, mode, pull):
        calls.append(("pin", n))
    def value(self):
        return 1  # BOOT not held
class Machine:
    Pin = Pin
    _f = 160000000
    def freq(self, hz=None):
        if hz is None:
            return self._f
        if hz // 1000000 > MAX_MHZ:
            raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz or 160MHz")
        self._f = hz
        calls.append(("freq", hz))
sys.modules["machine"] = Machine()
class Uname:
    machine = "%%s module with %%s" %% (CHIP, CHIP)
import os as real_os
class Os:  # (board_port/__init__ also loads the unix port here, which needs the rest)
    def uname(self):
        return Uname()
    def __getattr__(self, name):
        return getattr(real_os, name)
sys.modules["os"] = Os()
if HAS_NETWORK:
    class WLAN:
        on = False
        def __init__(self, i):
            pass
        def active(self, on=None):
            if on is None:
                return WLAN.on
            WLAN.on = on
            calls.append(("radio", on))
    class Network:
        STA_IF = 0
    n = Network()
    n.WLAN = WLAN
    sys.modules["network"] = n
import micropython
class Micropython:  # the built-in module's attributes cannot be replaced
    const = micropython.const
    def kbd_intr(self, c):
        calls.append(("kbd_intr", c))
sys.modules["micropython"] = Micropython()
from board_port import esp32
esp32.setup()
info = esp32.info()
seeded, held = esp32.rng_seeded(), esp32.dev_button()
print(calls)
print(info["freq"], info["rx_window"], esp32.flash_path("ca.pem"), seeded, held)
# HELLO on such a board after a long uptime: one frame, the features kept
from boardapp.board import Board
from hsmlink.framing import MAX_PAYLOAD
b = Board(esp32)
b.dev = True  # (the longest HELLO)
b.sessions, b.aborted = 1234567, 123456
h = b.hello(4294967295)
print(len(h) <= MAX_PAYLOAD, h.decode())
"""


@pytest.mark.micropython
@requires_micropython
@pytest.mark.parametrize("chip,max_mhz,network,window", [
    ("ESP32", 240, True, 210),       # classic: UART0's 260-byte ring
    ("ESP32S3", 240, True, 2048),    # native USB holds the host back
    ("ESP32C3", 160, True, 2048),    # 160 MHz at most
    ("ESP32C3", 160, False, 2048),   # a build without network: still starts
])
def test_esp32_port_setup(chip, max_mhz, network, window):
    out = run_mp(CHIP % (chip, max_mhz, network)).strip().splitlines()
    calls, (freq, rx_window, path, rng, dev) = out[0], out[1].split()
    fits, hello = out[2].split(" ", 1)
    assert fits == "True", hello
    hello_info = json.loads(hello)
    assert hello_info["features"] == ["provision", "ecdsa", "autorun", "trust"] and hello_info["mpy"], hello_info
    assert hello_info["dev"] is True, hello_info
    # the RNG is truly random only with the radio on; BOOT is GPIO9 on the C3, else GPIO0
    assert rng == str(network) and dev == "False"
    assert f"('pin', {9 if chip == 'ESP32C3' else 0})" in calls
    assert int(freq) == max_mhz * 1_000_000 and int(rx_window) == window and path == "/ca.pem"
    assert f"('freq', {max_mhz * 1_000_000})" in calls
    assert "('kbd_intr', -1)" in calls  # Ctrl-C is data on the link
    assert ("('radio', True)" in calls) == network
