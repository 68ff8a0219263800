"""Lucky13 timing of the CBC MAC-then-encrypt record check, on either interpreter.

    hsmtls bench lucky13 [--interpreter cpython|micropython|both] [--samples N] [--mac sha1|sha256]
    MICROPYPATH=firmware/lib micropython benchmarks/lucky13.py SAMPLES MAC BATCH

Two kinds of 2 KiB records go through CBCProtection.open: (a) a valid padding of 256
bytes (the longest) over a wrong MAC, (b) the same record with its first padding byte
flipped, so that only the padding check differs. Both end in bad_record_mac; Lucky13
tells them apart by the time that takes. The same records also go through LeakyCBC, the
check as it was before the fix (the MAC over a plaintext whose length follows the
padding): a control that shows the measurement can see that leak, here and now.

Samples are taken in rounds: each round times a and b on the engine and on the control,
in a random order, so that the machine's drift hits all four alike; every 500 rounds
come new records, so that no one record pair's memory layout decides the result. A
sample is the time of BATCH decryptions (MicroPython's clock here counts microseconds).
The figures, per decryption: quantiles of a and b; the difference of the medians against
the interquartile range; the two-sample Kolmogorov-Smirnov D (the largest gap between the
two distribution functions: 0 alike, 1 disjoint); and the paired shift, the mean of
b - a over the rounds whose b - a lies in the middle 60 % (a trimmed mean: finer than a
median of clock ticks, deaf to the rounds a preemption hit), with a sign test z (how many
standard deviations the count of rounds where b was slower lies from half). The shift is
the sharpest of them: a round's a and b run microseconds apart, so the load of a shared
machine cancels out.

Verdict: the engine's distributions overlap if its shift is under a share of the
control's, and the control's is significant (z > 5) so that the run could see a leak.
The share is a quarter on MicroPython (the control's is four SHA compressions: a quarter
is one) and half on CPython, where an interpreter's memory layout alone moves b - a by
up to 45 ns either way for all its rounds (a fifth to a third of the control's), for the
engine as for variants of it that hash the same lengths for both records; the pre-fix
check, judged as the engine, comes out at 80-120 % of the control's.

This file runs under CPython (imported by hsmtls.bench.server and the tests) and under the
MicroPython unix port (as the main script, printing its samples for the host to judge).
"""

import sys

try:
    from time import perf_counter_ns as _now
except ImportError:  # MicroPython
    from time import time_ns as _now

from tlscore.constants import APPLICATION_DATA, BAD_RECORD_MAC
from tlscore.consttime import ct_equal
from tlscore.errors import TLSError
from tlscore.record import CBCProtection

RECORD = 2048  # bytes of a record's fragment: explicit IV || ciphertext
MAC_LEN = {"sha1": 20, "sha256": 32}
CONTROL_Z = 5.0  # the control's leak must be at least this significant
SHIFT_RATIO = {"micropython": 0.25, "cpython": 0.5}  # the engine's shift under this share of the control's
GROUP = 500  # rounds on one pair of records (see sample)


class LeakyCBC(CBCProtection):
    # The MAC-then-encrypt check before the fix: the MAC is computed on bad padding too,
    # but over p[:end - mac_len], whose length follows the padding length.
    def open(self, seq, content_type, fragment):
        mac_len = self.mac_len
        p = self.cbc.decrypt(bytes(fragment[:16]), bytes(fragment[16:]))
        pad = p[-1]
        bad = self._padding_bad(p, pad, mac_len)
        pad_used = pad * (1 - bad)
        end = len(p) - pad_used - 1 + bad
        plaintext = p[: end - mac_len]
        mac = p[end - mac_len : end]
        good_mac = ct_equal(self._mac(seq, content_type, plaintext), mac)
        if bad | (not good_mac):
            raise TLSError(BAD_RECORD_MAC, "record authentication failed")
        return plaintext


def _backend():
    if sys.implementation.name == "micropython":
        from tlscore.backend_micropython import BACKEND
    else:
        from hsmtls.backend import BACKEND
    return BACKEND


