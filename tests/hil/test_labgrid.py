"""labgrid hands the plugin its board: the documented exporter and environment configs
parse as labgrid reads them, and `pytest --lg-env` with a NetworkSerialPort (what a
client holding a place gets: ser2net's RFC 2217 port) runs the example suite on an
emulated board behind ser2net. Skipped without labgrid (pip install labgrid)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support.hil import requires_emulator
from support.required_tools import requires_tool

pytest.importorskip("labgrid")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "examples"


def test_exporter_config_parses():
    from labgrid.remote.config import ResourceConfig
    from labgrid.resource import RawSerialPort

    data = ResourceConfig(str(DOCS / "labgrid" / "exporter.yaml")).data
    assert set(data) == {"esp32-devkitc-1", "esp32-devkitc-2"}
    assert data["esp32-devkitc-1"]["USBSerialPort"]["speed"] == 115200
    raw = RawSerialPort(target=None, name=None, **data["esp32-devkitc-2"]["RawSerialPort"])
    assert (raw.port, raw.speed) == ("/dev/ttyUSB1", 115200)


def test_environment_configs_parse():
    from labgrid.config import Config

    remote = Config(str(DOCS / "labgrid" / "env.yaml")).get_targets()
    assert remote["main"]["resources"]["RemotePlace"]["name"] == "esp32-devkitc-1"
    local = Config(str(DOCS / "labgrid" / "env-local.yaml")).get_targets()
    assert local["main"]["resources"]["NetworkSerialPort"]["protocol"] == "rfc2217"


def test_the_port_a_labgrid_target_gives():
    from labgrid import Environment

    from hsmtls.testing.labgrid import serial_port

    target = Environment(str(DOCS / "labgrid" / "env-local.yaml")).get_target("main")
    assert serial_port(target) == ("rfc2217://127.0.0.1:3001", 115200)


@pytest.mark.slow
@pytest.mark.micropython
@requires_emulator
@requires_tool("ser2net")
@requires_tool("softhsm2")
def test_example_suite_through_labgrid(tmp_path):
    from hsmtls.board.emulator import EmulatedBoard
    from hsmtls.testing.ser2net import Ser2net

    work = tmp_path / "hil"
    shutil.copytree(DOCS / "hil", work)
    env = (DOCS / "labgrid" / "env-local.yaml").read_text()
    with EmulatedBoard(tmp_path / "flash", heap="320k", mpy=True) as board, Ser2net(board.tty) as exporter:
        (work / "env.yaml").write_text(env.replace("port: 3001", f"port: {exporter.port}"))
        out = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:hypothesispytest",
                              "--lg-env", "env.yaml"], cwd=work, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "hsmtls: board emulator on the labgrid target's port" in out.stdout
    assert "5 passed" in out.stdout
