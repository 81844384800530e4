"""Stride windows: question + context through a fast tokenizer, context offsets, start/end labels.

A long post does not fit one encoder input, so each (question, context) pair becomes several
overlapping windows (``truncation="only_second"`` with ``stride=doc_stride``). Every window keeps
the index of its example, character offsets for its context tokens (``(-1, -1)`` for everything
else), and training labels: the token span of the first answer that lies wholly inside the window's
context, or the CLS index when there is none. So an example without answers (a "no evidence"
example) is labelled at CLS in every one of its windows, the SQuAD 2.0 convention.

The labelling steps are pure functions (``context_offsets``, ``answer_token_span``,
``label_window``) so each can be tested alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import numpy as np

from evdata.config import SettingsError
from evdata.records import Answer, QAExample
from evfeatures.settings import FeatureSettings

# Examples are tokenized in chunks so the tokenizer's Python-side output (lists of ints and offset
# tuples) stays bounded; one enormous post still forms a chunk of its own.
_CHUNK_EXAMPLES = 64
_CHUNK_CHARS = 200_000

# tokenizers' model_max_length is this huge sentinel when the tokenizer has no known limit.
_NO_LIMIT = 10**12


def _as_int32_tuple(arrays: Sequence[Any]) -> tuple[np.ndarray, ...]:
    return tuple(_int32(np.asarray(a)) for a in arrays)


def _as_offsets_tuple(arrays: Sequence[Any]) -> tuple[np.ndarray, ...]:
    return tuple(_int32(np.asarray(a)).reshape(-1, 2) for a in arrays)


def _int32(array: np.ndarray) -> np.ndarray:
    """``array`` stored as int32: token ids and character offsets fit, and a corpus's windows take half the memory."""
    if array.size and array.dtype != np.int32 and (array.min() < -(2**31) or array.max() >= 2**31):
        raise ValueError(f"Windows: values outside int32 ({array.min()}..{array.max()})")
    return array.astype(np.int32, copy=False)