def protection(mac="sha256", cls=CBCProtection):
    b = _backend()
    return cls(b, b.random(16), mac, b.random(MAC_LEN[mac]), MAC_LEN[mac], False)


def records(prot):
    # -> (a, b): a valid 256-byte padding over a wrong MAC, and the same with bad padding
    n = RECORD - 16
    p = bytearray(prot.backend.random(n - 256) + bytes([255]) * 256)
    iv = prot.backend.random(16)
    a = iv + prot.cbc.encrypt(iv, bytes(p))
    p[n - 256] ^= 1
    b = iv + prot.cbc.encrypt(iv, bytes(p))
    return a, b


def _time(prot, fragment, batch):
    t0 = _now()
    for _ in range(batch):
        try:
            prot.open(1, APPLICATION_DATA, fragment)
        except TLSError:
            pass
    return _now() - t0


def _check_refused(prot, frag):
    try:
        prot.open(1, APPLICATION_DATA, frag)
    except TLSError as e:
        assert e.alert == BAD_RECORD_MAC, e
        return
    raise AssertionError("record accepted")


def sample(prots, samples, batch=1, group=GROUP):
    # -> [(times of a, times of b)] per protection, in ns per sample of `batch` decryptions.
    # Every `group` rounds each protection gets new records: a record pair's own layout
    # (where its buffers lie) shifts b - a on CPython, either way, for the whole time it
    # is used (-280 to +330 ns over 40 pairs timed alone); over many pairs that averages out.
    # On CPython without the cycle collector while timing (as timeit does): it runs when
    # the whole process's allocations say so, not these records, and refcounting frees all
    # they allocate. MicroPython's collector stays: it frees the records' buffers.
    import gc

    pause_gc = sys.implementation.name == "cpython" and gc.isenabled()
    if pause_gc:
        gc.collect()
        gc.disable()
    try:
        return _sample(prots, samples, batch, group)
    finally:
        if pause_gc:
            gc.enable()


def _sample(prots, samples, batch, group):
    out = [([], []) for _ in prots]
    rnd = prots[0].backend.random
    done = 0
    while done < samples:
        rounds = min(group, samples - done)
        jobs = []  # (protection, record, list its times go to)
        for prot, (ta, tb) in zip(prots, out):
            a, b = records(prot)
            _check_refused(prot, a)  # both must fail
            _check_refused(prot, b)
            jobs += [(prot, a, ta), (prot, b, tb)]
        for _ in range(100 if done == 0 else 10):  # warm up
            for prot, frag, _t in jobs:
                _time(prot, frag, 1)
        k = len(jobs)
        for _ in range(rounds):
            order = list(range(k))
            r = rnd(k)
            for i in range(k - 1, 0, -1):  # Fisher-Yates
                j = r[i] % (i + 1)
                order[i], order[j] = order[j], order[i]
            for i in order:
                prot, frag, times = jobs[i]
                times.append(_time(prot, frag, batch))
        done += rounds
    return out


def quantile(s, q):
    # s sorted
    i = int(q * len(s))
    return s[i if i < len(s) else len(s) - 1]


def ks_statistic(a, b):
    # two-sample Kolmogorov-Smirnov D = max |F_a(x) - F_b(x)|
    a = sorted(a)
    b = sorted(b)
    i = j = 0
    d = 0.0
    while i < len(a) and j < len(b):
        x = a[i] if a[i] < b[j] else b[j]
        while i < len(a) and a[i] == x:
            i += 1
        while j < len(b) and b[j] == x:
            j += 1
        gap = abs(i / len(a) - j / len(b))
        if gap > d:
            d = gap
    return d


QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def trimmed_mean(s, cut=0.2):
    # s sorted: the mean of its middle (1 - 2 cut)
    middle = s[int(cut * len(s)):len(s) - int(cut * len(s))] or s
    return sum(middle) / len(middle)


