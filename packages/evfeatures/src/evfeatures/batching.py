"""Batches of windows: padding to the batch's longest member, and batch orders that keep padding small.

Padding every window to ``max_length`` wastes most of the compute on short posts, so a batch is
padded only to its own longest window, and windows of similar length are batched together: fully
sorted for evaluation, and for training shuffled, grouped by length within large random groups,
with the batch order shuffled again (seeded by ``(seed, epoch)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from evfeatures.windows import Windows


def collate(
    windows: Windows, indices: Sequence[int], pad_token_id: int, *, with_labels: bool = True, pad_to_multiple_of: int = 1
) -> dict[str, torch.Tensor]:
    """Stack the windows at ``indices`` into int64 tensors padded to the batch's longest window.

    With ``pad_to_multiple_of`` the width is rounded up to a multiple of it (``padded_width``).
    Returns ``input_ids``, ``attention_mask``, ``token_type_ids`` (when the windows have them) and,
    with ``with_labels``, ``start_positions`` and ``end_positions``.
    """
    idx = np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx.size == 0:
        raise ValueError("collate: empty batch")
    lengths = windows.lengths[idx]
    width = padded_width(int(lengths.max()), pad_to_multiple_of, int(windows.lengths.max()))
    # Row-major boolean assignment fills each row's first ``length`` slots from the concatenation.
    real = np.arange(width)[None, :] < lengths[:, None]

    def padded(arrays: Sequence[np.ndarray], fill: int) -> torch.Tensor:
        out = np.full((idx.size, width), fill, dtype=np.int64)
        out[real] = np.concatenate([arrays[i] for i in idx])
        return torch.from_numpy(out)

    batch = {
        "input_ids": padded(windows.input_ids, pad_token_id),
        "attention_mask": torch.from_numpy(real.astype(np.int64)),
    }
    if windows.token_type_ids is not None:
        batch["token_type_ids"] = padded(windows.token_type_ids, 0)
    if with_labels:
        batch["start_positions"] = torch.from_numpy(windows.start_positions[idx].copy())
        batch["end_positions"] = torch.from_numpy(windows.end_positions[idx].copy())
    return batch


def padded_width(longest: int, multiple: int, limit: int) -> int:
    """A batch's width: its ``longest`` window rounded up to a multiple of ``multiple``, but not past ``limit``
    (the longest window there is) nor below ``longest``."""
    if multiple < 1:
        raise ValueError(f"pad_to_multiple_of must be >= 1, got {multiple}")
    return max(longest, min(-(-longest // multiple) * multiple, limit))


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")


def _cut(order: np.ndarray, size: int) -> list[list[int]]:
    return [order[i : i + size].tolist() for i in range(0, len(order), size)]


def length_grouped_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    *,
    group_size: int,
    seed: int,
    epoch: int = 0,
    drop_last: bool = False,
) -> list[list[int]]:
    """Training batch order: similar lengths batched together, yet random; the same for the same ``(seed, epoch)``.

    Indices are shuffled, cut into groups of ``group_size * batch_size``, each group sorted by
    length (longest first) and cut into batches, and the order of all batches shuffled. The result
    is a partition of ``range(len(lengths))``; with ``drop_last`` the one short batch (if any) is
    left out instead.
    """
    _check_batch_size(batch_size)
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(lens.size)
    span = group_size * batch_size
    batches: list[list[int]] = []
    for begin in range(0, order.size, span):
        group = order[begin : begin + span]
        # Stable sort keeps the random order among equal lengths.
        group = group[np.argsort(-lens[group], kind="stable")]
        batches.extend(_cut(group, batch_size))
    if drop_last and batches and len(batches[-1]) < batch_size:
        batches.pop()
    shuffled = rng.permutation(len(batches))
    return [batches[i] for i in shuffled]


def sorted_batches(lengths: Sequence[int] | np.ndarray, batch_size: int) -> list[list[int]]:
    """Evaluation batch order: windows sorted by length (longest first, ties by index), cut into batches."""
    _check_batch_size(batch_size)
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    return _cut(np.argsort(-lens, kind="stable"), batch_size)


def token_budget_batches(lengths: Sequence[int] | np.ndarray, max_tokens: int) -> list[list[int]]:
    """Evaluation batches sorted by length whose padded size (members x longest) stays within ``max_tokens``.

    A window longer than ``max_tokens`` gets a batch of its own.
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    lens = np.asarray(lengths, dtype=np.int64).reshape(-1)
    order = np.argsort(-lens, kind="stable")
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for i in order.tolist():
        # Longest first, so a batch's first member fixes its padded width.
        if current and (len(current) + 1) * longest > max_tokens:
            batches.append(current)
            current = []
        if not current:
            longest = int(lens[i])
        current.append(i)
    if current:
        batches.append(current)
    return batches


