"""Shared test assets for evfeatures: a tiny fast WordPiece tokenizer built in memory, and text strategies."""

from __future__ import annotations

import string
from types import SimpleNamespace

import pytest
from hypothesis import strategies as st

from evdata.records import Answer, QAExample
from evdata.testing import register_hypothesis_profiles

register_hypothesis_profiles()

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = ["the", "i", "sleep", "night", "tired", "can", "feel", "nothing", "anymore", "##ing", "##ed", "##s"]
# NFD splits the Hangul syllable 한 into three jamo, so it becomes three tokens with the same offsets.
HANGUL = ["\u1112", "##\u1112", "##\u1161", "##\u11ab"]
PUNCTUATION = list(".,'!?-:")


def build_tokenizer(model_max_length: int = 512):
    """A BERT-style fast tokenizer over a ~100-token vocabulary: lower-cased WordPiece, [CLS] A [SEP] B [SEP].

    Every lower-case letter and digit is in the vocabulary both word-initial and as a ``##``
    continuation, so any word made of them tokenizes without [UNK]; other letters (``ж``, ``ß``)
    become [UNK] for their whole word; accents are stripped (``é`` -> ``e``); ``한`` becomes three
    tokens sharing one character's offsets.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertTokenizerFast

    chars = list(string.ascii_lowercase + string.digits)
    vocab_list = SPECIAL_TOKENS + chars + ["##" + c for c in chars] + PUNCTUATION + WORDS + HANGUL
    vocab = {token: i for i, token in enumerate(dict.fromkeys(vocab_list))}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True, lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return BertTokenizerFast(
        tokenizer_object=backend,
        model_max_length=model_max_length,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


@pytest.fixture(scope="session")
def tokenizer_factory():
    """``build_tokenizer`` itself, for tests that need another ``model_max_length``."""
    return build_tokenizer


@pytest.fixture(scope="session")
def tokenizer():
    """The tiny fast tokenizer (model_max_length 512)."""
    return build_tokenizer()


# Questions as in the two question modes: the empty question, and short symptom descriptions.
QUESTIONS = ["", "sleep?", "Fatigue: tiredness.", "Depressed mood: feeling sad."]
SEPARATORS = [" ", " ", " ", "  ", "\n", "\t", ", ", ". ", "! ", " - "]
WORD_ALPHABET = string.ascii_letters + string.digits + "éÉжß'한"


def _words() -> st.SearchStrategy[str]:
    return st.one_of(st.sampled_from([*WORDS[:9], "sleeping", "Tired", "can't", "I"]), st.text(WORD_ALPHABET, min_size=1, max_size=9))


@st.composite
def contexts(draw: st.DrawFn, max_words: int = 40) -> str:
    """Post-like text: words joined by spaces, newlines, tabs and punctuation, maybe with leading/trailing space."""
    words = draw(st.lists(_words(), min_size=1, max_size=max_words))
    seps = draw(st.lists(st.sampled_from(SEPARATORS), min_size=len(words) + 1, max_size=len(words) + 1))
    lead = seps[0] if draw(st.booleans()) else ""
    return lead + "".join(w + s for w, s in zip(words, seps[1:])).rstrip(" ") + (seps[0] if draw(st.booleans()) else "")


@st.composite
def answer_spans(draw: st.DrawFn, context: str, max_answers: int = 3) -> tuple[Answer, ...]:
    """Up to ``max_answers`` spans of ``context`` that start and end on non-whitespace, as aligned evidence does."""
    answers = []
    for _ in range(draw(st.integers(0, max_answers))):
        i = draw(st.integers(0, len(context) - 1))
        j = draw(st.integers(i + 1, min(len(context), i + 80)))
        while i < j and context[i].isspace():
            i += 1
        while j > i and context[j - 1].isspace():
            j -= 1
        if i < j:
            answers.append(Answer(text=context[i:j], start=i, end=j))
    return tuple(answers)


@st.composite
def qa_examples(draw: st.DrawFn, max_examples: int = 4, max_words: int = 40) -> list[QAExample]:
    """A few examples with random contexts, questions and answers."""
    examples = []
    for k in range(draw(st.integers(1, max_examples))):
        context = draw(contexts(max_words))
        examples.append(
            QAExample(
                id=f"p{k}-q",
                post_id=f"p{k}",
                question=draw(st.sampled_from(QUESTIONS)),
                context=context,
                answers=draw(answer_spans(context)),
                symptom=draw(st.sampled_from(["", "FATIGUE"])),
            )
        )
    return examples


@pytest.fixture(scope="session")
def strategies() -> SimpleNamespace:
    """Hypothesis strategies shared by the test modules (fixtures are how importlib-mode tests share code)."""
    return SimpleNamespace(contexts=contexts, answer_spans=answer_spans, qa_examples=qa_examples)
