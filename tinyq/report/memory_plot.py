"""`memory.png` of a build: the arena over the op sequence (matplotlib, imported only here)."""

from __future__ import annotations

from pathlib import Path


def plot_memory(timeline: dict, path: Path, title: str, tflm_bytes: int | None = None,
                tflm_label: str = "TFLM arena") -> Path:
    """One bar per buffer (a tensor, tensors sharing a place, or a step's scratch) from the step that
    writes it to the last that reads it, at its arena offset; the arena's top and its peak step marked,
    and TFLM's arena for the same model as a dashed line where known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    steps = timeline["steps"]
    n = len(steps)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.35 * n + 2), 4.2))
    for b in timeline["buffers"]:
        first, last = max(b["first"], -1), min(b["last"], n)
        colour = "#3572A5" if b["kind"] == "tensor" else "#E67E22"
        ax.add_patch(Rectangle((first - 0.45, b["offset"]), last - first + 0.9, b["size"], facecolor=colour,
                               edgecolor="white", linewidth=0.6, alpha=0.85))
    top = timeline["arena_bytes"]
    ax.axhline(top, color="black", linewidth=1)
    ax.text(n - 0.5, top, f" arena {top:,} B", va="bottom", ha="right", fontsize=8)
    peak = timeline["peak_step"]
    if 0 <= peak < n:
        ax.axvline(peak, color="#C0392B", linestyle=":", linewidth=1)
        ax.text(peak, top, f"peak (step {peak}) ", color="#C0392B", fontsize=7, ha="right", va="bottom")
    ymax = top
    if tflm_bytes:
        ax.axhline(tflm_bytes, color="grey", linestyle="--", linewidth=1)
        ax.text(-0.5, tflm_bytes, f" {tflm_label} {tflm_bytes:,} B", va="bottom", fontsize=8, color="grey")
        ymax = max(ymax, tflm_bytes)
    ax.set_xlim(-1.5, n + 0.5)
    ax.set_ylim(0, ymax * 1.12)
    ax.set_xticks(range(n))
    ax.set_xticklabels([f"{i} {s}" for i, s in enumerate(steps)], rotation=90, fontsize=6)
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(f"{title}: tensors (blue) and scratch (orange) over the steps", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)
