"""Board definitions (boards/*.toml) and the exact esptool/mpy-cross/mpremote command lines."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import pytest

from hsmtls.board.boards import BoardError, all_boards, detect, get_board, load_board
from hsmtls.board.tools import (
    FROZEN_IMPORT_CHECK_SCRIPT,
    HANDSHAKE_HEAP,
    IMPORT_CHECK_SCRIPT,
    ToolError,
    check_abi,
    esptool_argv,
    explain_esptool,
    import_check,
    mpremote_copy_argv,
    mpremote_exec_argv,
    mpremote_reset_argv,
    mpremote_romfs_argv,
    mpy_cross_argv,
    remote_dirs,
)

from support.required_tools import require_tool

EXPECTED = {
    # name: (chip, offset, arch, arch code, serial, rx drops, a USB id)
    "esp32-devkitc": ("esp32", 0x1000, "xtensawin", 10, "uart0", True, (0x10C4, 0xEA60)),
    "esp32s3-devkitc-1": ("esp32s3", 0x0, "xtensawin", 10, "usb-serial-jtag", False, (0x303A, 0x1001)),
    "esp32c3-devkitm-1": ("esp32c3", 0x0, "rv32imc", 11, "usb-serial-jtag", False, (0x303A, 0x1001)),
    "emulator": ("none", 0x0, "x64", 2, "pty", True, None),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_board_definition(name):
    b = get_board(name)
    chip, offset, arch, code, serial, drops, usb = EXPECTED[name]
    assert (b.chip, b.flash_offset, b.mpy_arch, b.mpy_arch_code, b.serial, b.rx_drops) == (
        chip, offset, arch, code, serial, drops)
    assert b.heap > 0 and b.baud == 115200
    if usb:
        assert usb in b.usb
    assert b.emulated == (name == "emulator")


def test_devkitc_usb_bridges():
    ids = set(get_board("esp32-devkitc").usb)
    assert {(0x10C4, 0xEA60), (0x1A86, 0x7523), (0x1A86, 0x55D4), (0x0403, 0x6001)} <= ids


def test_chip_alias_and_unknown_board():
    assert get_board("esp32s3").name == "esp32s3-devkitc-1"
    with pytest.raises(BoardError, match="unknown board"):
        get_board("nope")


def test_adding_a_board_is_adding_a_file(tmp_path):
    for p in Path(get_board("emulator").path).parent.glob("*.toml"):
        (tmp_path / p.name).write_text(p.read_text())
    (tmp_path / "my-s2.toml").write_text(
        'name = "my-s2"\ntitle = "S2 mini"\nchip = "esp32s2"\nflash_offset = 0x1000\nbaud = 115200\n'
        'usb = ["303a:0002"]\nheap = 150000\nserial = "usb-cdc"\nrx_drops = false\nmpy_arch = "xtensawin"\n'
        'mpy_arch_code = 10\n')
    assert "my-s2" in all_boards(tmp_path)
    ports = [SimpleNamespace(device="/dev/ttyACM3", vid=0x303A, pid=0x0002, description="S2"),
             SimpleNamespace(device="/dev/ttyS0", vid=None, pid=None, description="n/a")]
    found = detect(tmp_path, ports)
    assert [(f.device, f.boards) for f in found] == [("/dev/ttyACM3", ["my-s2"])]


def test_bad_board_file(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text('name = "x"\n')
    with pytest.raises(BoardError, match="missing"):
        load_board(p)


def test_detect_names_every_candidate():
    ports = [SimpleNamespace(device="/dev/ttyUSB0", vid=0x10C4, pid=0xEA60, description="CP2102"),
             SimpleNamespace(device="/dev/ttyACM0", vid=0x303A, pid=0x1001, description="USB JTAG/serial")]
    found = {f.device: f.boards for f in detect(ports=ports)}
    assert "esp32-devkitc" in found["/dev/ttyUSB0"]
    assert found["/dev/ttyACM0"] == ["esp32c3-devkitm-1", "esp32s3-devkitc-1"]


@pytest.mark.parametrize("name,port,offset", [("esp32-devkitc", "/dev/ttyUSB0", "0x1000"),
                                              ("esp32s3-devkitc-1", "/dev/ttyACM0", "0x0"),
                                              ("esp32c3-devkitm-1", "/dev/ttyACM0", "0x0")])
def test_esptool_invocation(name, port, offset):
    b = get_board(name)
    runs = esptool_argv(b, port, "fw.bin", erase=True)
    assert runs == [
        ["esptool", "--chip", b.chip, "--port", port, "erase-flash"],
        ["esptool", "--chip", b.chip, "--port", port, "--baud", "460800", "write-flash", offset, "fw.bin"],
    ]
    assert esptool_argv(b, port, "fw.bin") == runs[1:]


def test_emulator_has_nothing_to_flash():
    assert esptool_argv(get_board("emulator"), "/dev/pts/3", "fw.bin", erase=True) == []


def test_esptool_errors_are_one_line_with_the_fix():
    b = get_board("esp32-devkitc")
    wrong = "A fatal error occurred: This chip is ESP32-S3, not ESP32. Wrong --chip argument?"
    assert "has ESP32-S3, not esp32" in explain_esptool(wrong, b, "/dev/ttyUSB0")
    busy = "could not open port /dev/ttyUSB0: [Errno 16] Device or resource busy: '/dev/ttyUSB0'"
    assert "is busy" in explain_esptool(busy, b, "/dev/ttyUSB0")
    # esptool 5 on a port that is not there (its own words name both causes)
    missing = ("ERROR: A fatal error occurred: Could not open /dev/ttyUSB0, the port is busy or doesn't exist.\n"
               "([Errno 2] could not open port /dev/ttyUSB0: [Errno 2] No such file or directory: '/dev/ttyUSB0')")
    assert "is the board plugged in" in explain_esptool(missing, b, "/dev/ttyUSB0")
    busy5 = ("ERROR: A fatal error occurred: Could not open /dev/ttyUSB0, the port is busy or doesn't exist.\n"
             "([Errno 16] could not open port /dev/ttyUSB0: [Errno 16] Device or resource busy: '/dev/ttyUSB0')")
    assert "is busy" in explain_esptool(busy5, b, "/dev/ttyUSB0")


@pytest.mark.parametrize("command", [["flash", "--image", "{image}"], ["deploy"]])
def test_a_port_that_is_not_there_is_named_before_any_tool_runs(command, tmp_path):
    from click.testing import CliRunner

    from hsmtls.cli.board import board

    image = tmp_path / "fw.bin"
    image.write_bytes(b"\0")
    args = [a.format(image=image) for a in command] + ["--board", "esp32-devkitc", "--port", "/dev/ttyNOPE9"]
    r = CliRunner().invoke(board, args)
    assert r.exit_code == 1
    assert "no serial port /dev/ttyNOPE9: is the board plugged in?" in r.output


@pytest.mark.parametrize("name,march", [("esp32-devkitc", "-march=xtensawin"), ("esp32s3-devkitc-1", "-march=xtensawin"),
                                        ("esp32c3-devkitm-1", "-march=rv32imc"), ("emulator", "-march=x64")])
def test_mpy_cross_invocation(name, march):
    argv = mpy_cross_argv(get_board(name), Path("lib/tlscore/ghash.py"), Path("out/lib/tlscore/ghash.mpy"))
    assert argv == ["mpy-cross", march, "-o", "out/lib/tlscore/ghash.mpy", "lib/tlscore/ghash.py"]


def test_mpremote_invocations():
    files = {"main.py": Path("fw/main.py"), "lib/tlscore/x509.mpy": Path("b/lib/tlscore/x509.mpy")}
    assert mpremote_copy_argv("/dev/ttyUSB0", files) == [
        "mpremote", "connect", "/dev/ttyUSB0", "resume",
        "fs", "cp", "b/lib/tlscore/x509.mpy", ":lib/tlscore/x509.mpy", "+", "fs", "cp", "fw/main.py", ":main.py"]
    assert mpremote_exec_argv("/dev/ttyACM0", "print(1)") == [
        "mpremote", "connect", "/dev/ttyACM0", "resume", "exec", "print(1)"]
    # a fresh interpreter (mpremote soft-resets in the raw REPL, where main.py is not run)
    assert mpremote_exec_argv("/dev/ttyACM0", "print(1)", soft_reset=True) == [
        "mpremote", "connect", "/dev/ttyACM0", "soft-reset", "exec", "print(1)"]
    assert mpremote_reset_argv("/dev/ttyACM0") == ["mpremote", "connect", "/dev/ttyACM0", "resume", "reset"]
    assert remote_dirs(files) == ["lib", "lib/tlscore"]


@pytest.mark.parametrize("name,real", [("esp32-devkitc", True), ("emulator", False)])
def test_deploy_checks_the_import_in_a_fresh_interpreter_then_resets(name, real, monkeypatch, tmp_path):
    # On a real board main.py imported the old firmware before it left link mode: the
    # import check runs after a soft reset (else it measures and runs that old code),
    # and the board is reset into the new firmware at the end. The emulator's REPL is
    # fresh and has no reset. (mpremote's runs recorded; what they print, canned.)
    import hashlib

    from hsmtls.board import FIRMWARE, tools

    main_hash = hashlib.sha256((FIRMWARE / "main.py").read_bytes()).hexdigest()
    runs: list[list[str]] = []

    def fake_mpremote(argv: list[str]) -> str:
        runs.append(argv)
        script = argv[-1]
        if "HASHES" in script:
            return 'HASHES{"main.py": "%s"}\n' % main_hash
        if "import boardapp.board" in script:
            return "IMPORTED 52000 60000 boardapp/board.py\n"
        return ""

    monkeypatch.setattr(tools, "_mpremote", fake_mpremote)
    monkeypatch.setattr(tools, "tool", lambda name, module: [name])
    log: list[str] = []
    tools.deploy(get_board(name), "/dev/ttyX", tmp_path, None, log.append, frozen=True)
    check = [r for r in runs if "import boardapp.board" in r[-1]]
    assert len(check) == 1 and check[0][3] == ("soft-reset" if real else "resume"), runs
    assert all(r[3] == "resume" for r in runs if r is not check[0])  # nothing else resets the board
    assert (runs[-1] == tools.mpremote_reset_argv("/dev/ttyX", ["mpremote"])) == real, runs
    assert ("the board restarts into the firmware (link mode)" in log) == real, log


def test_deploy_leaves_the_board_in_the_mode_asked_for(monkeypatch, tmp_path):
    import hashlib

    from hsmtls.board import FIRMWARE, tools

    main_hash = hashlib.sha256((FIRMWARE / "main.py").read_bytes()).hexdigest()
    runs: list[str] = []

    def fake_mpremote(argv: list[str]) -> str:
        runs.append(argv[-1])
        if "HASHES" in argv[-1]:
            return 'HASHES{"main.py": "%s"}\n' % main_hash
        if "import boardapp.board" in argv[-1]:
            return "IMPORTED 52000 60000 boardapp/board.py\n"
        return "MODE dev\n" if "MODE dev" in argv[-1] else ""

    monkeypatch.setattr(tools, "_mpremote", fake_mpremote)
    monkeypatch.setattr(tools, "tool", lambda name, module: [name])
    log: list[str] = []
    tools.deploy(get_board("esp32-devkitc"), "/dev/ttyX", tmp_path, None, log.append, frozen=True, mode="dev")
    assert tools.MODE_SCRIPTS["dev"] in runs and any("development mode" in x for x in log), (runs, log)
    runs.clear()
    tools.deploy(get_board("esp32-devkitc"), "/dev/ttyX", tmp_path, None, log.append, frozen=True)
    assert not any("MODE" in r for r in runs)
    with pytest.raises(ToolError, match="did not take production mode"):
        tools.deploy(get_board("esp32-devkitc"), "/dev/ttyX", tmp_path, None, log.append, frozen=True,
                     mode="production")


def test_the_build_bakes_its_time_into_the_firmware(monkeypatch):
    from hsmtls.board import FIRMWARE_LIB, tools

    source = (FIRMWARE_LIB / "boardapp" / "__init__.py").read_text()
    constant = int(tools.BUILD_TIME_LINE.search(source).group(1))
    monkeypatch.setenv("SOURCE_DATE_EPOCH", str(constant + 86400))
    assert tools.build_time() == constant + 86400
    baked = tools.with_build_time(source, tools.build_time())
    assert f"\nBUILD_TIME = {constant + 86400}  # baked by hsmtls board deploy\n" in baked
    assert baked.count("\n") == source.count("\n")
    # never earlier than the constant the sources hold
    assert tools.with_build_time(source, constant - 1) == source


def test_mpy_abi_check():
    # sys.implementation._mpy: version | sub-version << 8 | arch << 10
    check_abi(get_board("emulator"), 2822, (6, 3))  # the pip unix build
    check_abi(get_board("esp32-devkitc"), 6 | 3 << 8 | 10 << 10, (6, 3))
    with pytest.raises(ToolError, match="architecture"):
        check_abi(get_board("esp32c3-devkitm-1"), 6 | 3 << 8 | 10 << 10, (6, 3))
    with pytest.raises(ToolError, match="v5.2"):
        check_abi(get_board("emulator"), 5 | 2 << 8 | 2 << 10, (6, 3))


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(all_boards()))
def test_firmware_compiles_for_each_boards_arch(name, tmp_path):
    # what `hsmtls board deploy` runs, for real: the viper modules (montgomery, ghash)
    # must compile with each board's native emitter, not only the emulator's x64
    import subprocess

    require_tool("mpy-cross")
    from hsmtls.board import FIRMWARE

    lib = FIRMWARE / "lib"
    sources = sorted(lib.rglob("*.py"))
    assert len(sources) > 20
    for src in sources:
        out = tmp_path / src.relative_to(lib).with_suffix(".mpy")
        argv = mpy_cross_argv(get_board(name), src, out)
        out.parent.mkdir(parents=True, exist_ok=True)
        p = subprocess.run(argv, capture_output=True, text=True)
        assert p.returncode == 0, (argv, p.stderr)
        assert out.read_bytes()[:1] == b"M"


def test_mpremote_romfs_invocation():
    assert mpremote_romfs_argv("/dev/ttyACM0", Path("b/abc.romfs")) == [
        "mpremote", "connect", "/dev/ttyACM0", "resume", "romfs", "deploy", "b/abc.romfs"]


def test_import_check_after_deploy():
    # what the board printed after importing the deployed code -> a line, a warning
    line, warn = import_check("IMPORTED 150048 1921536 lib/boardapp/board.mpy\n", romfs=False)
    assert line == "firmware code imported from lib/boardapp/board.mpy: 146 KB of heap, 1876 KB left" and warn is None
    line, warn = import_check("IMPORTED 70000 %d /rom/boardapp/board.mpy\n" % (HANDSHAKE_HEAP - 1), romfs=True)
    assert "less than a handshake needs" in warn and "--romfs" not in warn
    _, warn = import_check("IMPORTED 140000 9000 /lib/boardapp/board.mpy\n", romfs=False)
    assert "less than a handshake needs" in warn and "--romfs" in warn and "SPIRAM" in warn
    _, warn = import_check("IMPORTED 70000 90000 /lib/boardapp/board.mpy\n", romfs=True)
    assert "shadows the ROMFS copy" in warn
    _, warn = import_check("IMPORTED 70000 90000 /rom/boardapp/board.mpy\n", romfs=False)
    assert "deploy with --romfs" in warn
    with pytest.raises(ToolError, match="does not fit the board's heap .*--romfs"):
        import_check("NOMEMORY 60000\n", romfs=False)
    with pytest.raises(ToolError, match="does not import: .*ImportError"):
        import_check("Traceback (most recent call last):\nImportError: no module named 'boardapp.board'\n", romfs=False)


def test_import_check_of_a_frozen_firmware():
    # frozen modules come before /lib on the board's sys.path and name themselves
    # relative, as .py (the unix port's frozen asyncio says "asyncio/__init__.py")
    line, warn = import_check("IMPORTED 52000 60000 boardapp/board.py\n", romfs=False, frozen=True)
    assert line == "firmware code frozen in the image (boardapp/board.py): 50 KB of heap, 58 KB left" and warn is None
    for where in ("/lib/boardapp/board.mpy", "boardapp/board.mpy", "/rom/boardapp/board.mpy"):
        with pytest.raises(ToolError, match="no frozen firmware: boardapp.board came from .*FROZEN_MANIFEST=firmware/manifest"):
            import_check(f"IMPORTED 140000 9000 {where}\n", romfs=False, frozen=True)
    # the frozen check leaves sys.path as the board booted it; the others put lib/ first
    assert "sys.path.insert(0,'lib')" in IMPORT_CHECK_SCRIPT
    assert "sys.path" not in FROZEN_IMPORT_CHECK_SCRIPT and "import boardapp.board" in FROZEN_IMPORT_CHECK_SCRIPT


def test_deploy_frozen_is_refused_where_it_cannot_be():
    from click.testing import CliRunner

    from hsmtls.cli.board import board

    r = CliRunner().invoke(board, ["deploy", "--board", "emulator", "--frozen"])
    assert r.exit_code == 1 and "cannot have our modules frozen in" in r.output
    r = CliRunner().invoke(board, ["deploy", "--board", "esp32-devkitc", "--port", "/dev/null", "--frozen", "--romfs"])
    assert r.exit_code == 1 and "--romfs or --frozen" in r.output


def test_emulated_flash_key_is_0600_from_the_first_byte(tmp_path, monkeypatch):
    # the board's key file in an emulated flash directory is made 0600, not chmod'ed after
    # being written world-readable under a permissive umask
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from hsmtls.board import flash

    key = ec.generate_private_key(ec.SECP256R1())
    pem = tmp_path / "k.pem"
    pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n")
    monkeypatch.setattr(Path, "chmod", lambda *a, **k: (_ for _ in ()).throw(AssertionError("chmod after write")))
    old = os.umask(0)
    try:
        d = flash.provision(tmp_path / "flash", ca, None, pem)
    finally:
        os.umask(old)
    assert (os.stat(d / "client.key").st_mode & 0o777) == 0o600
