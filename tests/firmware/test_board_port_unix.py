"""board_port/unix.py, the emulated board's serial port: read as an ESP32 reads its UART."""

from __future__ import annotations

import os

from support.mp_run import requires_micropython, run_mp


@requires_micropython
def test_the_emulator_reads_at_most_256_bytes_at_a_time(monkeypatch):
    # an ESP32 takes its UART ring 256 bytes a read (board_port/esp32.py); the emulator
    # read 1024, so its board held a bigger buffer and made fewer passes per burst
    monkeypatch.setitem(os.environ, "HSMTLS_PTY_VMIN0", "1")
    out = run_mp("import board_port.unix as u\nprint('CHUNK', u.RX_CHUNK, u.Serial.chunked)\n")
    assert "CHUNK 256 True" in out, out
