"""The data a search trains on: loaded once per worker, the training posts optionally subsampled for trials."""

from __future__ import annotations

from pathlib import Path

import attrs

from evdata.dataset import Dataset, load_dataset
from evdata.split import post_hash
from evtrain.settings import RunSettings


def load_search_dataset(settings: RunSettings, cache_dir: str | Path | None = None) -> Dataset:
    """Read, align and split the corpus of ``settings.data`` (semantic step included when enabled).

    With ``cache_dir`` the alignment is read from (or written to) evdata's alignment cache, so
    the workers after the first skip the semantic step.
    """
    from evtrain.api import semantic_similarity  # evmodel and torch only when a search loads its data

    return load_dataset(settings.data, semantic_similarity(settings), cache_dir=cache_dir)


def subsample_train(dataset: Dataset, fraction: float, seed: int) -> Dataset:
    """``dataset`` with only ``fraction`` of its training posts (at least one), chosen by a stable hash of seed and post id.

    All examples of a chosen post stay; validation and test are untouched, so trial scores stay
    comparable with the full run's.
    """
    if fraction >= 1.0:
        return dataset
    post_ids = dataset.split.post_ids.get("train", ())
    with_examples = {ex.post_id for ex in dataset.split.examples.get("train", ())}
    ranked = sorted((p for p in post_ids if p in with_examples), key=lambda p: (post_hash(p, seed), p))
    keep = set(ranked[: max(1, round(len(ranked) * fraction))])
    examples = {**dataset.split.examples, "train": tuple(ex for ex in dataset.split.examples["train"] if ex.post_id in keep)}
    kept_ids = {**dataset.split.post_ids, "train": tuple(p for p in post_ids if p in keep)}
    return attrs.evolve(dataset, split=attrs.evolve(dataset.split, examples=examples, post_ids=kept_ids))
