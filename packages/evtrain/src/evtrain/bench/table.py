"""The bench report as tables: throughput and quality per side with the targets, then the step profile."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from evtrain.bench.profile import CATEGORIES, EVAL_CATEGORIES
from evtrain.bench.worker import SIDES

SIDE_TITLES = {"recipe_plain": "recipe plain", "recipe_tuned": "recipe tuned", "evspan": "evspan"}


def print_report(report: dict[str, Any], console: Console) -> None:
    """Print the results table, the step-profile table and what each side ran."""
    console.print(results_table(report))
    for table in (profile_table(report), eval_profile_table(report), ceilings_table(report)):
        if table is not None:
            console.print(table)
    for side, text in _ran(report).items():
        console.print(f"[bold]{SIDE_TITLES[side]}[/]: {text}")


def _sides(report: dict[str, Any]) -> list[str]:
    return [side for side in SIDES if side in report["summary"]["median"]]


def _ran(report: dict[str, Any]) -> dict[str, str]:
    ran = {}
    for side in _sides(report):
        run = next(r for r in report["runs"] if r["side"] == side)
        if side == "evspan":
            levers = run.get("levers", {})
            ran[side] = "evtrain.loop.train with settings.toml's levers: " + ", ".join(f"{k}={v}" for k, v in levers.items())
        else:
            ran[side] = f"transformers.Trainer + run_qa/utils_qa, {run.get('recipe', '')}"
    return ran


def results_table(report: dict[str, Any]) -> Table:
    """Median per side, evspan's ratio against the tuned recipe with its target, and against the plain recipe."""
    summary = report["summary"]
    med, ratio, targets = summary["median"], summary["ratio"], summary["targets"]
    sides = _sides(report)
    runs = report["runs"]
    opts = report["options"]
    peaks = report["matmul_peak_gflops"]
    count = {side: sum(1 for r in runs if r["side"] == side) for side in sides}
    title = f"invoke bench: {report['model']}, {opts['steps']} steps x {opts['batch_size']} windows"
    if report["data"]["synthetic"]:
        title += ", synthetic demo corpus"
    caption = (
        f"Medians over runs ({', '.join(f'{SIDE_TITLES[s]} x{count[s]}' for s in sides)}). train: the timed steps; "
        "eval: fastest pass of forward + decoding + scoring; quality: SQuAD 2.0 on the same val examples, "
        "each side's null threshold tuned on them for best F1; span F1: each answerable example's best span, "
        "no-answer option ignored (what was learned, before the threshold hides it); GFLOP/s: matmul FLOPs of "
        f"real tokens. Matmul peak measured here: fp32 {peaks['fp32']:.0f}, "
        f"bf16 {peaks.get('bf16', 0):.0f} GFLOP/s."
    )
    table = Table(title=title, caption=caption)
    table.add_column("")
    for side in sides:
        table.add_column(SIDE_TITLES[side].replace("recipe ", ""), justify="right")
    table.add_column("÷tuned", justify="right")
    table.add_column("target")
    table.add_column("÷plain", justify="right")

    def versus(key: str, side: str) -> str:
        value = ratio.get(side, {}).get(key)
        if value is None or value != value:
            return ""
        # Two decimals, or three where two would round a missed "<= 1x" onto the target (1.004x shown as 1.00x).
        return f"{value:.3f}x" if round(value, 2) == 1.0 and value != 1.0 else f"{value:.2f}x"

    def target(key: str) -> str:
        t = targets[key]
        return f"{t['target'].split()[0]} " + ("[green]met[/]" if t["met"] else "[red]missed[/]")

    def row(label: str, key: str, fmt: str, *, goal: str = "", ratios: bool = True) -> None:
        cells = [format(med[s][key], fmt) for s in sides]
        table.add_row(
            label,
            *cells,
            versus(key, "recipe_tuned") if ratios else "",
            target(goal) if goal else "",
            versus(key, "recipe_plain") if ratios else "",
        )

    table.add_row("precision", *(next(r["precision_peak"] for r in runs if r["side"] == s) for s in sides), "", "", "")
    row("train tok/s", "train_tokens_per_second", ".0f", goal="train_tokens_per_second")
    row("train windows/s", "train_windows_per_second", ".2f")
    row("train s/step", "train_seconds_per_step", ".2f", ratios=False)
    row("train padding", "train_padding_share", ".0%", ratios=False)
    row("step GFLOP/s", "train_executed_gflops", ".0f", ratios=False)
    row("  of bf16 peak", "train_executed_bf16_peak_fraction", ".0%", goal="train_executed_bf16_peak_fraction", ratios=False)
    row("eval windows/s", "eval_windows_per_second", ".1f", goal="eval_windows_per_second")
    row("eval tok/s", "eval_tokens_per_second", ".0f")
    row("eval padding", "eval_padding_share", ".0%", ratios=False)
    row("eval GFLOP/s", "eval_useful_gflops", ".0f", ratios=False)
    row("  of bf16 peak", "eval_useful_bf16_peak_fraction", ".0%", ratios=False)
    table.add_row("val F1", *(f"{med[s]['val_f1']:.2f}" for s in sides), f"{summary['f1_gap']:+.2f}", target("val_f1"), "")
    row("val EM", "val_exact_match", ".2f", ratios=False)
    row("val HasAns F1", "val_has_ans_f1", ".2f", ratios=False)
    span_gap = summary.get("span_f1_gap", float("nan"))
    table.add_row(
        "val span F1 (best span)",
        *(f"{med[s].get('val_span_f1', float('nan')):.2f}" for s in sides),
        f"{span_gap:+.2f}",
        target("val_span_f1"),
        "",
    )
    row("val NoAns exact", "val_no_ans_exact", ".2f", ratios=False)
    row("null threshold", "val_null_threshold", ".2f", ratios=False)
    row("peak RSS MiB", "peak_rss_mib", ".0f", goal="peak_rss_mib")
    return table