def summary(ta, tb, batch=1):
    # -> the figures of one protection, in ns per decryption
    sa = sorted(t / batch for t in ta)
    sb = sorted(t / batch for t in tb)
    iqr = (quantile(sa, 0.75) - quantile(sa, 0.25) + quantile(sb, 0.75) - quantile(sb, 0.25)) / 2
    diffs = sorted((y - x) / batch for x, y in zip(ta, tb))
    slower = sum(1 for d in diffs if d > 0)
    faster = sum(1 for d in diffs if d < 0)
    return {
        "samples": len(sa),
        "batch": batch,
        "a_ns": [quantile(sa, q) for q in QUANTILES],
        "b_ns": [quantile(sb, q) for q in QUANTILES],
        "median_diff_ns": quantile(sb, 0.5) - quantile(sa, 0.5),
        "iqr_ns": iqr,
        "ks_d": ks_statistic(sa, sb),
        "shift_ns": trimmed_mean(diffs),
        "sign_z": (slower - faster) / (slower + faster) ** 0.5 if slower + faster else 0.0,
    }


def pooled(runs):
    # -> one summary of the same protection's summaries from several interpreters, for
    # the verdict: the mean of their shifts, and their sign z pooled (Stouffer). On
    # CPython one interpreter's memory layout moves b - a for all its rounds, as one
    # record pair's does (by up to 45 ns either way here); over interpreters it averages out.
    k = len(runs)
    return {
        "samples": sum(r["samples"] for r in runs),
        "batch": runs[0]["batch"],
        "shift_ns": sum(r["shift_ns"] for r in runs) / k,
        "sign_z": sum(r["sign_z"] for r in runs) / k ** 0.5,
        "runs": [round(r["shift_ns"]) for r in runs],
    }


def verdict(engine, control, interpreter="cpython"):
    # -> (overlap: bool or None if the run could not see the control's leak, reason)
    if control["sign_z"] < CONTROL_Z or control["shift_ns"] <= 0:
        return None, "inconclusive: the control's leak is not significant in this run (z %.1f)" % (
            control["sign_z"]
        )
    ratio = abs(engine["shift_ns"]) / control["shift_ns"]
    if ratio < SHIFT_RATIO[interpreter]:
        return True, "overlap: the engine's shift is %.0f%% of the control's (%.0f of %.0f ns)" % (
            100 * ratio, engine["shift_ns"], control["shift_ns"])
    return False, "LEAK: the engine's shift is %.0f%% of the control's (%.0f of %.0f ns)" % (
        100 * ratio, engine["shift_ns"], control["shift_ns"])


def _protections(mac, check):
    prots = [protection(mac), protection(mac, LeakyCBC)]
    if check:
        prots.append(protection(mac, LeakyCBC))
    return prots


def measure(samples, mac="sha256", batch=1, check=False):
    # -> summaries of the engine, the control and (check: a second LeakyCBC, which the
    # verdict must call a leak: the test's proof that the statistic can fail)
    return [summary(ta, tb, batch) for ta, tb in sample(_protections(mac, check), samples, batch)]


def measure_until_seen(mac="sha256", check=False, step=8000, least=48000, most=96000):
    # measure() in steps of `step` rounds until the control's leak is significant
    # (CONTROL_Z) after at least `least` rounds, or `most` rounds have been taken: a
    # loaded machine needs more rounds to see the same leak, not a different verdict
    prots = _protections(mac, check)
    times = [([], []) for _ in prots]
    while True:
        for (ta, tb), (sa, sb) in zip(times, sample(prots, step)):
            ta += sa
            tb += sb
        summaries = [summary(ta, tb) for ta, tb in times]
        n = len(times[0][0])
        if n >= most or (n >= least and summaries[1]["sign_z"] >= CONTROL_Z and summaries[1]["shift_ns"] > 0):
            return summaries


def main(argv):
    # prints "engine_a t t t ...", engine_b, control_a, control_b (and leaky_a, leaky_b)
    samples, mac, batch = int(argv[1]), argv[2], int(argv[3])
    check = len(argv) > 4 and argv[4] == "check"
    names = ["engine", "control"] + (["leaky"] if check else [])
    for name, (ta, tb) in zip(names, sample(_protections(mac, check), samples, batch)):
        print(name + "_a", " ".join(str(x) for x in ta))
        print(name + "_b", " ".join(str(x) for x in tb))


if __name__ == "__main__":
    main(sys.argv)
