"""Post-level train/val/test split with a stable hash, so a post never leaks across splits."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from evdata.records import QAExample, Split

SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def post_hash(post_id: str, seed: int) -> str:
    """Stable hex digest of ``seed`` and ``post_id`` (identical across processes and machines, unlike ``hash()``)."""
    return hashlib.blake2b(f"{seed}:{post_id}".encode(), digest_size=16).hexdigest()


def _counts(n: int, val_ratio: float, test_ratio: float) -> tuple[int, int, int]:
    """Exact split sizes: rounded ratios, but at least one post per split with a positive ratio when there are enough posts."""
    n_val = round(n * val_ratio)
    n_test = round(n * test_ratio)
    if val_ratio > 0 and n_val == 0 and n >= 2:
        n_val = 1
    if test_ratio > 0 and n_test == 0 and n - n_val >= 2:
        n_test = 1
    # Training gets what is left and at least one post whenever there is one.
    while n > 0 and n - n_val - n_test < 1:
        if n_test >= n_val and n_test > 0:
            n_test -= 1
        else:
            n_val -= 1
    return n - n_val - n_test, n_val, n_test


def split_post_ids(
    post_ids: Iterable[str], train_ratio: float, val_ratio: float, test_ratio: float, seed: int
) -> dict[str, tuple[str, ...]]:
    """Partition post ids into ``train``/``val``/``test``, deterministically for a given seed.

    Posts are ordered by a stable hash of ``seed`` and id and cut at exact counts, so even a small
    corpus gets a non-empty val and test split when their ratios are positive. Each split keeps the
    input order. Duplicate ids are counted once.
    """
    total = train_ratio + val_ratio + test_ratio
    if min(train_ratio, val_ratio, test_ratio) < 0 or abs(total - 1.0) > 1e-6:
        raise ValueError(f"split ratios must be non-negative and sum to 1, got {train_ratio}, {val_ratio}, {test_ratio}")
    unique = list(dict.fromkeys(post_ids))
    ranked = sorted(unique, key=lambda post_id: (post_hash(post_id, seed), post_id))
    n_train, n_val, _ = _counts(len(ranked), val_ratio, test_ratio)
    assignment = {post_id: "train" for post_id in ranked[:n_train]}
    assignment.update({post_id: "val" for post_id in ranked[n_train : n_train + n_val]})
    assignment.update({post_id: "test" for post_id in ranked[n_train + n_val :]})
    return {name: tuple(post_id for post_id in unique if assignment[post_id] == name) for name in SPLIT_NAMES}


def split_examples(examples: Iterable[QAExample], post_ids_by_split: Mapping[str, Iterable[str]]) -> Split:
    """Group examples by the split of their post (order kept); an example whose post is in no split is an error."""
    where: dict[str, str] = {}
    post_ids: dict[str, tuple[str, ...]] = {}
    for name, ids in post_ids_by_split.items():
        post_ids[name] = tuple(ids)
        for post_id in post_ids[name]:
            if post_id in where:
                raise ValueError(f"post {post_id!r} is in both the {where[post_id]!r} and {name!r} splits")
            where[post_id] = name
    grouped: dict[str, list[QAExample]] = {name: [] for name in post_ids}
    for example in examples:
        if example.post_id not in where:
            raise ValueError(f"example {example.id!r}: post {example.post_id!r} is in no split")
        grouped[where[example.post_id]].append(example)
    return Split(examples={name: tuple(items) for name, items in grouped.items()}, post_ids=post_ids)
