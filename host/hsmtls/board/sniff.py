"""What the host can see of the board's handshake: the TLS records crossing the bridge.

The handshake messages before each side's ChangeCipherSpec travel in plaintext, so the
bridge decodes them (direction, step of the classic handshake, size and the decoded
fields `hsmtls.tracing.trace.decode_message` gives); after ChangeCipherSpec a side's records
are encrypted and listed as such. The board's own compute time per step comes from its
RESULT (`demo.board_step_lines`).
"""

from __future__ import annotations

import time
from typing import Any

from tlscore import constants as C
from tlscore.messages import MESSAGE_CLASSES

from ..tracing.steps import CLIENT_MESSAGE_STEPS, SERVER_MESSAGE_STEPS, message_name
from ..tracing.trace import decode_message


class RecordSniffer:
    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.rows: list[dict[str, Any]] = []
        self._buf = {"c2s": bytearray(), "s2c": bytearray()}
        self._hs = {"c2s": bytearray(), "s2c": bytearray()}
        self._encrypted = {"c2s": False, "s2c": False}
        self._round = 1

    def feed(self, direction: str, data: bytes) -> None:
        buf = self._buf[direction]
        buf += data
        while len(buf) >= 5:
            n = int.from_bytes(buf[3:5], "big")
            if len(buf) < 5 + n:
                break
            ctype, body = buf[0], bytes(buf[5:5 + n])
            del buf[:5 + n]
            self._record(direction, ctype, body)

    def _row(self, direction: str, step: int, what: str, size: int, details: Any = None) -> None:
        self.rows.append({"t_ms": round((time.perf_counter() - self.t0) * 1000, 1), "round": self._round,
                          "direction": direction, "step": step, "message": what, "size": size,
                          "details": details})

    def _record(self, direction: str, ctype: int, body: bytes) -> None:
        client = direction == "c2s"
        if ctype == C.CHANGE_CIPHER_SPEC:
            self._encrypted[direction] = True
            self._row(direction, 8 if client else 9, "ChangeCipherSpec", len(body))
        elif ctype == C.HANDSHAKE and not self._encrypted[direction]:
            hs = self._hs[direction]
            hs += body
            while len(hs) >= 4:
                n = int.from_bytes(hs[1:4], "big")
                if len(hs) < 4 + n:
                    break
                mtype, raw = hs[0], bytes(hs[4:4 + n])
                del hs[:4 + n]
                steps = CLIENT_MESSAGE_STEPS if client else SERVER_MESSAGE_STEPS
                try:
                    msg = MESSAGE_CLASSES[mtype].parse(raw)
                    details, summary = decode_message(mtype, msg)
                except Exception:  # what the board or server sent is theirs to judge
                    details, summary = None, "undecodable"
                self._row(direction, steps.get(mtype, 0), f"{message_name(mtype)}: {summary}", n + 4, details)
        elif ctype == C.HANDSHAKE:
            self._row(direction, 8 if client else 9, "encrypted handshake (Finished, or a renegotiation)", len(body))
        elif ctype == C.ALERT:
            self._row(direction, 0, "alert" + ("" if self._encrypted[direction] else f" {C.alert_name(body[1])}"),
                      len(body))
        elif ctype == C.APPLICATION_DATA:
            self._row(direction, 10, "application data (encrypted)", len(body))

    def lines(self) -> list[str]:
        out = []
        for r in self.rows:
            arrow = "board -> server" if r["direction"] == "c2s" else "server -> board"
            step = f"{r['step']:>2}" if r["step"] else " -"
            out.append(f"  step {step}  {arrow}  {r['message']} ({r['size']} bytes)  +{r['t_ms']} ms")
        return out

    def render(self, console: Any, board_lines: list[str]) -> None:
        """The rows as a rich table, then the board's own time per step."""
        from rich.table import Table

        table = Table(title="the board's handshake, as the bridge saw it", show_lines=False)
        for col, justify in (("step", "right"), ("round", "right"), ("direction", "left"),
                             ("message", "left"), ("bytes", "right"), ("t (ms)", "right")):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for r in self.rows:
            arrow = "board → server" if r["direction"] == "c2s" else "server → board"
            table.add_row(str(r["step"] or "-"), str(r["round"]), arrow, r["message"], str(r["size"]),
                          f"{r['t_ms']:.1f}")
        console.print(table)
        console.print("[bold]the board's compute time per step[/bold] (from its RESULT):")
        for line in board_lines:
            console.print(line, highlight=False, markup=False)
