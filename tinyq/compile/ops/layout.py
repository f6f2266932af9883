"""Host-side layouts of weights and per-channel requantization for the SMLAD kernels.

The kernels (``firmware/kernels/tq_<family>.c``, ``tq_m4_<family>.S``) read weights in the order
their inner loops consume them, so no instruction on the device is spent
rearranging data. Everything here is integer arithmetic on exact Python ints.
"""

from __future__ import annotations

import numpy as np

from tinyq.compile.ops.quant import multiply_by_quantized_multiplier, wrap_int32

INT32_MAX = (1 << 31) - 1
#: The fast requantization path takes right shifts in [1, MAX_FAST_SHIFT]; see fast_ok.
MAX_FAST_SHIFT = 22


#: Arena offsets and windows are multiples of this: word-aligned int8 rows allow 32-bit loads.
ALIGN = 4


def align(n: int) -> int:
    """``n`` rounded up to a multiple of ALIGN."""
    return (n + ALIGN - 1) // ALIGN * ALIGN


def padded_k(k: int) -> int:
    """The patch length rounded up to a multiple of 4 (whole SXTB16 words)."""
    return (k + 3) // 4 * 4


def pair_rows(w2d: np.ndarray, row_multiple: int = 2) -> tuple[int, ...]:
    """Weights (out_c, K) int8 as the matrix-product kernels read them, one uint32 a word.

    Rows are padded with zero rows to a multiple of ``row_multiple`` and K with zeros
    to a multiple of 4. For each pair of rows (c, c+1) and each K-pair j, whose
    elements are (ka, kb) = (4g + j % 2, 4g + j % 2 + 2) with g = j // 2, the word holds
    the bytes w[c][ka], w[c+1][ka], w[c][kb], w[c+1][kb]: SXTB16 yields channel c's
    (ka, kb) pair, SXTB16 ROR 8 channel c+1's, matching the input columns that
    SXTB16 makes of the input bytes 4g..4g+3.
    """
    w2d = np.asarray(w2d, dtype=np.int8)
    out_c, k = w2d.shape
    kp = padded_k(k)
    rows = -(-out_c // row_multiple) * row_multiple
    full = np.zeros((rows, kp), dtype=np.int8)
    full[:out_c, :k] = w2d
    j = np.arange(kp // 2)
    ka = 4 * (j // 2) + j % 2
    kb = ka + 2
    pairs = full.reshape(rows // 2, 2, kp)
    b = np.stack([pairs[:, 0, ka], pairs[:, 1, ka], pairs[:, 0, kb], pairs[:, 1, kb]], axis=-1)
    words = np.ascontiguousarray(b).view("<u4").reshape(-1)
    return tuple(int(v) for v in words)


def int16_words(words, scale: int = 1) -> tuple[int, ...]:
    """``pair_rows`` words with each expanded to the two int16-pair words SXTB16 and SXTB16 ROR 8 make of
    it (channel c's pair, then channel c+1's): the layout of the _w16 kernels, which load the pairs
    with one LDM instead of expanding them on every use. Twice the flash. ``scale`` 2 doubles every
    weight (int8 doubled fits int16), for ``tile_stream``."""
    out = []
    for v in words:
        v = int(v) & 0xFFFFFFFF
        b = [(v >> (8 * i)) & 0xFF for i in range(4)]
        s8 = [scale * (x - 256 if x >= 128 else x) for x in b]
        out.append((s8[0] & 0xFFFF) | ((s8[2] & 0xFFFF) << 16))
        out.append((s8[1] & 0xFFFF) | ((s8[3] & 0xFFFF) << 16))
    return tuple(out)


#: The biased tile stream's words before each channel pair's weights (its biases, 4 times each) and after
#: them (its channels' rnd, mult, shift): TQ_TILE_LEAD_WORDS / TQ_TILE_TAIL_WORDS in tq_layout.h, generated from these.
TILE_LEAD_WORDS = 8
TILE_TAIL_WORDS = 6


def tile_stream(doubled16, chan) -> tuple[int, ...]:
    """The layout of a conv whose every channel pair runs in the requantizing tile (w16 = 2): each
    pair's doubled int16 weights (``int16_words(words, scale=2)``) led by 8 words, its channels'
    ``bias`` four times each, and followed by 6, their ``rnd, mult, shift`` in turn.

    The tile loads those 8 words into its accumulators with one LDM, so a sum comes out as
    2 * acc + bias, tq_rq_fast_x2's input, without an add per output (the value is the one
    tq_rq_fast forms, wrapping alike, so the results are the same). The parameters after the
    weights are where the weight pointer already is when the tile requantizes: one LDM each
    channel, and the pointer runs on into the next pair's biases (no reload of either pointer).
    """
    per_pair = len(doubled16) // (len(chan) // 2)
    return tuple(v for i in range(len(chan) // 2)
                 for v in _pair_stream(chan[2 * i:2 * i + 2], doubled16[i * per_pair:(i + 1) * per_pair]))


def _pair_stream(rows, body) -> list[int]:
    """One channel pair of a biased stream (tile_stream, winograd_stream): its two channels' biases
    (TILE_LEAD_WORDS, each channel's four times), ``body`` (its weights), then each channel's rnd, mult,
    shift (TILE_TAIL_WORDS)."""
    lead = [int(row[0]) & 0xFFFFFFFF for row in rows for _ in range(TILE_LEAD_WORDS // 2)]
    tail = [int(v) & 0xFFFFFFFF for row in rows for v in row[1:]]
    assert len(lead) == TILE_LEAD_WORDS and len(tail) == TILE_TAIL_WORDS
    return lead + [int(v) for v in body] + tail


#: The Winograd stream's phases, in the order the tile runs them: F(2, 3) positions 1, 2, 0, 3 (see
#: winograd_stream). tq_conv.c's transform (wino_transform, tq_wino_row) stores its positions in this
#: order; the host and QEMU op tests hold the two to the same outputs.
WINO_PHASES = (1, 2, 0, 3)


def winograd_stream(w: np.ndarray, chan) -> tuple[int, ...]:
    """A 3x3 stride-1 conv's weights [out_c, 3, 3, in_c] (in_c a multiple of 4, out_c even) for the
    Winograd tile (w16 = 3): F(2, 3) along each kernel row, so two neighbouring outputs of a row take
    4 multiplies a kernel row and input channel where they took 6.

    For kernel row g = (g0, g1, g2) of one channel, the four filter positions are scaled by 2 so that
    they are integers: (2 g0, g0 + g1 + g2, g0 - g1 + g2, 2 g2) (|u| <= 381, an int16). With the
    input transform (d0 - d2, d1 + d2, d2 - d1, d1 - d3) of the four inputs x-1 .. x+2 and
    M_i = the sum over kernel rows and channels of the products at position i, the two outputs are
    exactly (M0 + M1 + M2) / 2 and (M1 - M2 - M3) / 2: twice the sums, which is what the fast
    requantization takes (tq_rq_fast_x2), so nothing is divided.

    Each channel pair: its biases (TILE_LEAD_WORDS, as tile_stream), then a phase per position in
    WINO_PHASES order (position 3 negated: the tile only adds), each phase's K-pairs in the order
    kernel row, input word, then (c, c+2) before (c+1, c+3) (SXTB16's lanes), each K-pair two
    words: channel k's int16 pair, channel k+1's; then the pair's rnd, mult, shift (TILE_TAIL_WORDS).
    """
    w = np.asarray(w, dtype=np.int64)
    out_c, kh, kw, in_c = w.shape
    assert (kh, kw) == (3, 3) and in_c % 4 == 0 and out_c % 2 == 0
    g0, g1, g2 = w[:, :, 0, :], w[:, :, 1, :], w[:, :, 2, :]  # (out_c, row, in_c)
    u = {0: 2 * g0, 1: g0 + g1 + g2, 2: g0 - g1 + g2, 3: -2 * g2}  # position 3 negated
    c = np.arange(in_c).reshape(in_c // 4, 4)
    lanes = np.stack([c[:, [0, 2]], c[:, [1, 3]]], axis=1).reshape(-1, 2)  # K-pair -> its two channels
    out: list[int] = []
    for k in range(0, out_c, 2):
        body: list[int] = []
        for phase in WINO_PHASES:
            v = u[phase][k:k + 2]  # (2, row, in_c)
            pairs = v[:, :, lanes] & 0xFFFF  # (2, row, K-pair in the row, 2 lanes)
            words = pairs[..., 0] | (pairs[..., 1] << 16)  # (2, row, K-pair)
            body += words.reshape(2, -1).T.reshape(-1).tolist()  # per K-pair: channel k, k+1
        out += _pair_stream(chan[k:k + 2], body)
    return tuple(out)


def depthwise3x3_words(w: np.ndarray, chan=None) -> tuple[int, ...]:
    """Depthwise weights [1, 3, 3, C] (C a multiple of 4) as words of int16 pairs, per group of 4 channels.

    For channels 4g..4g+3 and each tap: (w[c], w[c+2]) and (w[c+1], w[c+3]), the words
    SMLABB/SMLATT pair with SXTB16 and SXTB16 ROR 8 of the input word. Taps come in the
    order the kernel reads them: each row right to left, so that its last load can
    advance the row pointer. With ``chan`` (the layer's tq_chan_t rows: fast path, full
    int8 range), for tq_dw3x3_rq, each group's taps are doubled and come between its 4
    channels' biases (which the sums start from: one LDM) and their rnd, mult and shift,
    so a sum is 2 * (acc + bias) with no add (34 words a group either way).
    """
    taps = np.asarray(w, dtype=np.int64).reshape(9, -1)[DW3X3_TAP_ORDER]  # (tap, C)
    if chan is not None:
        taps = 2 * taps  # the sums come out doubled: tq_rq_fast_x2's input (fits int16)
    c = taps.shape[1]
    lanes = taps.T.reshape(c // 4, 4, 9)[:, [0, 2, 1, 3], :].transpose(0, 2, 1)  # (g, tap, lane)
    u16 = lanes & 0xFFFF
    words = (u16[:, :, 0::2] | (u16[:, :, 1::2] << 16)).reshape(c // 4, 18)  # (g, tap * 2)
    out = []
    for g in range(c // 4):
        rows = chan[4 * g : 4 * g + 4] if chan is not None else ()
        out.extend(int(row[0]) & 0xFFFFFFFF for row in rows)  # the biases: where the sums start
        out.extend(int(v) for v in words[g])
        out.extend(int(v) & 0xFFFFFFFF for row in rows for v in row[1:])  # rnd, mult, shift
    return tuple(out)


def depthwise3x3_edge(w: np.ndarray, chan, input_zp: int, side: str) -> tuple[int, ...]:
    """The fused weight stream (``depthwise3x3_words`` with ``chan``) of a 3x3 depthwise layer's left
    or right border column, where one kernel column falls outside the input (padding 1, dilation 1).

    The kernel reads those pixels through a window moved inside, onto the input's first
    (``side="left"``) or last three columns: the taps shift one column, the one that would read
    padding gets weight 0, and its contribution (the input zero point times its weights, doubled
    as the fast path's bias is) goes into the bias. The sum is the padded one, exactly, and no
    patch is gathered."""
    k = np.asarray(w, dtype=np.int64).reshape(3, 3, -1)
    shifted = np.zeros_like(k)
    if side == "left":   # columns -1, 0, 1 -> 0, 1, 2: column -1 is padding
        shifted[:, 0:2], pad_col = k[:, 1:3], k[:, 0]
    else:                # columns W-2, W-1, W -> W-3, W-2, W-1: column W is padding
        shifted[:, 1:3], pad_col = k[:, 0:2], k[:, 2]
    extra = 2 * input_zp * pad_col.sum(axis=0)
    chan2 = [(int(b) + int(e), r, m, sh) for (b, r, m, sh), e in zip(chan, extra)]
    return depthwise3x3_words(shifted.reshape(1, 3, 3, -1), chan2)


def depthwise3x3_planes(w: np.ndarray, chan, transposed: bool = False) -> tuple[int, ...]:
    """Depthwise weights [1, 3, 3, C] for tq_depthwise3x3_plane_s8 (any C; ``chan``: the layer's tq_chan_t
    rows, fast path, full int8 range): per channel its bias, rnd, mult and shift, then for each
    kernel row (each kernel column when ``transposed``: the planes run down the columns) its taps
    k0, k1, k2 doubled, as the int16 pairs (k0, k1) and (k2, k1). With the inputs (x0, x1) (x2, x3)
    of one two-word load, SMLAD with the first and SMLABB with the second make one output, SMLATB
    with the first and SMLADX with the second the next (10 words a channel)."""
    k = 2 * np.asarray(w, dtype=np.int64).reshape(3, 3, -1)  # (ky, kx, C), doubled: tq_rq_fast_x2's input
    if transposed:
        k = k.transpose(1, 0, 2)
    u16 = k & 0xFFFF
    out: list[int] = []
    for c, row in enumerate(chan):
        out.extend(int(v) & 0xFFFFFFFF for v in row)
        for r in range(3):
            out += [int(u16[r, 0, c] | (u16[r, 1, c] << 16)), int(u16[r, 2, c] | (u16[r, 1, c] << 16))]
    return tuple(out)


#: Row-major tap indices in the order tq_dw3x3_sums reads them.
DW3X3_TAP_ORDER = [2, 1, 0, 5, 4, 3, 8, 7, 6]


def channel_params(w_rows: np.ndarray, bias, input_zp: int, mult, shift, output_zp: int):
    """Per output channel (bias, rnd, mult, shift) for ``tq_chan_t``, and whether the fast path holds.

    ``w_rows`` is (out_c, taps) int8: the weights every output channel sums over. The
    input zero point is folded into the bias (the kernels sum w * x over raw inputs).
    The fast path (see ``tq_rq_fast`` in tq_kernels.h) is exact when, for every channel,
    |2 * (acc + bias)| < 2^31 and SMMLAR's result fits int32; both are proven here from
    the largest sum the int8 inputs can make with these weights.
    """
    w = np.asarray(w_rows, dtype=np.int64)
    out_c = w.shape[0]
    b = [0] * out_c if bias is None else [int(v) for v in np.asarray(bias).ravel()]
    folded = [b[c] - input_zp * int(w[c].sum()) for c in range(out_c)]
    bound = [abs(folded[c]) + 128 * int(np.abs(w[c]).sum()) for c in range(out_c)]
    ok = [fast_ok(bound[c], int(mult[c]), int(shift[c]), output_zp) for c in range(out_c)]
    # A channel the proof fails for may still be constant: official models carry dead channels
    # (weights ~0, so a scale of ~1e-9 and a huge int32 bias) that hold one whole layer back on
    # the slow path otherwise. Such a channel becomes mult 0 and its value in rnd, still exact.
    const = {c: constant_output(w[c], folded[c], int(mult[c]), int(shift[c]), output_zp)
             for c in range(out_c) if not ok[c]}
    fast = all(ok[c] or const[c] is not None for c in range(out_c))
    if fast:
        rows = [(2 * folded[c], fast_rnd(int(shift[c]), output_zp), int(mult[c]), -int(shift[c])) if ok[c]
                else (0, 2 * const[c] + 1, 0, 1) for c in range(out_c)]
    else:
        rows = [(wrap_int32(folded[c]), 0, int(mult[c]), int(shift[c])) for c in range(out_c)]
    return fast, tuple(tuple(int(v) for v in r) for r in rows)


def constant_output(w_row, folded: int, mult: int, shift: int, output_zp: int) -> int | None:
    """The int8 value a channel outputs for every int8 input, or None when it can vary.

    TFLite's requantization is monotonic in the sum, so the channel is constant when the
    smallest and the largest sum its weights can make (inputs -128..127) give the same value.
    Encoded for the fast path as mult 0, shift 1, rnd 2y+1: SMMLAR then returns rnd or rnd-1,
    and either, shifted right by 1, is y.
    """
    w = np.asarray(w_row, dtype=np.int64)
    lo = folded + int(np.minimum(-128 * w, 127 * w).sum())
    hi = folded + int(np.maximum(-128 * w, 127 * w).sum())
    if lo < -(1 << 31) or hi > INT32_MAX:
        return None  # the sum could wrap: not monotonic
    y = [max(-128, min(127, multiply_by_quantized_multiplier(x, mult, shift) + output_zp)) for x in (lo, hi)]
    return y[0] if y[0] == y[1] else None


def channel_constant(w_row, bias: int, input_zp: int, mult: int, shift: int, output_zp: int, lo: int = -128,
                     hi: int = 127) -> int | None:
    """The value an output channel (its weights ``w_row``, its int32 ``bias``, the input zero point not yet
    folded) holds for every int8 input, clamped to the activation's range [lo, hi]; None when it can vary."""
    w = np.asarray(w_row, dtype=np.int64)
    v = constant_output(w, int(bias) - input_zp * int(w.sum()), mult, shift, output_zp)
    return None if v is None else max(lo, min(hi, v))


def fast_rnd(shift: int, output_zp: int) -> int:
    """tq_chan_t.rnd of the fast path: half of the right shift's divisor, and the zero point above it."""
    return (1 << (-shift - 1)) + (output_zp << -shift)


def fast_ok(bound: int, mult: int, shift: int, output_zp: int) -> bool:
    """Whether the fast requantization is exact for sums of magnitude at most ``bound``."""
    e = -shift
    if not (1 <= e <= MAX_FAST_SHIFT) or not (0 <= mult <= INT32_MAX):
        return False
    if 2 * bound > INT32_MAX:
        return False
    # SMMLAR's high word is at most |2x * M| / 2^32 + 1 <= bound + 1, plus rnd and the -1.
    return bound + 2 + (1 << (e - 1)) + abs(output_zp) * (1 << e) <= INT32_MAX
