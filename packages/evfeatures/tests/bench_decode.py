"""Time vectorised ``decode`` against ``decode_reference`` on the same random logits (not a pytest module).

Builds stride windows at max_length 384 / doc_stride 128 with the tests' tiny tokenizer over synthetic
posts of very different lengths, draws random start/end logits, checks both decoders give the same
answers, and prints milliseconds per 1,000 windows.

    python packages/evfeatures/tests/bench_decode.py [--windows 1000] [--repeats 5] [--seed 0]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from evdata.records import Answer, QAExample
from evfeatures import FeatureSettings, build_windows
from evfeatures.decode import decode, decode_reference


def load_tokenizer():
    """The tests' tiny WordPiece tokenizer (conftest.py is loaded by path: tests are not a package)."""
    spec = importlib.util.spec_from_file_location("evfeatures_test_conftest", Path(__file__).with_name("conftest.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_tokenizer(model_max_length=512)


def synthetic_examples(rng: np.random.Generator, count: int) -> list[QAExample]:
    """Posts of 20 to 3,000 words (log-normal: mostly short, a long tail, like the corpus), one evidence span each."""
    words = ["i", "feel", "tired", "sleep", "night", "the", "nothing", "anymore", "can't", "work", "today", "friends"]
    examples = []
    for k in range(count):
        n_words = int(min(3000, max(20, rng.lognormal(5.2, 0.9))))
        context = " ".join(rng.choice(words, size=n_words)) + "."
        start = int(rng.integers(0, len(context) - 40))
        start = context.index(" ", start) + 1
        end = start + 30
        examples.append(
            QAExample(id=f"e{k}", post_id=f"p{k}", question="", context=context, answers=(Answer(context[start:end], start, end),))
        )
    return examples


def timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        begin = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - begin)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", type=int, default=1000, help="about how many windows to decode")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of the vectorised decoder (median reported)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    settings = FeatureSettings(max_length=384, doc_stride=128, n_best_size=20, max_answer_length=120)
    rng = np.random.default_rng(args.seed)
    tokenizer = load_tokenizer()
    examples = synthetic_examples(rng, args.windows)
    begin = time.perf_counter()
    windows = windows_all = build_windows(examples, tokenizer, settings)
    build_s = time.perf_counter() - begin
    # Keep the first examples that together make (about) the requested number of windows.
    keep = int(np.searchsorted(np.cumsum(np.bincount(windows.example_index)), args.windows)) + 1
    examples = examples[:keep]
    windows = windows.subset(np.flatnonzero(windows.example_index < keep))
    n = len(windows)
    shape = (n, settings.max_length)
    starts = torch.from_numpy(rng.normal(0, 3, size=shape).astype(np.float32))
    ends = torch.from_numpy(rng.normal(0, 3, size=shape).astype(np.float32))
    print(
        f"{len(examples)} examples -> {n} windows (mean length {windows.lengths.mean():.0f}); build_windows {build_s * 1000 / len(windows_all) * 1000:.0f} ms per 1,000 windows"
    )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; max_length 384, n_best_size 20, max_answer_length 120")

    for label, s_logits, e_logits, nbest in (
        ("float32", starts, ends, 0),
        ("bf16", starts.bfloat16(), ends.bfloat16(), 0),
        ("float32, 20-best lists", starts, ends, 20),
    ):
        fast_s, fast = timed(lambda s=s_logits, e=e_logits, k=nbest: decode(examples, windows, s, e, settings, nbest=k), args.repeats)
        slow_s, slow = timed(lambda s=s_logits, e=e_logits, k=nbest: decode_reference(examples, windows, s, e, settings, nbest=k), 1)
        assert fast == slow, f"{label}: decode and decode_reference disagree"
        per = 1000 / n * 1000
        print(
            f"{label:>24}: decode {fast_s * per:8.1f} ms / 1,000 windows | decode_reference {slow_s * per:8.1f} ms / 1,000 windows"
            f" | {slow_s / fast_s:5.1f}x faster | same answers on {len(fast)} examples"
        )


if __name__ == "__main__":
    main()
