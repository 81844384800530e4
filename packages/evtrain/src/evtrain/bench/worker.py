"""One side of the benchmark in its own process: ``python -m evtrain.bench.worker SPEC SIDE RESULT``.

A fresh process per run keeps each side's peak resident memory its own and stops one side's
caches (allocator pools, compiled graphs, thread pools) from helping or hurting the other. The
parent writes the spec (settings, options, the example lists) as JSON; the child writes its result
as JSON, atomically.
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from evdata.atomic import atomic_write_json
from evdata.records import Answer, QAExample
from evtrain.bench.options import BenchOptions
from evtrain.settings import RunSettings

SIDES = ("recipe_plain", "recipe_tuned", "evspan")
"""Every side the benchmark can run: the Hugging Face recipe as it comes, with its speed flags on, and evspan."""


def example_to_json(example: QAExample) -> dict[str, Any]:
    """A QAExample as plain JSON data (answers as a list of objects)."""
    return attrs.asdict(example, recurse=True)


def example_from_json(data: dict[str, Any]) -> QAExample:
    """The inverse of ``example_to_json``."""
    return QAExample(**{**data, "answers": tuple(Answer(**a) for a in data["answers"])})


def write_spec(
    path: str | Path,
    settings: RunSettings,
    options: BenchOptions,
    train_examples: Sequence[QAExample],
    eval_examples: Sequence[QAExample],
    *,
    synthetic: bool,
) -> Path:
    """Write what every side needs to run, as JSON."""
    return atomic_write_json(
        path,
        {
            "settings_toml": settings.to_toml(),
            "options": attrs.asdict(options),
            "synthetic": synthetic,
            "train_examples": [example_to_json(e) for e in train_examples],
            "eval_examples": [example_to_json(e) for e in eval_examples],
        },
        indent=None,
    )


def run_side(side: str, spec_path: str | Path, workdir: str | Path) -> dict[str, Any]:
    """Run one side as the spec says; the result includes this process's peak resident memory."""
    t0 = time.perf_counter()
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, got {side!r}")
    spec = json.loads(Path(spec_path).read_text(encoding="utf-8"))
    settings = RunSettings.from_mapping(tomllib.loads(spec["settings_toml"]))
    options = BenchOptions(**spec["options"])
    train_examples = [example_from_json(e) for e in spec["train_examples"]]
    eval_examples = [example_from_json(e) for e in spec["eval_examples"]]

    from evmodel.loading import load_config, load_tokenizer, resolve_model

    model_path = resolve_model(settings.model.name, settings.model)
    tokenizer = load_tokenizer(model_path)
    workdir = Path(workdir)
    if side in ("recipe_plain", "recipe_tuned"):
        from evtrain.bench.ours import epoch_examples
        from evtrain.bench.recipe import PLAIN, TUNED, Hyper, run_recipe

        t = settings.train
        # The recipe's training set is the example set of evspan's first epoch (all answerable examples and
        # hard negatives, train.no_answer_ratio sampled no-answer ones), fixed as a run_qa user's dataset is.
        recipe_train = epoch_examples(train_examples, settings)
        result = run_recipe(
            model_path,
            tokenizer,
            settings.features,
            recipe_train,
            eval_examples,
            recipe=PLAIN if side == "recipe_plain" else TUNED,
            hyper=Hyper(
                batch_size=options.batch_size,
                eval_batch_size=t.eval_batch_size,
                learning_rate=t.learning_rate,
                weight_decay=t.weight_decay,
                warmup_steps=int(t.warmup_ratio * options.steps),
                max_grad_norm=t.max_grad_norm,
                seed=t.seed,
            ),
            steps=options.steps,
            output_dir=workdir / "recipe-trainer",
            eval_repeats=options.plain_eval_repeats if side == "recipe_plain" else options.eval_repeats,
            profile_steps=options.profile_steps,
        )
        result["train"]["examples"] = len(recipe_train)
    else:
        from evtrain.bench.ours import run_ours

        result = run_ours(
            settings,
            tokenizer,
            load_config(model_path),
            train_examples,
            eval_examples,
            steps=options.steps,
            batch_size=options.batch_size,
            synthetic=bool(spec["synthetic"]),
            output_dir=workdir,
            eval_repeats=options.eval_repeats,
            profile_steps=options.profile_steps,
        )
    # The peak is read by each side before its profiling pass (which builds a second model).
    return {"side": side, **result, "wall_seconds": time.perf_counter() - t0}


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the child process: ``SPEC SIDE RESULT [WORKDIR]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) not in (3, 4):
        print("usage: python -m evtrain.bench.worker SPEC SIDE RESULT [WORKDIR]", file=sys.stderr)
        return 2
    spec, side, result_path = args[:3]
    workdir = Path(args[3]) if len(args) == 4 else Path(result_path).parent
    atomic_write_json(result_path, run_side(side, spec, workdir))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
