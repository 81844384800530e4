"""``invoke bench``: three sides in child processes, the tables, the JSON.

The sides are the Hugging Face recipe as it comes (``recipe_plain``), the recipe with the speed flags a
careful user turns on (``recipe_tuned``, the headline yardstick) and evspan. Per round they run in that
order, every run in a fresh process of its own so its peak resident memory is its own; the plain
recipe runs ``plain_rounds`` times, the other two ``rounds`` times. Rates are real (non-padding)
tokens and windows per second; the tables show the median over runs, evspan's ratios against both
recipes, the targets (against the tuned recipe), and where a training step's time goes on each side.
Quality is SQuAD 2.0 on the same validation examples, each side's null threshold tuned on them for best F1.
"""

from __future__ import annotations

import math
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

from evdata.atomic import atomic_write_json
from evdata.dataset import Dataset
from evtrain.bench.options import BenchOptions
from evtrain.bench.recipe import PLAIN, TUNED
from evtrain.bench.table import print_report
from evtrain.bench.worker import SIDES, write_spec
from evtrain.runs import RunError, timestamp
from evtrain.settings import RunSettings

BENCH_ROOT = Path("artifacts") / "bench"

# evspan against the tuned recipe (the headline) and the share of the bf16 matmul peak its training step reaches.
TRAIN_TARGET, EVAL_TARGET, STEP_PEAK_TARGET, F1_TOLERANCE = 2.0, 2.0, 0.40, 1.0
HEADLINE = "recipe_tuned"
_LOG_TAIL = 30
_RATIO_KEYS = (
    "train_tokens_per_second",
    "train_windows_per_second",
    "eval_tokens_per_second",
    "eval_windows_per_second",
    "peak_rss_mib",
)


class BenchError(RunError):
    """A side of the benchmark failed or could not start; the message names it and shows its log."""


def run_rates(result: dict[str, Any], peaks: dict[str, float]) -> dict[str, float]:
    """Per-run rates: tokens and windows per second (train, eval), GFLOP/s and their share of the matching peak."""
    train, evaluation = result["train"], result["eval"]
    seconds = max(train["seconds"], 1e-9)
    eval_seconds = max(evaluation["seconds"], 1e-9)
    peak = peaks.get(result["precision_peak"]) or peaks.get("fp32") or 0.0
    bf16_peak = peaks.get("bf16") or 0.0
    executed = train["executed_flops"] / seconds / 1e9
    useful = train["useful_flops"] / seconds / 1e9
    eval_useful = evaluation.get("useful_flops", 0.0) / eval_seconds / 1e9
    span_f1 = result["quality"].get("span_f1")
    return {
        "train_tokens_per_second": train["real_tokens"] / seconds,
        "train_windows_per_second": train["windows"] / seconds,
        "train_seconds_per_step": seconds / max(1, train["steps"]),
        "train_padding_share": 1 - train["real_tokens"] / max(1, train["padded_tokens"]),
        "train_executed_gflops": executed,
        "train_useful_gflops": useful,
        "train_executed_peak_fraction": executed / peak if peak else 0.0,
        "train_useful_peak_fraction": useful / peak if peak else 0.0,
        "train_executed_bf16_peak_fraction": executed / bf16_peak if bf16_peak else 0.0,
        "train_useful_bf16_peak_fraction": useful / bf16_peak if bf16_peak else 0.0,
        "eval_tokens_per_second": evaluation["real_tokens"] / eval_seconds,
        "eval_windows_per_second": evaluation["windows"] / eval_seconds,
        "eval_padding_share": 1 - evaluation["real_tokens"] / max(1, evaluation["padded_tokens"]),
        "eval_useful_gflops": eval_useful,
        "eval_useful_bf16_peak_fraction": eval_useful / bf16_peak if bf16_peak else 0.0,
        "val_f1": float(result["quality"]["f1"]),
        "val_exact_match": float(result["quality"]["exact_match"]),
        "val_has_ans_f1": float(result["quality"]["has_ans_f1"]),
        "val_span_f1": float("nan") if span_f1 is None else float(span_f1),
        "val_no_ans_exact": float(result["quality"]["no_ans_exact"]),
        "val_null_threshold": float(result["quality"]["threshold"]),
        "peak_rss_mib": float(result["peak_rss_mib"]),
    }