def profile_table(report: dict[str, Any]) -> Table | None:
    """Milliseconds per training step by category on each side (torch.profiler, medians over runs), or None without profiles."""
    steps = report["options"].get("profile_steps", 0)
    title = f"Where a training step's time goes (ms per step, torch.profiler over {steps} steps of each run)"
    return _category_table(report, "profile", CATEGORIES, title, total="step (profiled)", digits=0)


def eval_profile_table(report: dict[str, Any]) -> Table | None:
    """Milliseconds per window of an evaluation forward pass by category (evspan's inference copy), or None without one."""
    title = "Where an evaluation forward pass's time goes (ms per window, torch.profiler, an even sample of the val windows)"
    return _category_table(report, "eval_profile", EVAL_CATEGORIES, title, total="per window (profiled)", digits=1)


def _category_table(
    report: dict[str, Any], key: str, categories: tuple[tuple[str, str], ...], title: str, *, total: str, digits: int
) -> Table | None:
    """One row per category, one column per side that has the summary's ``key`` profile: milliseconds and share."""
    profiles = report["summary"].get(key) or {}
    sides = [s for s in _sides(report) if s in profiles]
    if not sides:
        return None
    table = Table(title=title)
    table.add_column("category")
    for side in sides:
        table.add_column(SIDE_TITLES[side], justify="right")
    for category, label in categories:
        cells = []
        for side in sides:
            ms, whole = profiles[side][category], profiles[side]["step_ms"]
            cells.append(f"{ms:.{digits}f} ({ms / whole:.0%})" if whole else f"{ms:.{digits}f}")
        table.add_row(label, *cells)
    table.add_row(f"[bold]{total}[/]", *(f"[bold]{profiles[s]['step_ms']:.{digits}f}[/]" for s in sides))
    return table


def ceilings_table(report: dict[str, Any]) -> Table | None:
    """evspan's ratio against the tuned recipe as measured, and the two ceilings on it (``runner.ceilings``)."""
    summary = report["summary"]
    found = summary.get("ceilings") or {}
    if not found:
        return None
    headline = summary["ratio"].get(summary["headline"], {})
    table = Table(
        title="How far the ratios against the tuned recipe can go on this machine",
        caption="at bf16 peak: all of the work's matmul FLOPs at the bf16 peak measured above; linear only: evspan's "
        "measured ratio if everything in its profile but the linear layers took no time",
    )
    table.add_column("")
    table.add_column("measured", justify="right")
    table.add_column("at bf16 peak", justify="right")
    table.add_column("linear only", justify="right")
    table.add_column("target", justify="right")

    def cell(key: str) -> str:
        return f"{found[key]:.2f}x" if key in found else ""

    for label, ratio_key, prefix, target in (
        ("train tok/s", "train_tokens_per_second", "train", summary["targets"]["train_tokens_per_second"]["target"]),
        ("eval windows/s", "eval_windows_per_second", "eval", summary["targets"]["eval_windows_per_second"]["target"]),
    ):
        table.add_row(
            label, f"{headline.get(ratio_key, float('nan')):.2f}x", cell(f"{prefix}_at_bf16_peak"), cell(f"{prefix}_linear_only"), target
        )
    return table
