"""Span decoding: the vectorised decoder equals the slow reference, and its spans are real context substrings."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from evdata.records import Answer, QAExample
from evfeatures import FeatureSettings, Windows, build_windows

# From the submodule: the package's lazy ``decode`` attribute can be the submodule of that name.
from evfeatures.decode import NO_SCORE, Decision, Prediction, decide, decode, decode_reference

WINDOWING = FeatureSettings(max_length=32, doc_stride=4)


def random_logits(windows: Windows, seed: int, *, ties: bool, extra: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``[W, longest + extra]``; NaN beyond each window's length (which decoding must ignore)."""
    rng = np.random.default_rng(seed)
    shape = (len(windows), int(windows.lengths.max()) + extra)
    pair = []
    for _ in range(2):
        # Few distinct values make ties between scores, candidates and windows common.
        values = rng.integers(-2, 3, size=shape).astype(np.float32) if ties else rng.normal(0, 3, size=shape).astype(np.float32)
        values[np.arange(shape[1])[None, :] >= windows.lengths[:, None]] = np.nan
        pair.append(torch.from_numpy(values).to(dtype))
    return pair[0], pair[1]


@given(
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
    extra=st.integers(0, 3),
    dtype=st.sampled_from([torch.float32, torch.bfloat16]),
    n_best_size=st.integers(1, 8),
    max_answer_length=st.integers(1, 8),
    nbest=st.integers(0, 5),
    max_spans=st.integers(0, 4),
)
def test_decode_equals_the_reference_on_random_logits(
    tokenizer, strategies, data, seed, ties, extra, dtype, n_best_size, max_answer_length, nbest, max_spans
):
    examples = data.draw(strategies.qa_examples(max_examples=5))
    windows = build_windows(examples, tokenizer, WINDOWING)
    settings = FeatureSettings(max_length=32, doc_stride=4, n_best_size=n_best_size, max_answer_length=max_answer_length)
    starts, ends = random_logits(windows, seed, ties=ties, extra=extra, dtype=dtype)
    fast = decode(examples, windows, starts, ends, settings, nbest=nbest, max_spans=max_spans)
    slow = decode_reference(examples, windows, starts, ends, settings, nbest=nbest, max_spans=max_spans)
    assert fast == slow


@given(data=st.data(), seed=st.integers(0, 2**32 - 1), nbest=st.integers(0, 4))
def test_decoded_spans_are_context_substrings_at_their_offsets(tokenizer, strategies, data, seed, nbest):
    examples = data.draw(strategies.qa_examples())
    windows = build_windows(examples, tokenizer, WINDOWING)
    starts, ends = random_logits(windows, seed, ties=False, extra=0, dtype=torch.float32)
    predictions = decode(examples, windows, starts, ends, WINDOWING, nbest=nbest)
    assert [p.example_id for p in predictions] == [e.id for e in examples]
    for example, p in zip(examples, predictions):
        assert 0 <= p.start <= p.end <= len(example.context)
        assert p.text == example.context[p.start : p.end]
        assert (p.post_id, p.question, p.symptom) == (example.post_id, example.question, example.symptom)
        if p.score == NO_SCORE:
            assert (p.text, p.start, p.end, p.nbest) == ("", 0, 0, ())
            continue
        assert p.text.strip(), "a found span holds at least one context token"
        if nbest:
            assert p.nbest[0] == (p.text, p.start, p.end, p.score)
            assert len(p.nbest) <= nbest
            assert len({(s, e) for _, s, e, _ in p.nbest}) == len(p.nbest), "n-best spans are distinct"
            assert [score for *_, score in p.nbest] == sorted((score for *_, score in p.nbest), reverse=True)
            for text, s, e, _ in p.nbest:
                assert text == example.context[s:e]


@given(data=st.data())
def test_gold_labels_as_logits_decode_to_a_span_covering_the_answer(tokenizer, strategies, data):
    examples = data.draw(strategies.qa_examples())
    windows = build_windows(examples, tokenizer, WINDOWING)
    width = int(windows.lengths.max())
    starts = torch.zeros(len(windows), width)
    ends = torch.zeros(len(windows), width)
    rows = torch.arange(len(windows))
    starts[rows, torch.from_numpy(windows.start_positions)] = 10.0
    ends[rows, torch.from_numpy(windows.end_positions)] = 10.0
    settings = FeatureSettings(max_length=32, doc_stride=4, max_answer_length=64)
    predictions = decode(examples, windows, starts, ends, settings)
    for k, (example, p) in enumerate(zip(examples, predictions)):
        if not windows.has_answer[windows.example_index == k].any():
            continue
        assert p.score == 20.0
        assert any(p.start <= a.start and a.end <= p.end for a in example.answers)


