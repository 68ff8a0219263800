"""Seeded faults on the serial path, applied frame by frame (a frame ends at 0x00).

A ``Faults`` object sits in one direction of the emulator's relay (or of a proxy in
front of a real port). For each complete frame it draws, from its own seeded RNG,
whether to drop, corrupt, duplicate or delay it, and between frames whether to inject
a noise burst or an oversized frame. The same seed gives the same faults, so a failing
run can be replayed. ``cut_after`` stops the direction after that many bytes, for
"host disconnects mid-handshake".
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field


@dataclass
class Faults:
    seed: int = 0
    drop: float = 0.0
    corrupt: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    delay_ms: tuple[int, int] = (5, 60)
    noise: float = 0.0
    oversized: float = 0.0
    cut_after: int | None = None
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._partial = bytearray()
        self._held: list[tuple[float, bytes]] = []
        self._passed = 0

    def _count(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def apply(self, data: bytes, now: float | None = None) -> bytes:
        """Bytes in from one side -> bytes to pass on now (delayed ones come later)."""
        now = time.monotonic() if now is None else now
        self._partial += data
        out = bytearray(self.release(now))
        while True:
            z = self._partial.find(0)
            if z < 0:
                break
            frame = bytes(self._partial[: z + 1])
            del self._partial[: z + 1]
            out += self._one(frame, now)
        if self.cut_after is not None:
            room = max(0, self.cut_after - self._passed)
            if len(out) > room:
                self._count("cut")
                out = out[:room]
        self._passed += len(out)
        return bytes(out)

    def _one(self, frame: bytes, now: float) -> bytes:
        r = self.rng
        pre = b""
        if self.noise and r.random() < self.noise:
            self._count("noise")
            pre += bytes(r.randrange(256) for _ in range(r.randrange(1, 40)))
        if self.oversized and r.random() < self.oversized:
            self._count("oversized")
            pre += bytes(r.randrange(1, 256) for _ in range(r.randrange(300, 900))) + b"\x00"
        if self.drop and r.random() < self.drop:
            self._count("drop")
            return pre
        if self.corrupt and r.random() < self.corrupt and len(frame) > 1:
            self._count("corrupt")
            b = bytearray(frame)
            i = r.randrange(len(b) - 1)
            b[i] ^= 1 << r.randrange(8)
            if b[i] == 0:
                b[i] = 0x55
            frame = bytes(b)
        if self.duplicate and r.random() < self.duplicate:
            self._count("duplicate")
            frame = frame + frame
        if self._held or (self.delay and r.random() < self.delay):
            # once one frame is held, later ones queue behind it: a delay keeps order
            if not self._held:
                self._count("delay")
            release = now + r.uniform(*self.delay_ms) / 1000.0
            if self._held:
                release = max(release, self._held[-1][0])
            self._held.append((release, frame))
            return pre
        return pre + frame

    def release(self, now: float | None = None) -> bytes:
        now = time.monotonic() if now is None else now
        out = bytearray()
        while self._held and self._held[0][0] <= now:
            out += self._held.pop(0)[1]
        return bytes(out)

    @property
    def pending(self) -> bool:
        return bool(self._held)
