"""BATCH_MATMUL, int8: TFLM's BatchMatMul (reference_ops::BatchMatMul with both zero points), through the conv's tile.

TFLM computes out[b, m, n] = requant(sum_k (lhs[b, m, k] - zp_l) * (rhs[b, k, n] - zp_r)) with one per-tensor
multiplier (GetQuantizedConvolutionMultipler) and the full int8 range, batch dimensions broadcast as NumPy does
(adj_x / adj_y transpose the last two dimensions of an operand). tinyq runs each matrix product as the conv runs
its pixels: four LHS rows at a time become im2col columns of int16 (x - zp_l) pairs (one SXTAB16 a pair: the
zero point costs nothing), and the RHS, as int16 (x - zp_r) pairs in the _w16 weight layout, goes through
tq_conv_tile_w16 two output columns at a time (each RHS word meets 4 rows). Both zero points come off before the
multiply, so there is no cross term to fold, whichever operand is an activation. A constant RHS is packed on the
host (pack_rhs: twice its int8 bytes of flash); an RHS computed at run time
is packed into scratch, once per distinct RHS matrix.
"""

from __future__ import annotations

import numpy as np

from tinyq.errors import UnsupportedModelError
from tinyq.graph import Graph, Operator
from tinyq.compile.ops import ConstArray, KernelCall, Operands, lowering, op_macs
from tinyq.compile.ops.cexpr import formula, select
from tinyq.compile.ops.kernel import F, Kernel, Struct, kernel, struct
from tinyq.compile.ops.layout import fast_ok, fast_rnd, padded_k
from tinyq.compile.ops.lower_ops import _c_array
from tinyq.compile.ops.quant import per_tensor_fc_multiplier

PARAMS = struct(Struct("tq_bmm_params_t", (
    F("uint16_t", "rows, depth, cols", "each product: (rows x depth) . (depth x cols)"),
    F("uint16_t", "k_pairs", "depth padded to a multiple of 4, halved"),
    F("uint16_t", "batch[3]", "the output's batch dimensions (leading 1s added)"),
    F("uint32_t", "lhs_step[3], rhs_step[3]", "matrices an operand moves on per batch index, 0 where broadcast"),
    F("int32_t", "lhs_row_step, lhs_k_step", "bytes between LHS elements (m, k) and (m + 1, k), (m, k + 1)"),
    F("int32_t", "rhs_col_step, rhs_k_step", "bytes between RHS elements (k, n) and (k, n + 1), (k + 1, n)"),
    F("int32_t", "lhs_zp, rhs_zp, output_offset"),
    F("uint8_t", "fast", "requantization: 1 the fast path (chan rows: bias 0), 0 the exact long way"),
    F("uint8_t", "rhs_packed", "1: rhs is the host's packed words (a constant RHS), 0: the int8 tensor, packed here"),
    F("const tq_chan_t", "*chan", "cols rows, all with the one multiplier"),
    F("void", "*scratch", "4 im2col columns, a partial group's output, and an RHS packed at run time"),
), doc="BATCH_MATMUL (tinyq/compile/ops/kernels/batch_matmul.py): out = requant((lhs - lhs_zp) . (rhs - rhs_zp)),\n"
       "each batch's product four LHS rows at a time through tq_conv_tile_w16."))


@formula("tq_bmm_scratch_bytes", PARAMS.name,
         doc="tq_batch_matmul_s8: 4 int16 columns a K-pair, a group of 4 output rows, and (an RHS computed at run\n"
             "time) its matrix as int16 pairs, cols rounded up to even.")
def bmm_scratch(v):
    return 16 * v.k_pairs + 4 * v.cols + select(v.rhs_packed, 0, 4 * v.k_pairs * (v.cols + v.cols % 2))


KERNEL = kernel(Kernel("tq_batch_matmul_s8", "batch_matmul", PARAMS.name,
                       "const int8_t *lhs, const void *rhs, int8_t *out", opcodes=("BATCH_MATMUL",),
                       scratch=bmm_scratch,
                       doc="BATCH_MATMUL, int8, both zero points, broadcast batches, adj_x / adj_y."))


