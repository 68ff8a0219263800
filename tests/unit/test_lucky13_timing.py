"""Lucky13: a record with valid (longest) padding and a bad MAC and one with bad padding
take the same time to refuse, on CPython (the MicroPython unix port: tests/firmware/
test_lucky13_micropython.py). Measured by benchmarks/lucky13.py, the code behind
`hsmtls bench lucky13`, with the pre-fix check as control; a second pre-fix check run
as if it were the engine must be called a leak, so this test can fail."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hsmtls.bench.lucky13 import load

pytestmark = pytest.mark.slow

_MEASURE = """import json, sys
from hsmtls.bench.lucky13 import load
print(json.dumps(load().measure_until_seen(sys.argv[1], check=True, least=24000, most=48000)))
"""
INTERPRETERS = 4  # a verdict pools this many


def _measure(mac: str) -> list[dict]:
    # [engine, control, leaky] in a fresh interpreter, as `hsmtls bench lucky13`
    # measures: not in this process, whose heap and modules a thousand tests before
    # this one have grown
    out = subprocess.run([sys.executable, "-c", _MEASURE, mac], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("mac", ["sha1", "sha256"])
def test_good_padding_bad_mac_and_bad_padding_take_the_same_time(mac):
    # Each verdict pools four interpreters of at least 24,000 rounds each (more until
    # the control's leak is significant): one interpreter's memory layout moves the
    # engine's shift for all its rounds, by up to 45 ns either way on CPython here, and
    # pooling averages that out. The line is half the control's shift (benchmarks/
    # lucky13.py says why); the pre-fix check, judged as the engine, lands at 80-120 %.
    # Up to three verdicts, one clean one being enough, since a real leak shifts every
    # run (the second pre-fix check shows the statistic catches one).
    mod = load()
    whys = []
    for _ in range(3):
        runs = [_measure(mac) for _ in range(INTERPRETERS)]
        engine, control, leaky = (mod.pooled([r[i] for r in runs]) for i in range(3))
        seen, why_leaky = mod.verdict(leaky, control)  # must be called a leak: the test can fail
        overlap, why = mod.verdict(engine, control)
        print("lucky13 %s: engine %s, control %s ns" % (mac, engine["runs"], control["runs"]))
        if seen is False and overlap is True:
            return
        whys.append(why if seen is False else "the statistic does not see the pre-fix leak: " + why_leaky)
    raise AssertionError("; ".join(whys))