def _example(context: str, question: str = "") -> QAExample:
    return QAExample(id="e", post_id="p", question=question, context=context, answers=())


def test_an_example_without_a_valid_span_gets_an_empty_answer(tokenizer):
    # The only start candidate (n_best_size=1) is the question token, which is not context.
    example = _example("i feel tired", question="sleep?")
    windows = build_windows([example], tokenizer, WINDOWING)
    tokens = tokenizer.convert_ids_to_tokens(windows.input_ids[0].tolist())
    assert tokens[1] == "sleep"
    starts = torch.zeros(1, len(tokens))
    starts[0, 1] = 5.0
    ends = torch.zeros(1, len(tokens))
    settings = FeatureSettings(max_length=32, doc_stride=4, n_best_size=1)
    for decoder in (decode, decode_reference):
        (p,) = decoder([example], windows, starts, ends, settings, nbest=3)
        assert (p.text, p.start, p.end, p.score, p.nbest) == ("", 0, 0, NO_SCORE, ())


def test_the_best_span_over_windows_wins_and_respects_max_answer_length(tokenizer):
    context = " ".join(f"w{i}" for i in range(40))
    example = _example(context)
    windows = build_windows([example], tokenizer, FeatureSettings(max_length=20, doc_stride=4))
    assert len(windows) > 2
    width = int(windows.lengths.max())
    starts = torch.zeros(len(windows), width)
    ends = torch.zeros(len(windows), width)
    # Window 0 holds a weaker span; window 1 a strong start with strong ends three and ten tokens later.
    first0 = int(np.flatnonzero(windows.offsets[0][:, 0] >= 0)[0])
    starts[0, first0] = 2.0
    ends[0, first0 + 1] = 2.0
    w = 1
    first = int(np.flatnonzero(windows.offsets[w][:, 0] >= 0)[0])
    assert windows.offsets[w][first + 9, 0] >= 0
    starts[w, first] = 4.0
    ends[w, first + 2] = 1.0
    ends[w, first + 9] = 3.0
    settings = FeatureSettings(max_length=20, doc_stride=4, max_answer_length=5)
    (p,) = decode([example], windows, starts, ends, settings)
    assert p.score == 5.0
    assert (p.start, p.end) == (windows.offsets[w][first, 0], windows.offsets[w][first + 2, 1])
    (wide,) = decode([example], windows, starts, ends, FeatureSettings(max_length=20, doc_stride=4, max_answer_length=10))
    assert wide.score == 7.0
    assert wide.end == windows.offsets[w][first + 9, 1]


def test_logits_beyond_a_window_are_ignored_and_bf16_is_accepted(tokenizer):
    examples = [_example("i feel tired " * 6), _example("i can sleep")]
    windows = build_windows(examples, tokenizer, FeatureSettings(max_length=20, doc_stride=2))
    starts, ends = random_logits(windows, 3, ties=False, extra=0, dtype=torch.float32)
    base = decode(examples, windows, starts, ends, WINDOWING, nbest=3)
    wide_s = torch.cat([starts, torch.full((len(windows), 5), 1e6)], dim=1)
    wide_e = torch.cat([ends, torch.full((len(windows), 5), float("nan"))], dim=1)
    assert decode(examples, windows, wide_s, wide_e, WINDOWING, nbest=3) == base
    half = decode(examples, windows, starts.bfloat16(), ends.bfloat16(), WINDOWING)
    assert all(math.isfinite(p.score) for p in half)
    assert half == decode(examples, windows, starts.bfloat16().float(), ends.bfloat16().float(), WINDOWING)
    # A strided view (as sliced from a larger model output) decodes like a contiguous copy.
    wide_half = torch.cat([torch.zeros(len(windows), 1), starts, torch.zeros(len(windows), 2)], dim=1).bfloat16()
    assert decode(examples, windows, wide_half[:, 1:-2], ends.bfloat16(), WINDOWING) == half


