"""Batching: padding to the batch's longest window, seeded length-grouped orders, negative subsampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evfeatures import (
    FeatureSettings,
    Windows,
    build_windows,
    collate,
    length_grouped_batches,
    sorted_batches,
    subsample_negatives,
    token_budget_batches,
)
from evfeatures.batching import padded_width, sample_examples, windows_of_examples

lengths_st = st.lists(st.integers(1, 384), min_size=0, max_size=300)


def assert_partition(batches: list[list[int]], n: int) -> None:
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(n))
    assert all(batches), "no empty batches"


@given(data=st.data(), seed=st.integers(0, 1000), multiple=st.sampled_from([1, 1, 8, 32, 64]))
def test_collate_pads_to_the_batch_max_and_keeps_every_token(tokenizer, strategies, data, seed, multiple):
    examples = data.draw(strategies.qa_examples())
    windows = build_windows(examples, tokenizer, FeatureSettings(max_length=48, doc_stride=4))
    rng = np.random.default_rng(seed)
    indices = rng.choice(len(windows), size=rng.integers(1, len(windows) + 1), replace=False).tolist()
    batch = collate(windows, indices, tokenizer.pad_token_id, pad_to_multiple_of=multiple)
    longest = padded_width(int(windows.lengths[indices].max()), multiple, int(windows.lengths.max()))
    assert set(batch) == {"input_ids", "attention_mask", "token_type_ids", "start_positions", "end_positions"}
    for tensor in batch.values():
        assert tensor.dtype.is_floating_point is False and tensor.shape[0] == len(indices)
    assert batch["input_ids"].shape == (len(indices), longest)
    for row, i in enumerate(indices):
        n = int(windows.lengths[i])
        assert batch["input_ids"][row, :n].tolist() == windows.input_ids[i].tolist()
        assert (batch["input_ids"][row, n:] == tokenizer.pad_token_id).all()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)
        assert batch["token_type_ids"][row, :n].tolist() == windows.token_type_ids[i].tolist()
        assert batch["start_positions"][row] == windows.start_positions[i]
        assert batch["end_positions"][row] == windows.end_positions[i]


@given(longest=st.integers(1, 512), multiple=st.integers(1, 128), slack=st.integers(0, 512))
def test_padded_width_rounds_up_to_the_multiple_within_the_limit(longest, multiple, slack):
    limit = longest + slack
    width = padded_width(longest, multiple, limit)
    assert longest <= width <= limit
    assert width % multiple == 0 or width == limit
    assert width - longest < multiple


def test_collate_without_labels_or_token_types():
    windows = Windows(
        input_ids=([5, 6, 7], [8]),
        token_type_ids=None,
        offsets=(np.full((3, 2), -1), np.full((1, 2), -1)),
        example_index=[0, 0],
        start_positions=[0, 0],
        end_positions=[0, 0],
    )
    batch = collate(windows, [1], pad_token_id=0, with_labels=False)
    assert set(batch) == {"input_ids", "attention_mask"}
    assert batch["input_ids"].tolist() == [[8]], "padded to the batch's longest member, not to the longest window overall"
    with pytest.raises(ValueError, match="empty batch"):
        collate(windows, [], pad_token_id=0)


@given(
    lengths=lengths_st,
    batch_size=st.integers(1, 16),
    group_size=st.integers(1, 8),
    seed=st.integers(0, 10**6),
    epoch=st.integers(0, 5),
)
def test_length_grouped_batches_is_a_deterministic_partition(lengths, batch_size, group_size, seed, epoch):
    batches = length_grouped_batches(lengths, batch_size, group_size=group_size, seed=seed, epoch=epoch)
    assert_partition(batches, len(lengths))
    assert sum(len(b) < batch_size for b in batches) <= 1, "at most one short batch"
    assert all(len(b) <= batch_size for b in batches)
    assert batches == length_grouped_batches(lengths, batch_size, group_size=group_size, seed=seed, epoch=epoch)
    # Each batch is sorted longest first (it was cut from a sorted group).
    for batch in batches:
        member_lengths = [lengths[i] for i in batch]
        assert member_lengths == sorted(member_lengths, reverse=True)
    dropped = length_grouped_batches(lengths, batch_size, group_size=group_size, seed=seed, epoch=epoch, drop_last=True)
    assert all(len(b) == batch_size for b in dropped)
    assert len(lengths) - sum(map(len, dropped)) < batch_size


def test_length_grouping_cuts_padding_and_changes_with_the_epoch():
    rng = np.random.default_rng(0)
    lengths = rng.integers(8, 385, size=2000)

    def padded_tokens(batches: list[list[int]]) -> int:
        return sum(len(b) * int(lengths[b].max()) for b in batches)

    grouped = length_grouped_batches(lengths, 16, group_size=50, seed=1)
    random_order = [list(range(i, i + 16)) for i in range(0, 2000, 16)]
    assert padded_tokens(grouped) < 0.7 * padded_tokens(random_order)
    assert grouped != length_grouped_batches(lengths, 16, group_size=50, seed=1, epoch=1)
    assert grouped != length_grouped_batches(lengths, 16, group_size=50, seed=2)


@given(lengths=lengths_st, batch_size=st.integers(1, 16))
def test_sorted_batches_partition_in_length_order(lengths, batch_size):
    batches = sorted_batches(lengths, batch_size)
    assert_partition(batches, len(lengths))
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)


@given(lengths=lengths_st, max_tokens=st.integers(1, 2000))
def test_token_budget_batches_stay_within_budget(lengths, max_tokens):
    batches = token_budget_batches(lengths, max_tokens)
    assert_partition(batches, len(lengths))
    for batch in batches:
        assert len(batch) == 1 or len(batch) * max(lengths[i] for i in batch) <= max_tokens


@given(
    has_answer=st.lists(st.booleans(), max_size=200),
    ratio=st.floats(0.0, 1.0),
    seed=st.integers(0, 1000),
    epoch=st.integers(0, 3),
)
def test_subsample_negatives_keeps_every_answer_and_a_seeded_share(has_answer, ratio, seed, epoch):
    kept = subsample_negatives(has_answer, ratio, seed, epoch)
    mask = np.asarray(has_answer, dtype=bool)
    assert kept.tolist() == sorted(set(kept.tolist()))
    assert set(np.flatnonzero(mask).tolist()) <= set(kept.tolist())
    assert int((~mask[kept]).sum()) == round(ratio * int((~mask).sum()))
    assert kept.tolist() == subsample_negatives(has_answer, ratio, seed, epoch).tolist()


def test_bad_batching_arguments_are_refused():
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        sorted_batches([1, 2], 0)
    with pytest.raises(ValueError, match="group_size must be >= 1"):
        length_grouped_batches([1, 2], 2, group_size=0, seed=0)
    with pytest.raises(ValueError, match=r"ratio must be within 0\.\.1"):
        subsample_negatives([True, False], 1.5, seed=0)


# Example kinds: 0 answerable, 1 hard negative, 2 other no-answer, 3 excluded (evidence not located).
kinds_st = st.lists(st.integers(0, 3), max_size=300)


@given(kinds=kinds_st, ratio=st.floats(-1.0, 12.0), seed=st.integers(0, 1000), epoch=st.integers(0, 5))
def test_sample_examples_keeps_answers_and_hard_negatives_and_a_seeded_share_of_the_rest(kinds, ratio, seed, epoch):
    kind = np.asarray(kinds, dtype=np.int64)
    has_answer, hard, excluded = kind == 0, kind == 1, kind == 3
    kept = sample_examples(has_answer, hard, ratio, seed, epoch, exclude=excluded)
    assert kept.dtype == np.int64
    assert kept.tolist() == sorted(set(kept.tolist()))
    chosen = set(kept.tolist())
    assert set(np.flatnonzero(has_answer | hard).tolist()) <= chosen
    assert not chosen & set(np.flatnonzero(excluded).tolist())
    others = int((kind[kept] == 2).sum())
    expected = 0 if ratio <= 0 else min(int((kind == 2).sum()), round(ratio * int(has_answer.sum())))
    assert others == expected
    assert kept.tolist() == sample_examples(has_answer, hard, ratio, seed, epoch, exclude=excluded).tolist()


def test_sample_examples_changes_with_the_epoch_and_covers_the_negatives_over_epochs():
    has_answer = np.zeros(400, dtype=bool)
    has_answer[:20] = True
    hard = np.zeros(400, dtype=bool)
    hard[20:25] = True
    draws = [sample_examples(has_answer, hard, 2.0, seed=7, epoch=epoch) for epoch in range(200)]
    assert all(d.size == 20 + 5 + 40 for d in draws)
    assert len({tuple(d.tolist()) for d in draws}) == 200
    assert set(np.concatenate(draws).tolist()) == set(range(400)), "every negative is seen sooner or later"
    assert sample_examples(has_answer, hard, 2.0, seed=8, epoch=0).tolist() != draws[0].tolist()
    # Fewer negatives than asked for: all of them.
    assert sample_examples([True, True, False], [False, False, False], 5.0, seed=0).tolist() == [0, 1, 2]
    assert sample_examples([True, False], [False, True], 0.0, seed=0).tolist() == [0, 1]
    with pytest.raises(ValueError, match="differ in length"):
        sample_examples([True], [True, False], 1.0, seed=0)
    with pytest.raises(ValueError, match="NaN"):
        sample_examples([True], [False], float("nan"), seed=0)


def test_windows_of_examples_maps_kept_examples_to_their_windows():
    example_index = np.array([0, 0, 1, 2, 2, 2, 3])
    assert windows_of_examples(example_index, [0, 2]).tolist() == [0, 1, 3, 4, 5]
    assert windows_of_examples(example_index, np.empty(0, dtype=np.int64)).tolist() == []
