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
    """Model against the baselines, per split, on the same rows: SQuAD 2.0 at the run's threshold, symptom detection, evidence."""
    threshold = "" if metrics.null_threshold is None else f", no-answer threshold {metrics.null_threshold:.2f} ({metrics.threshold_source})"
    table = Table(title=f"Scores (%, best checkpoint{threshold})")
    columns = ("split", "system", "F1", "EM", "HasAns F1", "NoAns acc", "symptom macro F1", "symptom micro F1", "evidence F1", "n")
    for col in columns:
        table.add_column(col, justify="left" if col in ("split", "system") else "right")

    def row(split: str, name: str, s) -> None:
        table.add_row(
            split,
            name,
            f"{s.f1:.2f}",
            f"{s.exact_match:.2f}",
            f"{s.has_ans_f1:.2f}",
            f"{s.no_ans_exact:.2f}",
            f"{s.symptom_macro_f1:.2f}",
            f"{s.symptom_micro_f1:.2f}",
            f"{s.evidence_f1:.2f}",
            str(s.n),
        )

    for split in ("val", "test"):
        scores = metrics.split(split)
        if scores is None:
            continue
        row(split, f"evspan ({metrics.model})", scores)
        for name, b in metrics.baselines.get(split, {}).items():
            row(split, f"baseline: {name.replace('_', ' ')}", b)
    return table


def detection_table(metrics: RunMetrics, split: str = "test") -> Table | None:
    """Per-symptom detection (does the post hold evidence for it?) of the best checkpoint on ``split``."""
    scores = metrics.split(split)
    if scores is None or not scores.per_symptom:
        return None
    table = Table(title=f"Symptom detection on {split} (%, post level)")
    for col in ("symptom", "precision", "recall", "F1", "support", "predicted"):
        table.add_column(col, justify="left" if col == "symptom" else "right")
    for r in scores.per_symptom:
        table.add_row(r.symptom, f"{r.precision:.1f}", f"{r.recall:.1f}", f"{r.f1:.1f}", str(r.support), str(r.predicted))
    table.add_row(
        "macro", f"{scores.symptom_macro_precision:.1f}", f"{scores.symptom_macro_recall:.1f}", f"{scores.symptom_macro_f1:.1f}", "", ""
    )
    return table


def print_run_summary(metrics: RunMetrics, run_dir: str = "", console: Console | None = None) -> None:
    """Print the history and scores tables and the headline facts of a run."""
    console = console or Console()
    console.print(run_summary_table(metrics, run_dir))
    console.print(scores_table(metrics))
    detection = detection_table(metrics)
    if detection is not None:
        console.print(detection)
    best = metrics.best
    console.print(
        f"best {best.metric} {best.value:.2f} at epoch {best.epoch} (step {best.step})"
        f"{'; stopped early' if metrics.stopped_early else ''}; {metrics.precision} on {metrics.device}; "
        f"wall {metrics.wall_seconds:.0f} s"
    )