def pack_rhs(b: np.ndarray, zp: int) -> tuple[int, ...]:
    """One RHS matrix (depth, cols) int8 as tq_batch_matmul_s8 reads it: the _w16 weight layout of its columns
    (each column an output channel), values b - zp as int16. Column pair (n, n + 1), K-pair j (elements
    ka = 4 (j // 2) + j % 2 and kb = ka + 2): word 2j holds column n's (ka, kb), word 2j + 1 column n + 1's,
    low half first. Depth is padded with zeros to a multiple of 4, cols to even."""
    k, n = b.shape
    kp, nn = padded_k(k), n + n % 2
    v = np.zeros((kp, nn), dtype=np.int64)
    v[:k, :n] = b.astype(np.int64) - zp
    j = np.arange(kp // 2)
    ka = 4 * (j // 2) + j % 2
    lanes = (v[ka] & 0xFFFF) | ((v[ka + 2] & 0xFFFF) << 16)  # (K-pair, column)
    words = lanes.T.reshape(nn // 2, 2, kp // 2).transpose(0, 2, 1)  # (pair, K-pair, column of the pair)
    return tuple(int(w) for w in words.reshape(-1))


def _batch_steps(shape, out_batch) -> list[int]:
    """Matrices an operand of ``shape`` moves on per index of each of the 3 output batch dimensions."""
    dims = [1] * (3 - (len(shape) - 2)) + list(shape[:-2])
    steps, step = [0, 0, 0], 1
    for i in (2, 1, 0):
        steps[i] = 0 if dims[i] == 1 and out_batch[i] != 1 else step
        step *= dims[i]
    return steps


@lowering("BATCH_MATMUL", operands=Operands(inputs=(2, 2)))
def lower_batch_matmul(graph: Graph, op: Operator) -> KernelCall:
    t = graph.tensors
    a, b, y = t[op.inputs[0]], t[op.inputs[1]], t[op.outputs[0]]
    adj_x, adj_y = bool(op.options.get("adj_x")), bool(op.options.get("adj_y"))
    m, k = (a.shape[-1], a.shape[-2]) if adj_x else (a.shape[-2], a.shape[-1])
    n = b.shape[-2] if adj_y else b.shape[-1]
    out_batch = [1] * (3 - (len(y.shape) - 2)) + list(y.shape[:-2])
    lhs_step, rhs_step = _batch_steps(a.shape, out_batch), _batch_steps(b.shape, out_batch)
    if not any(rhs_step) and not adj_x and lhs_step == _batch_steps(y.shape, out_batch):
        # One RHS for every batch, the LHS's batches in order: one product of all their rows.
        m, out_batch, lhs_step = m * int(np.prod(out_batch)), [1, 1, 1], [0, 0, 0]
    if max(m, k, n) > 0xFFFF:
        raise UnsupportedModelError(f"op {op.index} BATCH_MATMUL of {m} x {k} by {k} x {n}: a dimension past 65535",
                                    hint="tinyq's BATCH_MATMUL takes matrices of at most 65535 rows, columns and depth")
    zp_l, zp_r, zp_out = int(a.quant.zero_point[0]), int(b.quant.zero_point[0]), int(y.quant.zero_point[0])
    mult, shift = per_tensor_fc_multiplier(a.quant.scale[0], b.quant.scale[0], y.quant.scale[0])
    # The largest |sum| the int8 operands can make once their zero points are off: the fast path's proof.
    bound = k * max(128 + zp_l, 127 - zp_l) * max(128 + zp_r, 127 - zp_r)
    fast = fast_ok(bound, mult, shift, zp_out)
    row = (0, fast_rnd(shift, zp_out), mult, -shift) if fast else (0, 0, mult, shift)
    k_pairs = padded_k(k) // 2
    packed = b.is_constant
    arrays = [ConstArray("chan", "tq_chan_t", (row,) * n)]
    if packed:
        mats = b.data.reshape(-1, *b.shape[-2:])
        arrays.append(ConstArray("w", "uint32_t", tuple(
            w for mat in mats for w in pack_rhs(mat.T if adj_y else mat, zp_r))))
    params = (("rows", m), ("depth", k), ("cols", n), ("k_pairs", k_pairs),
              ("batch", _c_array(out_batch)), ("lhs_step", _c_array(lhs_step)), ("rhs_step", _c_array(rhs_step)),
              ("lhs_row_step", 1 if adj_x else k), ("lhs_k_step", m if adj_x else 1),
              ("rhs_col_step", k if adj_y else 1), ("rhs_k_step", 1 if adj_y else n),
              ("lhs_zp", zp_l), ("rhs_zp", zp_r), ("output_offset", zp_out), ("fast", int(fast)),
              ("rhs_packed", int(packed)), ("chan", "@chan"), ("scratch", "$scratch"))
    return KernelCall(
        function=KERNEL.symbol,
        params_type=PARAMS.name,
        params=params,
        args=(a.index, "@w" if packed else b.index, y.index),
        arrays=tuple(arrays),
        macs=op_macs(graph, op),
        scratch_bytes=bmm_scratch.eval({"k_pairs": k_pairs, "cols": n, "rhs_packed": int(packed)}),
        consumes=(b.index,) if packed else (),
    )