def test_bad_logits_get_clear_errors(tokenizer):
    examples = [_example("i feel tired")]
    windows = build_windows(examples, tokenizer, WINDOWING)
    n = int(windows.lengths[0])
    with pytest.raises(ValueError, match=r"start_logits: expected shape \[windows=1, length\]"):
        decode(examples, windows, torch.zeros(2, n), torch.zeros(2, n), WINDOWING)
    with pytest.raises(ValueError, match=f"logits have {n - 1} positions but the longest window has {n} tokens"):
        decode(examples, windows, torch.zeros(1, n - 1), torch.zeros(1, n - 1), WINDOWING)
    bad = torch.zeros(1, n)
    bad[0, 2] = float("nan")
    with pytest.raises(ValueError, match="end_logits: window 0 holds NaN"):
        decode(examples, windows, torch.zeros(1, n), bad, WINDOWING)
    with pytest.raises(ValueError, match="outside the 0 given"):
        decode([], windows, torch.zeros(1, n), torch.zeros(1, n), WINDOWING)


def test_examples_without_windows_and_empty_input():
    empty = Windows(input_ids=(), token_type_ids=None, offsets=(), example_index=[], start_positions=[], end_positions=[])
    (p,) = decode([_example("text")], empty, torch.zeros(0, 4), torch.zeros(0, 4), WINDOWING)
    assert (p.text, p.score) == ("", NO_SCORE)
    assert decode([], empty, torch.zeros(0, 4), torch.zeros(0, 4), WINDOWING) == []


def test_answer_on_a_real_span(tokenizer):
    context = "I can't sleep at night. I feel nothing anymore."
    gold = Answer("I feel nothing anymore.", 24, len(context))
    example = QAExample(id="e", post_id="p", question="", context=context, answers=(gold,))
    windows = build_windows([example], tokenizer, WINDOWING)
    starts = torch.zeros(len(windows), int(windows.lengths.max()))
    ends = torch.zeros_like(starts)
    starts[0, windows.start_positions[0]] = 8.0
    ends[0, windows.end_positions[0]] = 8.0
    (p,) = decode([example], windows, starts, ends, WINDOWING)
    assert (p.text, p.start, p.end) == (gold.text, gold.start, gold.end)


def test_nbest_lists_a_span_found_in_two_overlapping_windows_once(tokenizer):
    context = " ".join(f"w{i}" for i in range(20))
    example = _example(context)
    settings = FeatureSettings(max_length=16, doc_stride=6, n_best_size=3)
    windows = build_windows([example], tokenizer, settings)
    # The first token of window 1 lies in the overlap, so window 0 holds it too.
    token = windows.offsets[1][np.flatnonzero(windows.offsets[1][:, 0] >= 0)[0]].tolist()
    in_zero = int(np.flatnonzero((windows.offsets[0] == token).all(axis=1))[0])
    in_one = int(np.flatnonzero((windows.offsets[1] == token).all(axis=1))[0])
    starts = torch.zeros(len(windows), int(windows.lengths.max()))
    ends = torch.zeros_like(starts)
    starts[0, in_zero] = ends[0, in_zero] = 3.0
    starts[1, in_one] = ends[1, in_one] = 3.0
    for decoder in (decode, decode_reference):
        (p,) = decoder([example], windows, starts, ends, settings, nbest=4)
        assert (p.start, p.end, p.score) == (token[0], token[1], 6.0)
        spans = [(s, e) for _, s, e, _ in p.nbest]
        assert spans.count((token[0], token[1])) == 1
        assert len(spans) == 4


def test_nbest_looks_past_pairs_that_repeat_one_character_span(tokenizer):
    # 한 becomes three tokens sharing the offsets (2, 3): the window's best pairs all give one span.
    example = _example("a 한 b c d")
    windows = build_windows([example], tokenizer, WINDOWING)
    tokens = tokenizer.convert_ids_to_tokens(windows.input_ids[0].tolist())
    assert tokens[3:6] == ["\u1112", "##\u1161", "##\u11ab"]
    starts = torch.zeros(1, len(tokens))
    ends = torch.zeros(1, len(tokens))
    starts[0, 3:6] = torch.tensor([5.0, 4.9, 4.8])
    ends[0, 3:8] = torch.tensor([5.0, 4.9, 4.8, 1.0, 0.5])
    settings = FeatureSettings(max_length=32, doc_stride=4, n_best_size=6)
    fast = decode([example], windows, starts, ends, settings, nbest=3)
    assert fast == decode_reference([example], windows, starts, ends, settings, nbest=3)
    assert [(text, s, e) for text, s, e, _ in fast[0].nbest] == [("한", 2, 3), ("한 b", 2, 5), ("한 b c", 2, 7)]


