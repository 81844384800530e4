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


def _systems(metrics: RunMetrics):
    """(split, system name, scores) for the model and each baseline, on the same rows of each split."""
    for split in ("val", "test"):
        scores = metrics.split(split)
        if scores is None:
            continue
        yield split, "evspan", scores
        for name, b in metrics.baselines.get(split, {}).items():
            yield split, name.replace("_", " "), b


def scores_table(metrics: RunMetrics) -> Table:
    """SQuAD 2.0 figures of the model and the baselines per split, at the run's no-answer threshold."""
    threshold = "" if metrics.null_threshold is None else f"; no-answer threshold {metrics.null_threshold:.2f}, {metrics.threshold_source}"
    table = Table(title=f"Scores, SQuAD 2.0 (%, best checkpoint of {metrics.model}{threshold})")
    for col in ("split", "system", "F1", "EM", "HasAns F1", "NoAns acc", "n"):
        table.add_column(col, justify="left" if col in ("split", "system") else "right")
    for split, name, s in _systems(metrics):
        table.add_row(split, name, f"{s.f1:.2f}", f"{s.exact_match:.2f}", f"{s.has_ans_f1:.2f}", f"{s.no_ans_exact:.2f}", str(s.n))
    return table


def detection_summary_table(metrics: RunMetrics) -> Table:
    """Post-level symptom detection and evidence-span figures of the model and the baselines, on the same rows."""
    table = Table(title="Symptom detection (post level, macro/micro F1) and evidence spans (precision, recall, F1), %")
    for col in ("split", "system", "macro F1", "micro F1", "span P", "span R", "span F1"):
        table.add_column(col, justify="left" if col in ("split", "system") else "right")
    for split, name, s in _systems(metrics):
        table.add_row(
            split,
            name,
            f"{s.symptom_macro_f1:.2f}",
            f"{s.symptom_micro_f1:.2f}",
            f"{s.evidence_precision:.2f}",
            f"{s.evidence_recall:.2f}",
            f"{s.evidence_f1:.2f}",
        )
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
    console.print(detection_summary_table(metrics))
    detection = detection_table(metrics)
    if detection is not None:
        console.print(detection)
    best = metrics.best
    console.print(
        f"best {best.metric} {best.value:.2f} at epoch {best.epoch} (step {best.step})"
        f"{'; stopped early' if metrics.stopped_early else ''}; {metrics.precision} on {metrics.device}; "
        f"wall {metrics.wall_seconds:.0f} s"
    )
