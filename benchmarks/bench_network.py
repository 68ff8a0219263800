"""`hsmtls bench board --network`: what a board exported over the network costs. One
emulated board (unix64 unless $HSMTLS_MACHINE) reached three ways: its pty, and through
ser2net on 127.0.0.1 as `socket://` (raw TCP) and `rfc2217://`, each against a
token-backed `hsmtls serve` (plain and with client auth). Per way, medians of `count`:
opening the port, a link round trip (STATS), the board's handshake_ms, and the host's
wall time of a session that echoes 4,000 bytes.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ECHO = "x" * 4000


def run(count: int = 15, echo: Callable[[str], None] = print) -> list[dict]:
    from hsmtls.board.bridge import Bridge
    from hsmtls.board.emulator import EmulatedBoard
    from hsmtls.board.hostlink import HostLink
    from hsmtls.testing.board import Board
    from hsmtls.testing.ser2net import Ser2net, Ser2netError
    from hsmtls.testing.servers import serve
    from hsmtls.testing.token import ThrowawayToken

    rows = []
    with tempfile.TemporaryDirectory(prefix="hsmtls_bench_network_") as tmp:
        d = Path(tmp)
        (d / "token").mkdir()
        token = ThrowawayToken(d / "token")
        servers = {False: serve(token), True: serve(token, client_auth=True)}
        try:
            with EmulatedBoard(d / "flash", heap="256k", mpy=True) as emulated, \
                    Ser2net(emulated.tty, raw=True) as raw, Ser2net(emulated.tty) as rfc:
                Board(emulated.tty, emulated=emulated).provision(token)
                echo(f"{'port':<9} {'open ms':>8} {'rtt ms':>7} {'handshake_ms':>13} {'+auth':>6} "
                     f"{'4 KB echo ms':>13}")
                for way, port in (("pty", emulated.tty), ("socket", raw.url), ("rfc2217", rfc.url)):
                    opens, rtts = [], []
                    for _ in range(3):
                        t = time.perf_counter()
                        link = HostLink(port)
                        opens.append((time.perf_counter() - t) * 1000)
                        link.connect(10)
                        b = Bridge(link, ("127.0.0.1", 0))
                        for _ in range(count):
                            t = time.perf_counter()
                            b.stats()
                            rtts.append((time.perf_counter() - t) * 1000)
                        link.close()
                    row = {"port": way, "open_ms": round(statistics.median(opens), 1),
                           "rtt_ms": round(statistics.median(rtts), 2)}
                    with Board(port, keep_open=True) as board:
                        for auth in (False, True):
                            hs, walls = [], []
                            for _ in range(count):
                                t = time.perf_counter()
                                r = board.handshake(servers[auth], client_cert=auth, send=ECHO)
                                walls.append((time.perf_counter() - t) * 1000)
                                if not r.get("ok"):
                                    raise RuntimeError(f"handshake over {way} failed: {r.get('reason')}")
                                hs.append(r["handshake_ms"])
                            row["handshake_ms_auth" if auth else "handshake_ms"] = statistics.median(hs)
                            if not auth:
                                row["echo_wall_ms"] = round(statistics.median(walls), 1)
                    rows.append(row)
                    echo(f"{way:<9} {row['open_ms']:>8} {row['rtt_ms']:>7} {row['handshake_ms']:>13} "
                         f"{row['handshake_ms_auth']:>6} {row['echo_wall_ms']:>13}")
        except Ser2netError as e:
            raise RuntimeError(str(e)) from None
        finally:
            for s in servers.values():
                s.close()
            token.close()
    return rows