# --- No answer: null scores, non-overlapping spans, the presence decision (issue 14) ----------------------


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@given(
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    ties=st.booleans(),
    n_best_size=st.integers(1, 8),
    max_spans=st.integers(1, 4),
    block=st.integers(1, 6),
    shuffle=st.booleans(),
)
def test_decode_equals_the_reference_across_blocks_and_shuffled_windows(
    tokenizer, strategies, data, seed, ties, n_best_size, max_spans, block, shuffle
):
    # Tiny blocks cut between (never within) examples; shuffled windows take the gathering path.
    examples = data.draw(strategies.qa_examples(max_examples=5, max_words=60))
    windows = build_windows(examples, tokenizer, WINDOWING)
    if shuffle:
        windows = windows.subset(np.random.default_rng(seed).permutation(len(windows)))
    settings = FeatureSettings(max_length=32, doc_stride=4, n_best_size=n_best_size, max_answer_length=6)
    starts, ends = random_logits(windows, seed, ties=ties, extra=0, dtype=torch.float32)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("evfeatures.decode._BLOCK_WINDOWS", block)
        fast = decode(examples, windows, starts, ends, settings, nbest=2, max_spans=max_spans)
    assert fast == decode_reference(examples, windows, starts, ends, settings, nbest=2, max_spans=max_spans)
    assert [(p.text, p.score, p.nbest) for p in fast] == [
        (p.text, p.score, p.nbest) for p in decode(examples, windows, starts, ends, settings, nbest=2)
    ]


@given(data=st.data(), seed=st.integers(0, 2**32 - 1), max_spans=st.integers(0, 5))
def test_null_scores_and_non_overlapping_spans(tokenizer, strategies, data, seed, max_spans):
    examples = data.draw(strategies.qa_examples(max_words=60))
    windows = build_windows(examples, tokenizer, WINDOWING)
    starts, ends = random_logits(windows, seed, ties=False, extra=0, dtype=torch.float32)
    predictions = decode(examples, windows, starts, ends, WINDOWING, max_spans=max_spans)
    plain = decode(examples, windows, starts, ends, WINDOWING)
    # The new fields leave the old ones as they were.
    assert [(p.text, p.start, p.end, p.score, p.nbest) for p in predictions] == [(p.text, p.start, p.end, p.score, p.nbest) for p in plain]
    assert all(p.spans == () for p in plain)
    more = decode(examples, windows, starts, ends, WINDOWING, max_spans=max_spans + 1)
    cls = windows.cls_index
    for k, (example, p) in enumerate(zip(examples, predictions)):
        mine = np.flatnonzero(windows.example_index == k)
        assert p.null_score == min(float(starts[w, cls] + ends[w, cls]) for w in mine)
        if p.score == NO_SCORE or max_spans == 0:
            assert p.spans == ()
            continue
        assert 1 <= len(p.spans) <= max_spans
        assert p.spans[0] == (p.text, p.start, p.end, p.score), "the best span comes first"
        assert [sc for *_, sc in p.spans] == sorted((sc for *_, sc in p.spans), reverse=True)
        for i, (text, s, e, _) in enumerate(p.spans):
            assert text == example.context[s:e]
            assert not any(_overlap((s, e), (s2, e2)) for _, s2, e2, _ in p.spans[:i])
        # Asking for more spans extends the list; it never changes the spans already chosen.
        assert more[k].spans[: len(p.spans)] == p.spans


