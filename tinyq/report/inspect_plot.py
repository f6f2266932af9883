"""Per-layer weight histograms for `tinyq inspect --plot` (matplotlib, imported only here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tinyq.graph import Graph


def int8_histogram(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, count) for every int8 value: one bin each, so the zeros of a pruned model are a bar of their own."""
    counts = np.bincount(np.asarray(values).ravel().astype(np.int64) + 128, minlength=256)
    return np.arange(-128, 128), counts


def plot_weight_histograms(graph: Graph, path: Path) -> Path:
    """One histogram per weighted layer (int8 values), in a grid, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = [(op, graph.tensors[op.inputs[1]]) for op in graph.operators
              if op.opcode in ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")
              and len(op.inputs) > 1 and graph.tensors[op.inputs[1]].is_constant]
    n = max(len(layers), 1)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.8 * rows), squeeze=False)
    for ax in axes.ravel()[len(layers):]:
        ax.axis("off")
    for ax, (op, w) in zip(axes.ravel(), layers):
        values = w.data.ravel()
        zeros = float(np.mean(values == 0))
        # The zero bar in red: a pruned model's zeros stand apart.
        bins, counts = int8_histogram(values)
        ax.bar(bins, counts, width=1.0, color=np.where(bins == 0, "#C0392B", "#3572A5"))
        ax.set_xlim(-128, 128)
        ax.set_title(f"op {op.index} {op.opcode} {list(w.shape)}, {zeros:.1%} zeros", fontsize=8)
        ax.set_xlabel("int8 weight", fontsize=7)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    # format= from the suffix: matplotlib would otherwise append ".png" to a name it does not know.
    fig.savefig(path, dpi=100, format=Path(path).suffix.lstrip(".").lower() or "png")
    plt.close(fig)
    return Path(path)
