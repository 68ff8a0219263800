"""Serial ports as URLs (host/hsmtls/board/hostlink.py): what is opened, and one line for
what cannot be, without a board or a server."""

from __future__ import annotations

import socket

import pytest

from hsmtls.board.hostlink import HostLink, LinkError, _url, check_firmware, is_url


def test_rfc2217_without_options_does_not_wait_for_set_control():
    assert _url("rfc2217://farm:3001") == "rfc2217://farm:3001?ign_set_control"
    # the user's own options are theirs
    assert _url("rfc2217://farm:3001?timeout=10") == "rfc2217://farm:3001?timeout=10"
    assert _url("socket://farm:3001") == "socket://farm:3001"


def test_paths_are_not_urls():
    assert not is_url("/dev/ttyUSB0") and is_url("rfc2217://h:1")


@pytest.mark.parametrize("port, says", [
    ("ftp://h:21", "not a serial port URL this tool opens"),
    ("rfc2217://farm", "expected rfc2217://HOST:PORT"),
    ("socket://:3001", "expected socket://HOST:PORT"),
    ("/dev/hsmtls-no-such-port", "cannot open /dev/hsmtls-no-such-port"),
])
def test_what_cannot_be_opened_is_one_line(port, says):
    with pytest.raises(LinkError, match="^.*$") as e:
        HostLink(port)
    assert says in str(e.value) and "\n" not in str(e.value)


def test_nobody_listening():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        for scheme in ("rfc2217", "socket"):
            with pytest.raises(LinkError, match=f"cannot reach {scheme}://127.0.0.1:{port}: .*refused"):
                HostLink(f"{scheme}://127.0.0.1:{port}")


def test_firmware_version():
    from hsmlink import VERSION

    check_firmware({"v": VERSION}, "P")
    with pytest.raises(LinkError, match=rf"runs other firmware \(link v{VERSION - 1}, this hsmtls speaks v{VERSION}\)"):
        check_firmware({"v": VERSION - 1}, "P")
    with pytest.raises(LinkError, match=r"runs other firmware \(link vNone"):
        check_firmware({}, "P")
    with pytest.raises(LinkError, match="newer firmware"):
        check_firmware({"v": VERSION + 1}, "P")


def test_mpremote_and_esptool_get_the_url_as_the_link_opens_it():
    from hsmtls.board.boards import get_board
    from hsmtls.board.tools import esptool_argv, mpremote_copy_argv, mpremote_exec_argv

    url = "rfc2217://farm:3001"
    assert mpremote_exec_argv(url, "print(1)")[2] == url + "?ign_set_control"
    assert mpremote_copy_argv(url, {})[2] == url + "?ign_set_control"
    runs = esptool_argv(get_board("esp32-devkitc"), url, "fw.bin")
    assert runs[0][runs[0].index("--port") + 1] == url + "?ign_set_control"
    assert mpremote_exec_argv("/dev/ttyUSB0", "print(1)")[2] == "/dev/ttyUSB0"
