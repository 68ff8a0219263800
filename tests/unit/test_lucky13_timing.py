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
print(json.dumps(load().measure_until_seen(sys.argv[1], check=True)))
"""


def _measure(mac: str) -> list[dict]:
    # In a fresh interpreter, as `hsmtls bench lucky13` measures: not in this process,
    # whose heap, modules and leftovers a thousand tests before this one have grown.
    out = subprocess.run([sys.executable, "-c", _MEASURE, mac], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout + out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize("mac", ["sha1", "sha256"])
def test_good_padding_bad_mac_and_bad_padding_take_the_same_time(mac):
    # At least 48,000 rounds, more until the control's leak is significant (a busy
    # machine needs more rounds to see the same leak). The engine's shift scatters
    # between -5 and +34 ns over runs, 0-23 % of the control's, so a run can land near
    # the verdict's line: up to three runs, and one clean run is enough, since a real
    # leak shifts every run (the second pre-fix check shows the statistic catches one).
    mod = load()
    shifts = []
    whys = []
    for _ in range(3):
        engine, control, leaky = _measure(mac)
        seen, why_leaky = mod.verdict(leaky, control)  # must be called a leak: the test can fail
        overlap, why = mod.verdict(engine, control)
        shifts.append("%+.0f of %+.0f ns" % (engine["shift_ns"], control["shift_ns"]))
        print("lucky13 %s: engine %s (control)" % (mac, shifts[-1]))
        if seen is False and overlap is True:
            return
        whys.append(why if seen is False else "the statistic does not see the pre-fix leak: " + why_leaky)
    raise AssertionError("; ".join(whys))
