"""Stride windows and span labels: offsets, coverage, labels, settings checks, tokenizer checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from evdata.config import SettingsError
from evdata.records import Answer, QAExample
from evfeatures import (
    FeatureSettings,
    Windows,
    answer_token_span,
    build_windows,
    check_window_settings,
    context_offsets,
    label_window,
    require_fast_tokenizer,
)

# Small windows (about 10 to 60 context tokens) so that short random posts need several of them.
window_settings = st.builds(
    FeatureSettings,
    max_length=st.integers(32, 64),
    doc_stride=st.integers(0, 8),
)


def windows_of(windows: Windows, example_index: int) -> list[int]:
    return np.flatnonzero(windows.example_index == example_index).tolist()


def context_positions(offsets: np.ndarray) -> np.ndarray:
    return np.flatnonzero(offsets[:, 0] >= 0)


@given(data=st.data(), settings=window_settings)
def test_a_label_covers_its_answer_tightly(tokenizer, strategies, data, settings):
    examples = data.draw(strategies.qa_examples())
    windows = build_windows(examples, tokenizer, settings)
    for w in np.flatnonzero(windows.has_answer):
        s, e = int(windows.start_positions[w]), int(windows.end_positions[w])
        off = windows.offsets[w]
        answers = examples[windows.example_index[w]].answers
        assert s <= e
        assert off[s, 0] >= 0 and off[e, 0] >= 0, "labels point at context tokens"
        covering = [a for a in answers if off[s, 0] <= a.start and off[e, 1] >= a.end]
        assert covering, "a non-CLS label covers one of the example's answers"
        # The labelled answer is the first (by start) lying wholly inside the window's context ...
        inside = context_positions(off)
        within = [a for a in answers if off[inside[0], 0] <= a.start and a.end <= off[inside[-1], 1]]
        a = min(within, key=lambda x: (x.start, x.end))
        assert a in covering
        # ... the label holds every token of the window that overlaps the answer ...
        overlapping = [t for t in inside if off[t, 1] > a.start and off[t, 0] < a.end]
        assert all(s <= t <= e for t in overlapping)
        # ... and covers no more characters than it must.
        assert not any(off[s, 0] < off[t, 0] <= a.start for t in inside)
        assert not any(a.end <= off[t, 1] < off[e, 1] for t in inside)
    for w in np.flatnonzero(~windows.has_answer):
        assert windows.start_positions[w] == windows.end_positions[w] == windows.cls_index
        off = windows.offsets[w]
        inside = context_positions(off)
        answers = examples[windows.example_index[w]].answers
        assert inside.size == 0 or not any(off[inside[0], 0] <= a.start and a.end <= off[inside[-1], 1] for a in answers)


@given(data=st.data(), settings=window_settings)
def test_windows_together_cover_every_context_character(tokenizer, strategies, data, settings):
    examples = data.draw(strategies.qa_examples())
    windows = build_windows(examples, tokenizer, settings)
    for k, example in enumerate(examples):
        covered = np.zeros(len(example.context), dtype=bool)
        for w in windows_of(windows, k):
            off = windows.offsets[w]
            inside = off[context_positions(off)]
            assert ((inside[:, 0] <= inside[:, 1]) & (inside[:, 1] <= len(example.context))).all()
            for a, b in inside:
                covered[a:b] = True
        missing = [i for i, ch in enumerate(example.context) if not ch.isspace() and not covered[i]]
        assert not missing, f"characters {missing[:5]} of {example.context!r} are in no window"


@given(data=st.data(), settings=window_settings)
def test_an_answer_that_fits_a_window_is_labelled_in_one(tokenizer, strategies, data, settings):
    examples = data.draw(strategies.qa_examples())
    windows = build_windows(examples, tokenizer, settings)
    for k, example in enumerate(examples):
        enc = tokenizer(example.context, add_special_tokens=False, return_offsets_mapping=True)
        offsets = np.asarray(enc["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        for a in example.answers:
            tokens = np.flatnonzero((offsets[:, 1] > a.start) & (offsets[:, 0] < a.end))
            # Consecutive windows share doc_stride tokens, so any run of doc_stride + 1 tokens lies in one of them.
            if tokens.size == 0 or tokens.size > settings.doc_stride + 1:
                continue
            holding = [w for w in windows_of(windows, k) if answer_token_span(windows.offsets[w], a.start, a.end) is not None]
            assert holding, f"answer {a.text!r} ({tokens.size} tokens) lies wholly in no window"
            assert all(windows.has_answer[w] for w in holding)


@given(data=st.data(), settings=window_settings)
def test_windows_of_an_example_are_contiguous_ordered_and_within_max_length(tokenizer, strategies, data, settings):
    examples = data.draw(strategies.qa_examples())
    windows = build_windows(examples, tokenizer, settings)
    assert windows.example_index.tolist() == sorted(windows.example_index.tolist())
    assert set(windows.example_index.tolist()) == set(range(len(examples)))
    assert (windows.lengths <= settings.max_length).all()
    assert windows.cls_index == 0
    assert all(ids[0] == tokenizer.cls_token_id for ids in windows.input_ids)
    for k in range(len(examples)):
        firsts = [
            windows.offsets[w][context_positions(windows.offsets[w])][0, 0]
            for w in windows_of(windows, k)
            if context_positions(windows.offsets[w]).size
        ]
        assert firsts == sorted(firsts)


@given(data=st.data(), settings=window_settings)
def test_no_answer_examples_are_labelled_at_cls_in_every_window(tokenizer, strategies, data, settings):
    # SQuAD 2.0: an example without answers says "no evidence" in each of its windows, at the CLS token.
    drawn = data.draw(strategies.qa_examples())
    examples = [QAExample(e.id, e.post_id, e.question, e.context, ()) if k % 2 == 0 else e for k, e in enumerate(drawn)]
    windows = build_windows(examples, tokenizer, settings)
    assert windows.cls_index == 0
    for k, example in enumerate(examples):
        mine = windows_of(windows, k)
        assert mine, "every example has at least one window"
        for w in mine:
            assert windows.input_ids[w][windows.cls_index] == tokenizer.cls_token_id
            if not example.answers:
                assert windows.start_positions[w] == windows.end_positions[w] == 0
                assert not windows.has_answer[w]


def test_windows_of_a_long_answerable_post_without_the_answer_are_labelled_at_cls(tokenizer):
    context = " ".join(f"w{i}" for i in range(120))
    start = context.index("w110")
    answer = Answer("w110 w111", start, start + 9)
    examples = [
        QAExample(id="a", post_id="p", question="sleep?", context=context, answers=(answer,)),
        QAExample(id="n", post_id="p", question="sleep?", context=context, answers=()),
    ]
    windows = build_windows(examples, tokenizer, FeatureSettings(max_length=40, doc_stride=10))
    answered, empty = windows_of(windows, 0), windows_of(windows, 1)
    assert len(answered) == len(empty) > 3
    holding = [w for w in answered if answer_token_span(windows.offsets[w], answer.start, answer.end) is not None]
    assert holding and holding[0] > answered[0]
    for w in answered:
        labels = (int(windows.start_positions[w]), int(windows.end_positions[w]))
        assert (labels != (0, 0)) == (w in holding)
    assert all(windows.start_positions[w] == windows.end_positions[w] == 0 for w in empty)


def test_empty_question_gives_cls_sep_context_sep(tokenizer):
    example = QAExample(id="e", post_id="p", question="", context="i feel tired", answers=(Answer("tired", 7, 12),))
    windows = build_windows([example], tokenizer, FeatureSettings(max_length=32, doc_stride=4))
    assert len(windows) == 1
    tokens = tokenizer.convert_ids_to_tokens(windows.input_ids[0].tolist())
    assert tokens == ["[CLS]", "[SEP]", "i", "feel", "tired", "[SEP]"]
    assert windows.offsets[0].tolist() == [[-1, -1], [-1, -1], [0, 1], [2, 6], [7, 12], [-1, -1]]
    assert windows.token_type_ids[0].tolist() == [0, 0, 1, 1, 1, 1]
    assert (windows.start_positions[0], windows.end_positions[0]) == (4, 4)


def test_first_answer_by_start_is_the_label(tokenizer):
    context = "i feel tired. i can sleep"
    later = Answer("sleep", 20, 25)
    earlier = Answer("tired", 7, 12)
    example = QAExample(id="e", post_id="p", question="", context=context, answers=(later, earlier))
    windows = build_windows([example], tokenizer, FeatureSettings(max_length=32, doc_stride=4))
    s, e = windows.start_positions[0], windows.end_positions[0]
    assert windows.offsets[0][s, 0] == 7 and windows.offsets[0][e, 1] == 12


def test_long_post_splits_into_overlapping_windows(tokenizer):
    context = " ".join(f"w{i}" for i in range(300))
    start = context.index("w150")
    example = QAExample(id="e", post_id="p", question="sleep?", context=context, answers=(Answer("w150 w151", start, start + 9),))
    settings = FeatureSettings(max_length=40, doc_stride=10)
    windows = build_windows([example], tokenizer, settings)
    assert len(windows) > 10
    assert windows.has_answer.sum() >= 1
    # Consecutive windows overlap by exactly doc_stride context tokens.
    first, second = (windows.offsets[w][context_positions(windows.offsets[w])] for w in (0, 1))
    assert first[-settings.doc_stride :].tolist() == second[: settings.doc_stride].tolist()


def test_chunked_tokenization_equals_one_example_at_a_time(tokenizer):
    examples = [
        QAExample(id=f"e{k}", post_id=f"p{k}", question="sleep?" if k % 2 else "", context=f"i feel tired {k} " * (k % 7 + 1), answers=())
        for k in range(150)  # more than one chunk of examples
    ]
    settings = FeatureSettings(max_length=24, doc_stride=3)
    together = build_windows(examples, tokenizer, settings)
    alone = [build_windows([e], tokenizer, settings) for e in examples]
    assert len(together) == sum(len(w) for w in alone)
    w = 0
    for k, part in enumerate(alone):
        for j in range(len(part)):
            assert together.input_ids[w].tolist() == part.input_ids[j].tolist()
            assert together.offsets[w].tolist() == part.offsets[j].tolist()
            assert together.example_index[w] == k
            w += 1


def test_subset_keeps_windows_and_example_indices(tokenizer):
    examples = [
        QAExample(id=f"e{k}", post_id="p", question="", context="i feel tired " * 10, answers=(Answer("tired", 7, 12),)) for k in range(3)
    ]
    windows = build_windows(examples, tokenizer, FeatureSettings(max_length=20, doc_stride=2))
    picked = windows.subset([len(windows) - 1, 0])
    assert len(picked) == 2
    assert picked.example_index.tolist() == [windows.example_index[-1], 0]
    assert picked.input_ids[1] is windows.input_ids[0]
    assert picked.lengths.tolist() == [windows.lengths[-1], windows.lengths[0]]
    assert picked.has_answer.tolist() == [windows.has_answer[-1], windows.has_answer[0]]


def test_windows_store_ids_and_offsets_as_int32_and_refuse_what_does_not_fit(tokenizer):
    """Half the memory of int64 for a corpus's windows; a value int32 cannot hold is an error, not a wrap-around."""
    examples = [QAExample(id="e", post_id="p", question="", context="i feel tired " * 10, answers=(Answer("tired", 7, 12),))]
    windows = build_windows(examples, tokenizer, FeatureSettings(max_length=20, doc_stride=2))
    arrays = [*windows.input_ids, *windows.token_type_ids, *windows.offsets]
    assert {a.dtype for a in arrays} == {np.dtype(np.int32)}
    with pytest.raises(ValueError, match=r"Windows: values outside int32 \(0\.\.2147483648\)"):
        Windows(
            input_ids=[np.array([0, 2**31])],
            token_type_ids=None,
            offsets=[np.array([[-1, -1], [0, 1]])],
            example_index=[0],
            start_positions=[0],
            end_positions=[0],
        )


