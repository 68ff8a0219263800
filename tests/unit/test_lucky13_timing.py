"""Lucky13: a record with valid (longest) padding and a bad MAC and one with bad padding
take the same time to refuse, on CPython (the MicroPython unix port: tests/firmware/
test_lucky13_micropython.py). Measured by benchmarks/lucky13.py, the code behind
`hsmtls bench lucky13`, with the pre-fix check as control; a second pre-fix check run
as if it were the engine must be called a leak, so this test can fail."""

from __future__ import annotations

import pytest

from hsmtls.bench_lucky13 import load

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("mac", ["sha1", "sha256"])
def test_good_padding_bad_mac_and_bad_padding_take_the_same_time(mac):
    mod = load()
    engine, control, leaky = mod.measure(8000, mac, check=True)
    overlap, why = mod.verdict(leaky, control)
    assert overlap is False, "the statistic does not see the pre-fix leak: " + why
    overlap, why = mod.verdict(engine, control)
    assert overlap is True, why
