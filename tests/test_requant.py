"""The fast requantization (one SMMLAR and a shift) against TFLite's two roundings.

tq_rq_fast replaces SaturatingRoundingDoublingHighMul + RoundingDivideByPOT by a
merged formula that the host enables only where fast_ok proves it exact. Here the C
function (the host twin of SMMLAR) is compared with a Python transcription of
TFLite's reference arithmetic on edge cases and on random values within the bounds,
and layers are run with the fast path switched off to cover the exact fallback.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tinyq.compile.hostrun import KERNELS_DIR
from tinyq.compile.ops import layout

HARNESS = r"""
#include <stdio.h>
#include "tq_kernels.h"
int main(void) {
    long acc, bias, rnd, mult, shift;
    while (scanf("%ld %ld %ld %ld %ld", &acc, &bias, &rnd, &mult, &shift) == 5) {
        const tq_chan_t q = {(int32_t)bias, (int32_t)rnd, (int32_t)mult, (int32_t)shift};
        printf("%ld\n", (long)tq_rq_fast((int32_t)acc, &q));
    }
    return 0;
}
"""


def tflite_requant(x: int, mult: int, shift: int, zp: int) -> int:
    """MultiplyByQuantizedMultiplier (right shift) + zero point, as TFLite's reference code computes it."""
    ab = x * mult
    nudge = (1 << 30) if ab >= 0 else 1 - (1 << 30)
    # C++ division truncates toward zero
    t = (ab + nudge) // (1 << 31) if (ab + nudge) >= 0 else -((-(ab + nudge)) // (1 << 31))
    e = -shift
    mask = (1 << e) - 1
    remainder = t & mask
    threshold = (mask >> 1) + (1 if t < 0 else 0)
    return (t >> e) + (1 if remainder > threshold else 0) + zp


@pytest.fixture(scope="module")
def fast_c(tmp_path_factory):
    d = tmp_path_factory.mktemp("rq")
    (d / "h.c").write_text(HARNESS)
    exe = d / "rq"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(KERNELS_DIR), str(d / "h.c"),
                    "-o", str(exe)], check=True)

    def run(rows):
        text = "".join(" ".join(str(v) for v in r) + "\n" for r in rows)
        out = subprocess.run([str(exe)], input=text, capture_output=True, text=True, check=True).stdout
        return [int(v) for v in out.split()]

    return run


def _cases(n: int, seed: int):
    rng = np.random.default_rng(seed)
    cases = []
    # Edges: M = 2^30 with x = -1 (where [t < 0] and [x < 0] differ), ties, the largest bounds.
    for e in (1, 2, 7, 13, 22):
        for mult in (1 << 30, (1 << 31) - 1, 1518500250):
            for zp in (-128, 0, 127):
                bound = 2**29
                for x in (-1, 0, 1, -(1 << (e - 1)), 1 << (e - 1), -bound, bound, -bound + 1):
                    cases.append((x, mult, -e, zp, bound))
    while len(cases) < n:
        e = int(rng.integers(1, layout.MAX_FAST_SHIFT + 1))
        mult = int(rng.integers(1 << 30, 1 << 31))
        zp = int(rng.integers(-128, 128))
        bound = int(2 ** rng.uniform(4, 29.99))
        x = int(rng.integers(-bound, bound + 1))
        cases.append((x, mult, -e, zp, bound))
    return cases


def test_fast_requant_equals_tflite_where_proven(fast_c):
    cases = [c for c in _cases(20000, seed=11) if layout.fast_ok(c[4], c[1], c[2], c[3])]
    assert len(cases) > 15000
    # The kernel adds the (doubled) bias itself: split x into a sum and a bias as a layer would.
    rows = []
    for x, mult, shift, zp, _ in cases:
        acc, bias = x // 3, x - x // 3
        rows.append((acc, 2 * bias, (1 << (-shift - 1)) + (zp << -shift), mult, -shift))
    got = fast_c(rows)
    want = [tflite_requant(x, m, s, zp) for x, m, s, zp, _ in cases]
    bad = [(c, g, w) for c, g, w in zip(cases, got, want) if g != w]
    assert not bad, bad[:5]


def test_fast_path_refused_outside_its_proof():
    assert not layout.fast_ok(1000, 1 << 30, 0, 0)          # no right shift
    assert not layout.fast_ok(1000, 1 << 30, 3, 0)          # a left shift
    assert not layout.fast_ok(1 << 30, 1 << 30, -5, 0)      # 2x would overflow
    assert not layout.fast_ok(1000, 1 << 30, -23, 0)        # rnd would overflow
    assert layout.fast_ok(1000, 1 << 30, -7, -128)


@pytest.mark.parametrize("kind", ["conv", "dw", "fc"])
def test_exact_fallback_is_bit_exact(kind, monkeypatch):
    """With the fast path refused, the same layers take the long way and still match TFLM."""
    import test_ops

    asked = []
    monkeypatch.setattr(layout, "fast_ok", lambda *a: asked.append(a) and False)
    for k, params in [c for c in test_ops.CASES if c[0] == kind][:3]:
        test_ops.test_op_bit_exact_with_tflm(k, params)
    assert asked  # the lowering asked, and every layer took the long way


def test_dead_channels_take_the_fast_path_as_constants(fast_c):
    """Official VWW carries channels with weights ~0: per-channel scale ~1e-9 (a right shift far past
    MAX_FAST_SHIFT) and an int32 bias of 2^30. Their output is one value for every input, so they are
    encoded as mult 0 and that value, and the layer keeps the fast path. Checked on every sum."""
    rng = np.random.default_rng(3)
    w = rng.integers(-127, 128, size=(2, 64))
    mult, shift = 1262026539, -28           # ~4.6e-9 in TFLite's form
    folded = [1 << 30, -(1 << 30)]
    fast, rows = layout.channel_params(w, folded, 0, [mult, mult], [shift, shift], -128)
    assert fast
    sums = [int(v) for v in rng.integers(-(1 << 20), 1 << 20, size=200)] + [0, -1, 1]
    for c in range(2):
        want = [max(-128, min(127, tflite_requant(s + folded[c], mult, shift, -128))) for s in sums]
        assert len(set(want)) == 1
        got = fast_c([(s, *rows[c]) for s in sums])
        assert [max(-128, min(127, g)) for g in got] == want
    # A channel whose output does vary keeps the layer on the exact path.
    fast, _ = layout.channel_params(w, [1 << 30, 0], 0, [mult, 1 << 30], [shift, 5], -128)
    assert not fast
