"""Summary tables printed at the end of a run, an evaluation or a prediction."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from evtrain.records import RunMetrics


def run_summary_table(metrics: RunMetrics, run_dir: str = "") -> Table:
    """One row per validation: where training stood and what validation scored (the best row starred)."""
    title = f"evspan run {run_dir}" + ("  (synthetic demo corpus)" if metrics.synthetic_data else "")
    table = Table(title=title)
    for col in ("epoch", "step", "train loss", "val F1", "val EM", "train tok/s", "train s", "eval s"):
        table.add_column(col, justify="right")
    for h in metrics.history:
        mark = " *" if h.step == metrics.best.step else ""
        table.add_row(
            str(h.epoch),
            f"{h.step}{mark}",
            f"{h.train_loss:.4f}",
            f"{h.val_f1:.2f}",
            f"{h.val_exact_match:.2f}",
            f"{h.train_tokens_per_second:.0f}",
            f"{h.train_seconds:.1f}",
            f"{h.eval_seconds:.1f}",
        )
    return table


def scores_table(metrics: RunMetrics) -> Table:
    """Model against the trivial baselines, per split."""
    table = Table(title="Scores (SQuAD %, best checkpoint)")
    for col in ("split", "system", "F1", "EM", "n"):
        table.add_column(col, justify="right" if col in ("F1", "EM", "n") else "left")
    for split in ("val", "test"):
        scores = metrics.split(split)
        if scores is None:
            continue
        table.add_row(split, f"evspan ({metrics.model})", f"{scores.f1:.2f}", f"{scores.exact_match:.2f}", str(scores.n))
        for name, b in metrics.baselines.get(split, {}).items():
            table.add_row(split, f"baseline: {name.replace('_', ' ')}", f"{b.f1:.2f}", f"{b.exact_match:.2f}", str(b.n))
    return table


def print_run_summary(metrics: RunMetrics, run_dir: str = "", console: Console | None = None) -> None:
    """Print the history and scores tables and the headline facts of a run."""
    console = console or Console()
    console.print(run_summary_table(metrics, run_dir))
    console.print(scores_table(metrics))
    best = metrics.best
    console.print(
        f"best {best.metric} {best.value:.2f} at epoch {best.epoch} (step {best.step})"
        f"{'; stopped early' if metrics.stopped_early else ''}; {metrics.precision} on {metrics.device}; "
        f"wall {metrics.wall_seconds:.0f} s"
    )
