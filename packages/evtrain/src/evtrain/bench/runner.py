"""``invoke bench``: alternate the recipe and evspan in child processes, print the table, write the JSON.

Each side runs ``rounds`` times, alternating (recipe, evspan, recipe, evspan, ...), every run in a
fresh process of its own so its peak resident memory is its own. Rates are real (non-padding)
tokens and windows per second; the table shows the median over rounds and the ratio evspan/recipe
against the targets of the benchmark. Quality is SQuAD 2.0 on the same validation examples, each side's
null threshold tuned on them for best F1.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
from rich.console import Console
from rich.table import Table

from evdata.atomic import atomic_write_json
from evdata.dataset import Dataset
from evtrain.bench.options import BenchOptions
from evtrain.bench.worker import SIDES, write_spec
from evtrain.runs import RunError, timestamp
from evtrain.settings import RunSettings

BENCH_ROOT = Path("artifacts") / "bench"

# evspan/recipe ratios the benchmark aims for (training also has a stretch goal of 5x).
TRAIN_TARGET, TRAIN_STRETCH, EVAL_TARGET, F1_TOLERANCE = 3.0, 5.0, 3.0, 1.0
_LOG_TAIL = 30


class BenchError(RunError):
    """A side of the benchmark failed or could not start; the message names it and shows its log."""


def run_rates(result: dict[str, Any], peaks: dict[str, float]) -> dict[str, float]:
    """Per-run rates: tokens and windows per second (train, eval), GFLOP/s and their share of the matching peak."""
    train, evaluation = result["train"], result["eval"]
    seconds = max(train["seconds"], 1e-9)
    eval_seconds = max(evaluation["seconds"], 1e-9)
    peak = peaks.get(result["precision_peak"]) or peaks.get("fp32") or 0.0
    executed = train["executed_flops"] / seconds / 1e9
    useful = train["useful_flops"] / seconds / 1e9
    return {
        "train_tokens_per_second": train["real_tokens"] / seconds,
        "train_windows_per_second": train["windows"] / seconds,
        "train_seconds_per_step": seconds / max(1, train["steps"]),
        "train_padding_share": 1 - train["real_tokens"] / max(1, train["padded_tokens"]),
        "train_executed_gflops": executed,
        "train_useful_gflops": useful,
        "train_executed_peak_fraction": executed / peak if peak else 0.0,
        "train_useful_peak_fraction": useful / peak if peak else 0.0,
        "eval_tokens_per_second": evaluation["real_tokens"] / eval_seconds,
        "eval_windows_per_second": evaluation["windows"] / eval_seconds,
        "eval_padding_share": 1 - evaluation["real_tokens"] / max(1, evaluation["padded_tokens"]),
        "val_f1": float(result["quality"]["f1"]),
        "val_exact_match": float(result["quality"]["exact_match"]),
        "val_has_ans_f1": float(result["quality"]["has_ans_f1"]),
        "val_no_ans_exact": float(result["quality"]["no_ans_exact"]),
        "val_null_threshold": float(result["quality"]["threshold"]),
        "peak_rss_mib": float(result["peak_rss_mib"]),
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median of every rate per side, the evspan/recipe ratios, and each target met or not."""
    medians: dict[str, dict[str, float]] = {}
    for side in SIDES:
        rates = [r["rates"] for r in runs if r["side"] == side]
        medians[side] = {key: statistics.median(r[key] for r in rates) for key in rates[0]} if rates else {}
    recipe, ours = medians["recipe"], medians["evspan"]

    def ratio(key: str) -> float:
        return ours[key] / recipe[key] if recipe.get(key) else float("nan")

    ratios = {
        key: ratio(key)
        for key in (
            "train_tokens_per_second",
            "train_windows_per_second",
            "eval_tokens_per_second",
            "eval_windows_per_second",
            "peak_rss_mib",
        )
    }
    f1_gap = ours["val_f1"] - recipe["val_f1"]
    targets = {
        "train_tokens_per_second": {
            "target": f">={TRAIN_TARGET:g}x ({TRAIN_STRETCH:g}x)",
            "reached": ratios["train_tokens_per_second"],
            "met": ratios["train_tokens_per_second"] >= TRAIN_TARGET,
        },
        "eval_tokens_per_second": {
            "target": f">={EVAL_TARGET:g}x",
            "reached": ratios["eval_tokens_per_second"],
            "met": ratios["eval_tokens_per_second"] >= EVAL_TARGET,
        },
        "val_f1": {"target": f">=-{F1_TOLERANCE:g}", "reached": f1_gap, "met": f1_gap >= -F1_TOLERANCE},
        "peak_rss_mib": {"target": "<=1x", "reached": ratios["peak_rss_mib"], "met": ratios["peak_rss_mib"] <= 1.0},
    }
    return {"median": medians, "ratio": ratios, "f1_gap": f1_gap, "targets": targets}