@attrs.frozen(eq=False)
class Windows:
    """Model inputs for a list of examples: one entry per window, unpadded, token ids and offsets as int32.

    ``offsets[w]`` has shape ``[n, 2]`` and holds character offsets into the example's context for
    context tokens and ``(-1, -1)`` for every other token (question, special tokens).
    ``start_positions``/``end_positions`` are token indices of the labelled answer, or
    ``cls_index`` when the window holds no answer wholly inside its context.
    """

    input_ids: tuple[np.ndarray, ...] = attrs.field(converter=_as_int32_tuple)
    token_type_ids: tuple[np.ndarray, ...] | None = attrs.field(converter=attrs.converters.optional(_as_int32_tuple))
    offsets: tuple[np.ndarray, ...] = attrs.field(converter=_as_offsets_tuple)
    example_index: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64).reshape(-1))
    start_positions: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64).reshape(-1))
    end_positions: np.ndarray = attrs.field(converter=lambda a: np.asarray(a, dtype=np.int64).reshape(-1))
    cls_index: int = 0
    _lengths: np.ndarray = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        n = len(self.input_ids)
        sizes = {
            "offsets": len(self.offsets),
            "example_index": len(self.example_index),
            "start_positions": len(self.start_positions),
            "end_positions": len(self.end_positions),
        }
        if self.token_type_ids is not None:
            sizes["token_type_ids"] = len(self.token_type_ids)
        wrong = [f"{name} has {size}" for name, size in sizes.items() if size != n]
        if wrong:
            raise ValueError(f"Windows: {n} input_ids but " + ", ".join(wrong))
        lengths = np.fromiter((len(ids) for ids in self.input_ids), dtype=np.int64, count=n)
        object.__setattr__(self, "_lengths", lengths)

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def lengths(self) -> np.ndarray:
        """Tokens per window (int64, ``[W]``)."""
        return self._lengths

    @property
    def has_answer(self) -> np.ndarray:
        """True where the window's label is an answer span, not the CLS index (bool, ``[W]``)."""
        return self.start_positions != self.cls_index

    def subset(self, indices: Sequence[int] | np.ndarray) -> Windows:
        """The windows at ``indices``, in that order (example indices keep referring to the same examples)."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return Windows(
            input_ids=tuple(self.input_ids[i] for i in idx),
            token_type_ids=None if self.token_type_ids is None else tuple(self.token_type_ids[i] for i in idx),
            offsets=tuple(self.offsets[i] for i in idx),
            example_index=self.example_index[idx],
            start_positions=self.start_positions[idx],
            end_positions=self.end_positions[idx],
            cls_index=self.cls_index,
        )

    @staticmethod
    def concatenate(parts: Sequence[Windows]) -> Windows:
        """Join windows built separately over the same list of examples (``cls_index`` must agree)."""
        if not parts:
            raise ValueError("Windows.concatenate: nothing to join")
        cls = {p.cls_index for p in parts}
        if len(cls) > 1:
            raise ValueError(f"Windows.concatenate: parts disagree on cls_index ({sorted(cls)})")
        types = [p.token_type_ids for p in parts]
        if any(t is None for t in types) and not all(t is None for t in types):
            raise ValueError("Windows.concatenate: some parts have token_type_ids and some do not")
        return Windows(
            input_ids=tuple(a for p in parts for a in p.input_ids),
            token_type_ids=None if types[0] is None else tuple(a for t in types for a in t),  # type: ignore[union-attr]
            offsets=tuple(a for p in parts for a in p.offsets),
            example_index=np.concatenate([p.example_index for p in parts]),
            start_positions=np.concatenate([p.start_positions for p in parts]),
            end_positions=np.concatenate([p.end_positions for p in parts]),
            cls_index=parts[0].cls_index,
        )


def require_fast_tokenizer(tokenizer: Any) -> None:
    """Raise a clear ``TypeError`` unless ``tokenizer`` is a fast (Rust ``tokenizers``) tokenizer.

    Windows need offset mappings and overflowing windows with a sample mapping, which only fast
    tokenizers provide.
    """
    if not getattr(tokenizer, "is_fast", False):
        name = type(tokenizer).__name__
        raise TypeError(
            f"evfeatures needs a fast tokenizer (backed by the Rust 'tokenizers' library) for character offsets "
            f"and stride windows, got the slow tokenizer {name}. Load the model's fast tokenizer instead "
            f"(AutoTokenizer.from_pretrained(path, use_fast=True), which needs a tokenizer.json or a vocabulary "
            f"that transformers can convert), or pick a model that ships one."
        )


def _question_lengths(tokenizer: Any, questions: Sequence[str]) -> int:
    unique = sorted(set(questions))
    if not unique:
        return 0
    ids = tokenizer(unique, add_special_tokens=False, return_attention_mask=False, return_token_type_ids=False)["input_ids"]
    return max(len(x) for x in ids)


def check_window_settings(settings: FeatureSettings, tokenizer: Any, questions: Sequence[str]) -> None:
    """Check that ``settings`` can window these questions with this tokenizer; raise ``SettingsError`` if not.

    Each window holds the question, the special tokens and a slice of the context; the tokenizer
    needs that slice to be longer than ``doc_stride`` (otherwise windows could not advance), and
    ``max_length`` may not exceed what the tokenizer (and so the model) accepts.
    """
    require_fast_tokenizer(tokenizer)
    problems: list[str] = []
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and limit < _NO_LIMIT and settings.max_length > limit:
        problems.append(
            f"features.max_length: {settings.max_length} exceeds the tokenizer's limit of {limit} tokens "
            f"(model_max_length); set features.max_length to at most {limit}"
        )
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    longest = _question_lengths(tokenizer, questions)
    room = settings.max_length - specials - longest
    if room <= settings.doc_stride:
        problems.append(
            f"features.doc_stride: a window of features.max_length={settings.max_length} tokens minus the longest "
            f"question ({longest} tokens) and {specials} special tokens leaves {max(room, 0)} context tokens, "
            f"which must be more than features.doc_stride={settings.doc_stride}; "
            + (f"lower features.doc_stride to at most {room - 1} or " if room >= 1 else "")
            + f"raise features.max_length to at least {specials + longest + settings.doc_stride + 1}"
            + (" (or shorten the questions)" if longest else "")
        )
    if problems:
        raise SettingsError(problems, "settings")


def context_offsets(offsets: np.ndarray | Sequence[tuple[int, int]], sequence_ids: Sequence[int | None]) -> np.ndarray:
    """Offsets ``[n, 2]`` (int32) with ``(-1, -1)`` for every token not in the context (sequence id 1)."""
    out = np.array(offsets, dtype=np.int32).reshape(-1, 2)
    # As floats, None becomes NaN, so the conversion runs in C rather than a Python loop per token.
    is_context = np.array(sequence_ids, dtype=np.float64) == 1
    out[~is_context] = -1
    return out


def answer_token_span(offsets: np.ndarray, start: int, end: int) -> tuple[int, int] | None:
    """Token indices ``(s, e)`` covering characters ``[start, end)`` if they lie wholly inside this window's context.

    ``offsets`` are a window's offsets with ``(-1, -1)`` outside the context. ``s`` is the context
    token with the latest start at or before ``start``, ``e`` the one with the earliest end at or
    after ``end``, so ``offsets[s][0] <= start`` and ``offsets[e][1] >= end``; where several tokens
    share those offsets (one character can become several tokens), ``s`` is the first and ``e`` the
    last of them. None when the window's context does not reach from ``start`` to ``end`` or the
    span is empty.
    """
    if end <= start:
        return None
    positions = np.flatnonzero(offsets[:, 0] >= 0)
    if positions.size == 0:
        return None
    starts = offsets[positions, 0]
    ends = offsets[positions, 1]
    if starts[0] > start or ends[-1] < end:
        return None
    # Offsets of a context are non-decreasing, so binary search finds the covering tokens.
    i = int(np.searchsorted(starts, starts[np.searchsorted(starts, start, side="right") - 1], side="left"))
    j = int(np.searchsorted(ends, ends[np.searchsorted(ends, end, side="left")], side="right")) - 1
    if i > j:
        return None
    return int(positions[i]), int(positions[j])


def label_window(offsets: np.ndarray, answers: Sequence[Answer], cls_index: int) -> tuple[int, int]:
    """Start/end token labels for one window: the first answer (by start, then end) wholly inside its context, else CLS."""
    for answer in sorted(answers, key=lambda a: (a.start, a.end)):
        span = answer_token_span(offsets, answer.start, answer.end)
        if span is not None:
            return span
    return cls_index, cls_index


def _check_answers(example: QAExample) -> None:
    for k, answer in enumerate(example.answers):
        if not (0 <= answer.start < answer.end <= len(example.context)):
            raise ValueError(
                f"example {example.id!r}: answer {k} spans characters [{answer.start}, {answer.end}) "
                f"outside its context of {len(example.context)} characters"
            )
        if example.context[answer.start : answer.end] != answer.text:
            raise ValueError(
                f"example {example.id!r}: answer {k} text {answer.text[:60]!r} differs from "
                f"context[{answer.start}:{answer.end}] = {example.context[answer.start : answer.end][:60]!r}"
            )


def _chunks(examples: Sequence[QAExample]) -> Iterator[tuple[int, int]]:
    begin, chars = 0, 0
    for i, example in enumerate(examples):
        chars += len(example.context) + len(example.question)
        if i + 1 - begin >= _CHUNK_EXAMPLES or chars >= _CHUNK_CHARS:
            yield begin, i + 1
            begin, chars = i + 1, 0
    if begin < len(examples):
        yield begin, len(examples)


def _find_cls_index(tokenizer: Any, first_ids: np.ndarray) -> int:
    cls_id = getattr(tokenizer, "cls_token_id", None)
    if cls_id is None:
        return 0
    hits = np.flatnonzero(first_ids == cls_id)
    return int(hits[0]) if hits.size else 0


BROKEN_TOKENIZERS = frozenset({"0.23.1", "0.23.2"})
"""tokenizers releases whose truncation stops short of the overflowing windows (excluded in pyproject.toml)."""


class TokenizerError(RuntimeError):
    """The installed tokenizer returned windows that do not cover a context (a library release, not the data)."""


def _check_coverage(examples: Sequence[QAExample], offsets: Sequence[np.ndarray], example_index: Sequence[int]) -> None:
    """Fail loudly if the tokenizer's overflow dropped the end of a context.

    Some tokenizers/transformers releases return fewer overflowing windows than the stride asks for
    (tokenizers 0.23.1 and 0.23.2 may stop short of a context's end, huggingface/tokenizers#2091);
    training on such windows would silently ignore the end of long posts.
    """
    reach = np.zeros(len(examples), dtype=np.int64)
    for off, ex in zip(offsets, example_index):
        if off.size:
            reach[ex] = max(reach[ex], int(off[:, 1].max()))
    for i, example in enumerate(examples):
        tail = example.context[reach[i] :]
        if any(ch.isalnum() for ch in tail):
            import tokenizers
            import transformers

            raise TokenizerError(
                f"example {example.id}: the tokenizer's windows stop at character {reach[i]} of {len(example.context)}; "
                f"overflowing windows were dropped (transformers {transformers.__version__}, tokenizers {tokenizers.__version__}). "
                + (
                    "tokenizers 0.23.1 and 0.23.2 drop them (huggingface/tokenizers#2091): install tokenizers 0.23.3 or later."
                    if tokenizers.__version__ in BROKEN_TOKENIZERS
                    else "Use the versions evspan is tested with (constraints.txt), or report this."
                )
            )


def build_windows(examples: Sequence[QAExample], tokenizer: Any, settings: FeatureSettings) -> Windows:
    """Tokenize every example into stride windows with context offsets and start/end labels.

    Windows of one example are contiguous and in context order. The tokenizer must be fast, and
    ``settings`` must leave room for the context (see ``check_window_settings``). Answers must
    satisfy ``context[start:end] == text``; a mismatch is an error naming the example.
    """
    require_fast_tokenizer(tokenizer)
    check_window_settings(settings, tokenizer, [e.question for e in examples])
    for example in examples:
        _check_answers(example)

    input_ids: list[np.ndarray] = []
    type_ids: list[np.ndarray] | None = None
    offsets: list[np.ndarray] = []
    example_index: list[int] = []
    starts: list[int] = []
    ends: list[int] = []
    cls_index: int | None = None
    cls_id = getattr(tokenizer, "cls_token_id", None)
    check_cls = False

    for begin, stop in _chunks(examples):
        chunk = examples[begin:stop]
        enc = tokenizer(
            [e.question for e in chunk],
            [e.context for e in chunk],
            truncation="only_second",
            max_length=settings.max_length,
            stride=settings.doc_stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_attention_mask=False,
            padding=False,
        )
        mapping = enc["overflow_to_sample_mapping"]
        chunk_types = enc.get("token_type_ids")
        if type_ids is None and chunk_types is not None:
            type_ids = []
        for w, sample in enumerate(mapping):
            ids = np.asarray(enc["input_ids"][w], dtype=np.int32)
            if cls_index is None:
                cls_index = _find_cls_index(tokenizer, ids)
                check_cls = cls_id is not None and len(ids) > cls_index and ids[cls_index] == cls_id
            elif check_cls and (len(ids) <= cls_index or ids[cls_index] != cls_id):
                # Labels and decoding use one CLS position for every window (CLS-last tokenizers differ per window).
                raise ValueError(
                    f"tokenizer {type(tokenizer).__name__} does not put its CLS token at index {cls_index} in every window; "
                    "evfeatures supports tokenizers with the CLS token at a fixed position"
                )
            off = context_offsets(enc["offset_mapping"][w], enc.sequence_ids(w))
            example = chunk[sample]
            s, e = label_window(off, example.answers, cls_index)
            input_ids.append(ids)
            if type_ids is not None and chunk_types is not None:
                type_ids.append(np.asarray(chunk_types[w], dtype=np.int32))
            offsets.append(off)
            example_index.append(begin + sample)
            starts.append(s)
            ends.append(e)

    _check_coverage(examples, offsets, example_index)
    return Windows(
        input_ids=tuple(input_ids),
        token_type_ids=None if type_ids is None else tuple(type_ids),
        offsets=tuple(offsets),
        example_index=np.asarray(example_index, dtype=np.int64),
        start_positions=np.asarray(starts, dtype=np.int64),
        end_positions=np.asarray(ends, dtype=np.int64),
        cls_index=0 if cls_index is None else cls_index,
    )
