"""Training curves as a PNG (matplotlib, headless)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from evdata.atomic import atomic_write_bytes
from evtrain.records import HistoryRow


def _pyplot():
    """matplotlib's pyplot on the headless Agg backend (imported on first use: matplotlib is slow to import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_png(fig, path: Path) -> Path:
    """Lay out ``fig``, write it as a PNG to ``path`` atomically, and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def plot_training_curves(history: Sequence[HistoryRow], path: Path, title: str = "") -> Path | None:
    """Train loss and validation F1/EM per evaluation, written atomically to ``path``."""
    if not history:
        return None
    plt = _pyplot()
    steps = [h.step for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 3.8))
    ax_loss.plot(steps, [h.train_loss for h in history], marker="o")
    ax_loss.set_xlabel("optimizer step")
    ax_loss.set_ylabel("train loss (mean since last evaluation)")
    ax_loss.grid(alpha=0.3)
    ax_val.plot(steps, [h.val_f1 for h in history], marker="o", label="val F1")
    ax_val.plot(steps, [h.val_exact_match for h in history], marker="s", label="val EM")
    ax_val.set_xlabel("optimizer step")
    ax_val.set_ylabel("%")
    ax_val.legend()
    ax_val.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return _save_png(fig, path)


def plot_threshold_curve(points: Sequence[tuple[float, float]], chosen: float, path: Path, title: str = "") -> Path | None:
    """Validation F1 (%) against the no-answer threshold, the chosen threshold marked; written atomically to ``path``."""
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot([p[0] for p in points], [p[1] for p in points], marker=".")
    ax.axvline(chosen, color="tab:red", linestyle="--", label=f"tuned threshold {chosen:.2f}")
    ax.set_xlabel("no-answer threshold (null score - best span score)")
    ax.set_ylabel("validation F1 (SQuAD 2.0, %)")
    ax.legend()
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return _save_png(fig, path)