def summarize(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median of every rate per side, evspan's ratios against each recipe, and each target (against the tuned recipe) met or not."""
    medians: dict[str, dict[str, float]] = {}
    profiles: dict[str, dict[str, float]] = {}
    eval_profiles: dict[str, dict[str, float]] = {}
    for side in SIDES:
        rates = [r["rates"] for r in runs if r["side"] == side]
        if rates:
            medians[side] = {key: statistics.median(r[key] for r in rates) for key in rates[0]}
        for key, into in (("profile", profiles), ("eval_profile", eval_profiles)):
            found = [r[key] for r in runs if r["side"] == side and r.get(key)]
            if found:
                into[side] = _median_profile(found)
    ours = medians["evspan"]

    def ratios(against: str) -> dict[str, float]:
        other = medians.get(against, {})
        return {key: ours[key] / other[key] if other.get(key) else float("nan") for key in _RATIO_KEYS}

    ratio = {side: ratios(side) for side in SIDES if side != "evspan" and side in medians}
    headline = ratio.get(HEADLINE, dict.fromkeys(_RATIO_KEYS, float("nan")))
    f1_gap = ours["val_f1"] - medians.get(HEADLINE, {}).get("val_f1", float("nan"))
    span_gap = ours["val_span_f1"] - medians.get(HEADLINE, {}).get("val_span_f1", float("nan"))
    step_peak = ours["train_executed_bf16_peak_fraction"]
    targets = {
        "train_tokens_per_second": {
            "target": f">={TRAIN_TARGET:g}x tuned",
            "reached": headline["train_tokens_per_second"],
            "met": headline["train_tokens_per_second"] >= TRAIN_TARGET,
        },
        "eval_windows_per_second": {
            "target": f">={EVAL_TARGET:g}x tuned",
            "reached": headline["eval_windows_per_second"],
            "met": headline["eval_windows_per_second"] >= EVAL_TARGET,
        },
        "train_executed_bf16_peak_fraction": {
            "target": f">={STEP_PEAK_TARGET:.0%} bf16 peak",
            "reached": step_peak,
            "met": step_peak >= STEP_PEAK_TARGET,
        },
        "val_f1": {"target": f">=-{F1_TOLERANCE:g} vs tuned", "reached": f1_gap, "met": f1_gap >= -F1_TOLERANCE},
        # SQuAD 2.0 F1 after a few steps can be the no-answer share on every side; span F1 still sees what was learned.
        "val_span_f1": {"target": f">=-{F1_TOLERANCE:g} vs tuned", "reached": span_gap, "met": span_gap >= -F1_TOLERANCE},
        "peak_rss_mib": {"target": "<=1x tuned", "reached": headline["peak_rss_mib"], "met": headline["peak_rss_mib"] <= 1.0},
    }
    return {
        "median": medians,
        "ratio": ratio,
        "headline": HEADLINE,
        "f1_gap": f1_gap,
        "span_f1_gap": span_gap,
        "targets": targets,
        "profile": profiles,
        "eval_profile": eval_profiles,
        "ceilings": ceilings(medians.get(HEADLINE), headline, profiles.get("evspan"), eval_profiles.get("evspan")),
    }


def _median_profile(profiles: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per-category medians of several runs' profiles (``ms_per_step``), with the median ``step_ms``."""
    keys = profiles[0]["ms_per_step"]
    return {key: statistics.median(p["ms_per_step"][key] for p in profiles) for key in keys} | {
        "step_ms": statistics.median(p["step_ms"] for p in profiles)
    }


def ceilings(
    tuned: dict[str, float] | None,
    headline: dict[str, float],
    train_profile: dict[str, float] | None,
    eval_profile: dict[str, float] | None,
) -> dict[str, float]:
    """How far evspan's ratios against the tuned recipe could go on this machine, two ways.

    ``*_at_bf16_peak``: every FLOP of the work (``bench.hardware.encoder_flops_per_token``, real
    tokens only) at the bf16 matmul peak measured in the run, against the tuned recipe's measured rate.
    ``*_linear_only``: evspan's measured ratio if everything in its profiled step or forward pass but the
    linear layers (attention, norms, dropout, optimizer, overhead) took no time at all.
    """
    out: dict[str, float] = {}
    if tuned:
        for key, fraction in (
            ("train_at_bf16_peak", "train_useful_bf16_peak_fraction"),
            ("eval_at_bf16_peak", "eval_useful_bf16_peak_fraction"),
        ):
            if tuned.get(fraction):
                out[key] = 1.0 / tuned[fraction]
    linear = {
        "train_linear_only": (train_profile, ("linear_forward", "linear_backward"), "train_tokens_per_second"),
        "eval_linear_only": (eval_profile, ("linear_forward",), "eval_windows_per_second"),
    }
    for key, (profile, parts, ratio_key) in linear.items():
        spent = sum(profile.get(part, 0.0) for part in parts) if profile else 0.0
        if spent and math.isfinite(headline.get(ratio_key, math.nan)):
            out[key] = headline[ratio_key] * profile["step_ms"] / spent
    return out


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
            f"{options.steps} steps of {options.batch_size} windows; plain recipe x{options.plain_rounds}, tuned recipe and evspan x{options.rounds}"
        )
        for round_index in range(max(options.rounds, options.plain_rounds)):
            for side in SIDES:
                if round_index >= (options.plain_rounds if side == "recipe_plain" else options.rounds):
                    continue
                started = time.perf_counter()
                result = _run_child(side, round_index, spec, workdir, options.side_timeout)
                result["round"] = round_index + 1
                result["rates"] = run_rates(result, peaks)
                runs.append(result)
                r = result["rates"]
                console.print(
                    f"  round {round_index + 1} {side:<12} train {r['train_tokens_per_second']:5.0f} tok/s  eval {r['eval_windows_per_second']:5.1f} windows/s  "
                    f"val F1 {r['val_f1']:6.2f}  peak RSS {r['peak_rss_mib']:5.0f} MiB  ({time.perf_counter() - started:.0f} s)"
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
        "recipes": {PLAIN.name: PLAIN.describe(), TUNED.name: TUNED.describe()},
        "runs": runs,
        "summary": summarize(runs),
        "wall_seconds": 0.0,
    }
    report["wall_seconds"] = time.perf_counter() - t0
    path = Path(output_dir) / f"{report['created']}.json"
    atomic_write_json(path, report)
    print_report(report, console)
    console.print(f"report: {path}  ({report['wall_seconds']:.0f} s)")
    return report