def subsample_negatives(has_answer: Sequence[bool] | np.ndarray, ratio: float, seed: int, epoch: int = 0) -> np.ndarray:
    """Indices to train on: every window with an answer plus a seeded share ``ratio`` (0..1) of the others, sorted.

    Long posts yield many windows without an answer; keeping a fresh random share of them each
    epoch balances the labels. The same ``(seed, epoch)`` gives the same selection.
    """
    if not 0.0 <= ratio <= 1.0:
        raise ValueError(f"ratio must be within 0..1, got {ratio}")
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    mask = np.asarray(has_answer, dtype=bool).reshape(-1)
    positives = np.flatnonzero(mask)
    negatives = np.flatnonzero(~mask)
    keep = round(ratio * negatives.size)
    rng = np.random.default_rng([seed, epoch])
    chosen = rng.choice(negatives, size=keep, replace=False) if keep else np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate([positives, chosen]).astype(np.int64))


def sample_examples(
    has_answer: Sequence[bool] | np.ndarray,
    hard_negative: Sequence[bool] | np.ndarray,
    ratio: float,
    seed: int,
    epoch: int = 0,
    *,
    exclude: Sequence[bool] | np.ndarray | None = None,
) -> np.ndarray:
    """Examples to train on this epoch: every answerable one, every hard negative, and a seeded sample of the other no-answer ones.

    With every post asked every symptom, no-answer examples outnumber the others about eight to
    one; training on all of them would teach little but "no". So each epoch keeps every example
    with an answer, every hard negative (an annotated distractor, the most informative "no"), and
    ``round(ratio * n_answerable)`` of the remaining no-answer examples drawn without replacement
    (all of them when there are fewer; none when ``ratio <= 0``). The draw differs from epoch to
    epoch and is the same for the same ``(seed, epoch)``. ``exclude`` marks examples never kept,
    whatever else they are (``QAExample.answer_unknown``: evidence that could not be located).
    Returns sorted example indices (int64); ``windows_of_examples`` turns them into window indices.
    """
    if ratio != ratio:
        raise ValueError("ratio must be a number, got NaN")
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, got seed={seed}, epoch={epoch}")
    answer = np.asarray(has_answer, dtype=bool).reshape(-1)
    hard = np.asarray(hard_negative, dtype=bool).reshape(-1)
    excluded = np.zeros_like(answer) if exclude is None else np.asarray(exclude, dtype=bool).reshape(-1)
    if not answer.size == hard.size == excluded.size:
        raise ValueError(f"has_answer, hard_negative and exclude differ in length: {answer.size}, {hard.size}, {excluded.size}")
    always = np.flatnonzero((answer | hard) & ~excluded)
    others = np.flatnonzero(~answer & ~hard & ~excluded)
    keep = 0 if ratio <= 0 else min(others.size, round(ratio * int((answer & ~excluded).sum())))
    # A stream of its own, so the example draw and subsample_negatives' window draw stay independent.
    rng = np.random.default_rng([seed, epoch, 1])
    chosen = rng.choice(others, size=keep, replace=False) if keep else np.empty(0, dtype=np.int64)
    return np.sort(np.concatenate([always, chosen]).astype(np.int64))


def windows_of_examples(example_index: Sequence[int] | np.ndarray, examples: Sequence[int] | np.ndarray) -> np.ndarray:
    """Sorted indices of the windows whose example is one of ``examples`` (as from ``sample_examples``)."""
    index = np.asarray(example_index, dtype=np.int64).reshape(-1)
    return np.flatnonzero(np.isin(index, np.asarray(examples, dtype=np.int64).reshape(-1)))