def bench_table(report: dict[str, Any]) -> Table:
    """The rich table of a benchmark report: median per side, the ratio evspan/recipe and its target."""
    summary = report["summary"]
    med, ratio, targets = summary["median"], summary["ratio"], summary["targets"]
    recipe, ours = med["recipe"], med["evspan"]
    runs = report["runs"]
    precision = {side: next(r["precision"] for r in runs if r["side"] == side) for side in SIDES}
    peak_name = {side: next(r["precision_peak"] for r in runs if r["side"] == side) for side in SIDES}
    peaks = report["matmul_peak_gflops"]
    opts = report["options"]
    title = f"invoke bench: {report['model']}, {opts['steps']} steps x {opts['batch_size']}, {opts['rounds']} runs per side"
    if report["data"]["synthetic"]:
        title += " (synthetic demo corpus)"
    caption = (
        f"train: all {opts['steps']} steps of a run; eval: the fastest of {opts.get('eval_repeats', 1)} passes of a run "
        "(forward + decoding + scoring); quality: SQuAD 2.0 on the same val examples, each side's null threshold "
        "tuned on them for best F1; each figure is the median over runs"
    )
    table = Table(title=title, caption=caption)
    for name, justify in (("median", "left"), ("HF recipe", "right"), ("evspan", "right"), ("evspan/recipe  target", "left")):
        table.add_column(name, justify=justify)

    def verdict(key: str, shown: str) -> str:
        t = targets[key]
        return f"{shown}  {t['target']} " + ("[green]met[/]" if t["met"] else "[red]missed[/]")

    def both(key: str, fmt: str) -> tuple[str, str]:
        return format(recipe[key], fmt), format(ours[key], fmt)

    def gflops(kind: str) -> tuple[str, ...]:
        return tuple(
            f"{m[f'train_{kind}_gflops']:.0f} = {m[f'train_{kind}_peak_fraction']:.0%} {peak_name[side]}"
            for side, m in (("recipe", recipe), ("evspan", ours))
        )

    table.add_row("precision", precision["recipe"], precision["evspan"], "")
    table.add_row(
        "train tokens/s",
        *both("train_tokens_per_second", ".0f"),
        verdict("train_tokens_per_second", f"{ratio['train_tokens_per_second']:.2f}x"),
    )
    table.add_row("train windows/s", *both("train_windows_per_second", ".2f"), f"{ratio['train_windows_per_second']:.2f}x")
    table.add_row("train s/step", *both("train_seconds_per_step", ".2f"), "")
    table.add_row("train padding", *both("train_padding_share", ".0%"), "")
    table.add_row("GFLOP/s executed", *gflops("executed"), "of own-precision peak")
    table.add_row("GFLOP/s useful", *gflops("useful"), "real tokens only")
    table.add_row(
        "eval tokens/s",
        *both("eval_tokens_per_second", ".0f"),
        verdict("eval_tokens_per_second", f"{ratio['eval_tokens_per_second']:.2f}x"),
    )
    table.add_row("eval windows/s", *both("eval_windows_per_second", ".2f"), f"{ratio['eval_windows_per_second']:.2f}x")
    table.add_row("val F1 (SQuAD 2.0)", *both("val_f1", ".2f"), verdict("val_f1", f"{summary['f1_gap']:+.2f}"))
    table.add_row("val EM (SQuAD 2.0)", *both("val_exact_match", ".2f"), "")
    table.add_row("val HasAns F1", *both("val_has_ans_f1", ".2f"), "evidence examples")
    table.add_row("val NoAns exact", *both("val_no_ans_exact", ".2f"), 'others, "" right')
    table.add_row("null threshold", *both("val_null_threshold", ".2f"), "tuned on val")
    table.add_row("peak RSS MiB", *both("peak_rss_mib", ".0f"), verdict("peak_rss_mib", f"{ratio['peak_rss_mib']:.2f}x"))
    table.add_row("matmul GFLOP/s", f"fp32 {peaks['fp32']:.0f}", f"bf16 {peaks.get('bf16', 0):.0f}", "measured here")
    return table