def test_pure_labelling_functions():
    offsets = context_offsets([(0, 0), (0, 5), (0, 0), (0, 1), (2, 6), (7, 12), (0, 0)], [None, 0, None, 1, 1, 1, None])
    assert offsets.tolist() == [[-1, -1], [-1, -1], [-1, -1], [0, 1], [2, 6], [7, 12], [-1, -1]]
    assert answer_token_span(offsets, 2, 12) == (4, 5)
    assert answer_token_span(offsets, 3, 5) == (4, 4)  # inside one token
    assert answer_token_span(offsets, 7, 13) is None  # runs past the window
    assert answer_token_span(offsets, 5, 5) is None  # empty
    # One character split into three tokens with equal offsets: the label spans all three.
    hangul = np.asarray([[-1, -1], [0, 1], [2, 3], [2, 3], [2, 3], [4, 5], [-1, -1]])
    assert answer_token_span(hangul, 2, 3) == (2, 4)
    assert answer_token_span(hangul, 0, 3) == (1, 4)
    assert answer_token_span(hangul, 2, 5) == (2, 5)
    assert label_window(offsets, (Answer("x", 20, 21), Answer("tired", 7, 12)), cls_index=0) == (5, 5)
    assert label_window(offsets, (), cls_index=0) == (0, 0)


