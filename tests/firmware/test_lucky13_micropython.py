"""Lucky13 under the MicroPython unix port: good padding with a bad MAC and bad padding
take the same time to refuse (see tests/unit/test_lucky13_timing.py for the method)."""

import pytest

from hsmtls.bench.lucky13 import load, run_micropython

from support.mp_run import requires_micropython, run_mp

pytestmark = [pytest.mark.micropython, requires_micropython]

# Every padding length opens, and a flipped MAC or padding byte is bad_record_mac, with
# MicroPython's hashlib (memoryview input, no copy()) behind the constant-cost MAC.
_OPEN_ALL_PADDINGS = """
from tlscore.backend_micropython import BACKEND as B
from tlscore.constants import APPLICATION_DATA, BAD_RECORD_MAC
from tlscore.errors import TLSError
from tlscore.record import CBCProtection, _header
for mac, mac_len in (("sha1", 20), ("sha256", 32)):
    prot = CBCProtection(B, B.random(16), mac, B.random(mac_len), mac_len, False)
    opened = refused = 0
    for pad in range(256):
        for base in (0, 2000):
            pt = B.random(base + (-(base + mac_len + pad + 1)) % 16)
            tag = B.hmac(mac, prot.mac_key, (7).to_bytes(8, "big") + _header(APPLICATION_DATA, len(pt)) + pt)
            body = pt + tag + bytes([pad]) * (pad + 1)
            iv = B.random(16)
            assert bytes(prot.open(7, APPLICATION_DATA, iv + prot.cbc.encrypt(iv, body))) == pt
            opened += 1
            for at in (len(pt), len(body) - 1 - pad):
                bad = bytearray(body)
                bad[at] ^= 1
                try:
                    prot.open(7, APPLICATION_DATA, iv + prot.cbc.encrypt(iv, bytes(bad)))
                    raise AssertionError("accepted")
                except TLSError as e:
                    assert e.alert == BAD_RECORD_MAC
                    refused += 1
    print(mac, opened, refused)
"""


def test_every_padding_length_opens_and_bad_ones_are_refused():
    out = run_mp(_OPEN_ALL_PADDINGS).split()
    assert out == ["sha1", "512", "1024", "sha256", "512", "1024"]


@pytest.mark.slow
@pytest.mark.parametrize("mac", ["sha1", "sha256"])
def test_good_padding_bad_mac_and_bad_padding_take_the_same_time(mac):
    mod = load()
    engine, control, leaky = run_micropython(mod, 1500, mac, 8, check=True)
    overlap, why = mod.verdict(leaky, control, "micropython")
    assert overlap is False, "the statistic does not see the pre-fix leak: " + why
    overlap, why = mod.verdict(engine, control, "micropython")
    assert overlap is True, why