def _run_child(side: str, round_index: int, spec: Path, workdir: Path, timeout: int) -> dict[str, Any]:
    import json

    run_dir = workdir / f"{round_index + 1}-{side}"
    run_dir.mkdir(parents=True, exist_ok=True)
    result_path, log_path = run_dir / "result.json", run_dir / "log.txt"
    # Tokenizers' own threads would fight the two sides' torch threads for the same cores.
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "evtrain.bench.worker", str(spec), side, str(result_path), str(run_dir)]
    with open(log_path, "w", encoding="utf-8") as log:
        try:
            done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise BenchError(f"bench: the {side} side (round {round_index + 1}) ran past {timeout} s; its log: {log_path}") from None
    if done.returncode != 0 or not result_path.is_file():
        tail = "\n".join(log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-_LOG_TAIL:])
        raise BenchError(
            f"bench: the {side} side (round {round_index + 1}) failed with exit code {done.returncode}; last lines of its log:\n{tail}"
        )
    return json.loads(result_path.read_text(encoding="utf-8"))


def run_bench(
    settings: RunSettings,
    options: BenchOptions,
    dataset: Dataset,
    *,
    output_dir: str | Path = BENCH_ROOT,
    console: Console | None = None,
) -> dict[str, Any]:
    """Run the benchmark on the train split and the first ``options.eval_examples`` val examples; write and print the report.

    Returns the report (also written to ``output_dir/<UTC timestamp>.json``).
    """
    import torch

    from evmodel.device import resolve_device
    from evtrain.bench.hardware import machine_description, matmul_peak
    from evtrain.components import configure_threads

    console = console or Console()
    t0 = time.perf_counter()
    train_examples = tuple(dataset.split.examples.get("train", ()))
    val = tuple(dataset.split.examples.get("val", ()))
    eval_examples = val[: options.eval_examples] if options.eval_examples else val
    if not train_examples or not eval_examples:
        raise BenchError(
            f"bench: needs training and validation examples, got {len(train_examples)} train and {len(eval_examples)} val; check the corpus and data.*_ratio"
        )

    threads = configure_threads(settings.train.num_threads)
    device = str(resolve_device(settings.train.device))
    console.print(f"Measuring the matmul peak (fp32, bf16) on {device}" + (f" with {threads} threads ..." if device == "cpu" else " ..."))
    peak_detail = {
        "fp32": matmul_peak(torch.float32, seconds_per_shape=options.peak_seconds, device=device),
        "bf16": matmul_peak(torch.bfloat16, seconds_per_shape=options.peak_seconds, device=device),
    }
    peaks = {name: float(detail["gflops"]) for name, detail in peak_detail.items()}
    console.print(f"  fp32 {peaks['fp32']:.0f} GFLOP/s, bf16 {peaks['bf16']:.0f} GFLOP/s")

    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="evspan-bench-") as tmp:
        workdir = Path(tmp)
        spec = write_spec(workdir / "spec.json", settings, options, train_examples, eval_examples, synthetic=bool(dataset.corpus.synthetic))
        console.print(
            f"Benchmarking {settings.model.name}: {len(train_examples)} train examples, {len(eval_examples)} val examples, "
            f"{options.steps} steps of {options.batch_size} windows, {options.rounds} rounds per side"
        )
        for round_index in range(options.rounds):
            for side in SIDES:
                started = time.perf_counter()
                result = _run_child(side, round_index, spec, workdir, options.side_timeout)
                result["round"] = round_index + 1
                result["rates"] = run_rates(result, peaks)
                runs.append(result)
                r = result["rates"]
                console.print(
                    f"  round {round_index + 1} {side:<7} train {r['train_tokens_per_second']:7.0f} tok/s   eval {r['eval_tokens_per_second']:7.0f} tok/s   "
                    f"val F1 {r['val_f1']:6.2f}   peak RSS {r['peak_rss_mib']:5.0f} MiB   ({time.perf_counter() - started:.0f} s)"
                )

    report = {
        "created": timestamp(),
        "model": settings.model.name,
        "machine": {**machine_description(), "torch_threads": threads, "device": device},
        "matmul_peak_gflops": peaks,
        "matmul_peak_detail": peak_detail,
        "options": attrs.asdict(options),
        "data": {
            "synthetic": bool(dataset.corpus.synthetic),
            "data_dir": settings.data.data_dir,
            "question_mode": settings.data.question_mode,
            "train_examples": len(train_examples),
            "eval_examples": len(eval_examples),
        },
        "settings": settings.to_toml(),
        "runs": runs,
        "summary": summarize(runs),
        "wall_seconds": 0.0,
    }
    report["wall_seconds"] = time.perf_counter() - t0
    path = Path(output_dir) / f"{report['created']}.json"
    atomic_write_json(path, report)
    console.print(bench_table(report))
    console.print(f"report: {path}  ({report['wall_seconds']:.0f} s)")
    return report