def test_slow_tokenizer_is_refused_with_a_clear_message():
    from transformers import ByT5Tokenizer

    slow = ByT5Tokenizer()
    with pytest.raises(TypeError, match=r"fast tokenizer.*slow tokenizer ByT5Tokenizer"):
        require_fast_tokenizer(slow)
    example = QAExample(id="e", post_id="p", question="", context="text", answers=())
    with pytest.raises(TypeError, match="fast tokenizer"):
        build_windows([example], slow, FeatureSettings())


def test_doc_stride_too_large_for_the_question_names_both_settings(tokenizer):
    question = "Depressed mood: feeling sad."
    q_tokens = len(tokenizer(question, add_special_tokens=False)["input_ids"])
    settings = FeatureSettings(max_length=32, doc_stride=15)
    room = 32 - 3 - q_tokens
    assert room <= 15
    with pytest.raises(SettingsError) as info:
        check_window_settings(settings, tokenizer, ["", question])
    (problem,) = info.value.problems
    assert problem.startswith("features.doc_stride:")
    assert f"leaves {room} context tokens" in problem
    assert f"lower features.doc_stride to at most {room - 1}" in problem
    assert f"raise features.max_length to at least {3 + q_tokens + 16}" in problem
    # Either suggested fix passes.
    check_window_settings(FeatureSettings(max_length=32, doc_stride=room - 1), tokenizer, [question])
    check_window_settings(FeatureSettings(max_length=3 + q_tokens + 16, doc_stride=15), tokenizer, [question])


