"""A public testing module, like ``torch.testing``: tiny BERT model directories for tests.

``make_tiny_bert`` writes a standard Hugging Face model directory with random weights and a small
WordPiece vocabulary built on the spot, so the test suites of evmodel, evtrain, evsearch and the root
integration tests (and users' own tests of code built on evspan) run offline in seconds. Nothing in
evspan's own code path imports it.
"""

from __future__ import annotations

import string
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

from evdata.atomic import atomic_write_bytes, atomic_write_text
from evmodel.loading import build_wordpiece_tokenizer, quiet_transformers

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Typographic punctuation common in Reddit posts; BERT's pre-tokeniser splits on it like ASCII punctuation.
_EXTRA_PUNCTUATION = ("“", "”", "‘", "’", "—", "–", "…")
_COMMON_WORDS_TEXT = """
    the be to of and a in that have i it for not on with he as you do at this but his by from they we say her she or an
    will my one all would there their what so up out if about who get which go me when make can like time no just him know
    take people into year your good some could them see other than then now look only come its over think also back after
    use two how our work first well way even new want because any these give day most us is are was were been am has had did
    feel feeling felt sleep tired sad depressed hopeless worthless guilty energy appetite weight concentrate think thinking
    death die suicide suicidal anxious anxiety mood interest pleasure anymore really very much never always every nothing
    everything life today night morning week month help friends family job school love hate myself anything something
"""


def _question_words() -> list[str]:
    """Words of the nine symptom questions, so a tiny model reads questions as words (as a real one does)."""
    from evdata.records import SYMPTOMS, symptom_question

    text = " ".join(symptom_question(s) for s in SYMPTOMS).lower()
    return "".join(ch if ch.isalnum() else " " for ch in text).split()


COMMON_WORDS = tuple(dict.fromkeys([*_COMMON_WORDS_TEXT.split(), *_question_words()]))


def base_vocabulary(*, cased: bool = False, words: Sequence[str] = ()) -> list[str]:
    """Special tokens, characters, ``##`` continuations, common words and ``words`` (deduplicated, in order).

    Every ASCII word splits into known pieces (a first character plus ``##`` continuations), so
    English text tokenises without ``[UNK]``.
    """
    letters = string.ascii_letters if cased else string.ascii_lowercase
    characters = [*letters, *string.digits, *string.punctuation, *_EXTRA_PUNCTUATION]
    continuations = [f"##{c}" for c in (*letters, *string.digits)]
    common = [w for word in COMMON_WORDS for w in ((word, word.capitalize()) if cased else (word,))]
    extra = [w if cased else w.lower() for w in words]
    return list(dict.fromkeys([*SPECIAL_TOKENS, *characters, *continuations, *common, *extra]))


def make_tiny_bert(
    directory: str | Path,
    *,
    cased: bool = False,
    tokenizer_config: bool = True,
    words: Sequence[str] = (),
    hidden: int = 32,
    layers: int = 2,
    heads: int = 2,
    max_position: int = 512,
    seed: int = 0,
) -> Path:
    """Write a tiny random BERT encoder directory and return its path.

    Holds ``config.json`` (architectures ``BertModel``), ``model.safetensors`` (base-model keys with
    a pooler, like a hub encoder) and ``vocab.txt``; with ``tokenizer_config`` also the fast tokenizer
    files (``tokenizer.json``, ``tokenizer_config.json``). Without it the directory looks like
    SpanBERT's hub files. The same arguments give the same bytes; the global RNG is left untouched.
    """
    directory = Path(directory)
    vocab = base_vocabulary(cased=cased, words=words)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=max_position,
        type_vocab_size=2,
        architectures=["BertModel"],
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with quiet_transformers():
            model = BertModel(config)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        scratch_dir = Path(scratch)
        # transformers writes these files in place; they are copied over atomically afterwards.
        config.save_pretrained(scratch_dir)
        save_file(state, str(scratch_dir / "model.safetensors"), metadata={"format": "pt"})
        if tokenizer_config:
            tokenizer = build_wordpiece_tokenizer({t: i for i, t in enumerate(vocab)}, lowercase=not cased, max_length=max_position)
            tokenizer.save_pretrained(scratch_dir)
        for file in sorted(scratch_dir.iterdir()):
            if file.is_file() and file.name in {
                "config.json",
                "model.safetensors",
                "tokenizer.json",
                "tokenizer_config.json",
                "special_tokens_map.json",
            }:
                atomic_write_bytes(directory / file.name, file.read_bytes())
    atomic_write_text(directory / "vocab.txt", "\n".join(vocab) + "\n")
    return directory