def test_non_overlapping_spans_skip_those_that_overlap_a_better_one(tokenizer):
    context = " ".join(f"w{i}" for i in range(12))
    example = _example(context)
    windows = build_windows([example], tokenizer, FeatureSettings(max_length=64, doc_stride=4))
    assert len(windows) == 1
    # Token of word i: [CLS] sits at 0, [SEP] at 1 (empty question), then two tokens per word ("w", "##i").
    first = int(np.flatnonzero(windows.offsets[0][:, 0] >= 0)[0])

    def word(i: int) -> int:
        return first + 2 * i

    starts = torch.zeros(1, int(windows.lengths[0]))
    ends = torch.zeros_like(starts)
    starts[0, 0] = ends[0, 0] = 1.0  # CLS: null score 2
    starts[0, word(2)], ends[0, word(3) + 1] = 9.0, 9.0  # w2 w3: 18
    starts[0, word(3)] = 8.5  # w3 .. w3 overlaps it: 17.5, skipped
    starts[0, word(7)], ends[0, word(8) + 1] = 7.0, 7.0  # w7 w8: 14 (w3 .. w8 would overlap)
    settings = FeatureSettings(max_length=64, doc_stride=4, n_best_size=4, max_answer_length=30)
    for decoder in (decode, decode_reference):
        (p,) = decoder([example], windows, starts, ends, settings, max_spans=3)
        assert p.null_score == 2.0
        assert [(text, score) for text, _, _, score in p.spans][:2] == [("w2 w3", 18.0), ("w7 w8", 14.0)]
        assert all(not _overlap((s, e), (p.start, p.end)) for _, s, e, _ in p.spans[1:])
    (p,) = decode([example], windows, starts, ends, settings, max_spans=3)
    assert p.na_score == 2.0 - 18.0
    gone = decide(p, threshold=-16.5, max_spans=3)
    assert not gone.present and gone.spans == () and gone.margin == 16.0
    one = decide(p, threshold=-12.5, max_spans=3)
    assert one.present and [text for text, *_ in one.spans] == ["w2 w3"]
    both = decide(p, threshold=-12.0, max_spans=3)  # na of w7 w8 is exactly -12: kept
    assert [text for text, *_ in both.spans][:2] == ["w2 w3", "w7 w8"]
    assert [text for text, *_ in decide(p, threshold=-11.0, max_spans=1).spans] == ["w2 w3"]


def _prediction_with(score: float, null: float, spans: tuple = ()) -> Prediction:
    return Prediction(
        "e", "p", "", "ab" if score != NO_SCORE else "", 0, 2 if score != NO_SCORE else 0, score, null_score=null, spans=spans
    )


def test_decide_follows_the_squad_v2_rule_exactly():
    # na = null - score; no answer iff na > threshold.
    p = _prediction_with(3.0, 5.0)
    assert decide(p, 2.0, 1) == Decision("e", True, -2.0, (("ab", 0, 2, 3.0),))
    assert decide(p, 1.999, 1) == Decision("e", False, -2.0, ())
    # No span at all: absent whatever the threshold.
    assert decide(_prediction_with(NO_SCORE, 0.0), 1e9, 3) == Decision("e", False, NO_SCORE, ())
    # No windows (null -inf) but a span: present.
    assert decide(_prediction_with(1.0, NO_SCORE), 0.0, 1).present
    with pytest.raises(ValueError, match="max_spans"):
        decide(p, 0.0, 0)
    with pytest.raises(ValueError, match="NaN"):
        decide(p, float("nan"), 1)


@given(
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
    max_spans=st.integers(1, 4),
    thresholds=st.lists(st.floats(-15, 15, allow_nan=False), min_size=2, max_size=4),
)
def test_decisions_are_substrings_non_overlapping_bounded_and_monotone_in_the_threshold(
    tokenizer, strategies, data, seed, max_spans, thresholds
):
    examples = data.draw(strategies.qa_examples(max_words=60))
    windows = build_windows(examples, tokenizer, WINDOWING)
    starts, ends = random_logits(windows, seed, ties=data.draw(st.booleans()), extra=0, dtype=torch.float32)
    predictions = decode(examples, windows, starts, ends, WINDOWING, max_spans=data.draw(st.integers(0, 4)))
    for example, p in zip(examples, predictions):
        previous = None
        for threshold in sorted(thresholds):
            d = decide(p, threshold, max_spans)
            assert d.example_id == example.id
            assert d.present == bool(d.spans), "present iff some span is reported"
            assert d.present == (p.score != NO_SCORE and not p.null_score - p.score > threshold)
            assert len(d.spans) <= max_spans
            for i, (text, s, e, _) in enumerate(d.spans):
                assert text == example.context[s:e]
                assert not any(_overlap((s, e), (s2, e2)) for _, s2, e2, _ in d.spans[:i])
            if d.present:
                assert d.spans[0] == (p.text, p.start, p.end, p.score)
                assert d.margin == p.score - p.null_score
            if previous is not None and previous.present:
                # A higher threshold keeps the example present and keeps every span it had.
                assert d.present and d.spans[: len(previous.spans)] == previous.spans
            previous = d