def test_build_windows_checks_settings_before_the_tokenizer_can_panic(tokenizer):
    example = QAExample(id="e", post_id="p", question="Depressed mood: feeling sad.", context="i feel tired " * 20, answers=())
    with pytest.raises(SettingsError, match=r"features\.doc_stride"):
        build_windows([example], tokenizer, FeatureSettings(max_length=32, doc_stride=15))


def test_max_length_beyond_the_tokenizer_limit_is_refused(tokenizer_factory):
    small = tokenizer_factory(model_max_length=64)
    with pytest.raises(SettingsError) as info:
        check_window_settings(FeatureSettings(max_length=128, doc_stride=16), small, [""])
    assert info.value.problems == [
        "features.max_length: 128 exceeds the tokenizer's limit of 64 tokens (model_max_length); set features.max_length to at most 64"
    ]
    check_window_settings(FeatureSettings(max_length=64, doc_stride=16), small, [""])


def test_answer_text_must_match_the_context(tokenizer):
    example = QAExample(id="post7-q", post_id="post7", question="", context="i feel tired", answers=(Answer("sleep", 7, 12),))
    with pytest.raises(ValueError, match=r"example 'post7-q': answer 0 text 'sleep' differs"):
        build_windows([example], tokenizer, FeatureSettings(max_length=32, doc_stride=4))
    outside = QAExample(id="post8-q", post_id="post8", question="", context="i feel", answers=(Answer("tired", 7, 12),))
    with pytest.raises(ValueError, match=r"example 'post8-q': answer 0 spans characters \[7, 12\) outside"):
        build_windows([outside], tokenizer, FeatureSettings(max_length=32, doc_stride=4))


def test_no_examples_give_no_windows(tokenizer):
    windows = build_windows([], tokenizer, FeatureSettings())
    assert len(windows) == 0
    assert windows.lengths.tolist() == []


class _KeepsFirstWindow:
    """A fast tokenizer whose overflow stops after the first window of each example (tokenizers 0.23.1-0.23.2)."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer

    def __getattr__(self, name):
        return getattr(self._tokenizer, name)

    def __call__(self, *args, **kwargs):
        from transformers import BatchEncoding

        enc = self._tokenizer(*args, **kwargs)
        if "overflow_to_sample_mapping" not in enc:  # not a windowing call
            return enc
        mapping = enc["overflow_to_sample_mapping"]
        first = [w for w, sample in enumerate(mapping) if w == 0 or mapping[w - 1] != sample]
        return BatchEncoding({key: [value[w] for w in first] for key, value in enc.items()}, encoding=[enc.encodings[w] for w in first])


def test_windows_that_stop_short_of_the_context_are_an_error_naming_the_example_and_versions(tokenizer, monkeypatch):
    import tokenizers

    from evfeatures import TokenizerError

    long = QAExample(id="long-q", post_id="long", question="", context="i feel tired every day. " * 20, answers=())
    short = QAExample(id="short-q", post_id="short", question="", context="i feel tired", answers=())
    settings = FeatureSettings(max_length=32, doc_stride=4)
    assert len(build_windows([short, long], tokenizer, settings)) > 2  # the real tokenizer covers the long post
    with pytest.raises(
        TokenizerError, match=r"example long-q: the tokenizer's windows stop at character \d+ of 480.*tokenizers \S+\. Use the versions"
    ):
        build_windows([short, long], _KeepsFirstWindow(tokenizer), settings)
    monkeypatch.setattr(tokenizers, "__version__", "0.23.2")
    with pytest.raises(TokenizerError, match=r"huggingface/tokenizers#2091\): install tokenizers 0.23.3 or later"):
        build_windows([short, long], _KeepsFirstWindow(tokenizer), settings)
