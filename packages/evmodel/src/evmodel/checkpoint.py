"""Checkpoints as standard Hugging Face model directories, written atomically, read without pickle.

A checkpoint directory holds ``config.json`` (architectures = the transformers QA class),
``model.safetensors``, the tokenizer files and ``evspan.json`` (the caller's metadata plus the format
version), so ``AutoModelForQuestionAnswering.from_pretrained(dir)`` and other tools can load it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from transformers import PretrainedConfig, PreTrainedTokenizerBase

from evdata.atomic import atomic_directory, atomic_write_text
from evmodel.device import resolve_device
from evmodel.loading import ModelLoadError, load_config, load_tokenizer
from evmodel.qa import EvidenceQA
from evmodel.settings import ModelSettings

FORMAT_VERSION = 1
WEIGHTS_NAME = "model.safetensors"
METADATA_NAME = "evspan.json"


class CheckpointError(ValueError):
    """A checkpoint directory that cannot be loaded; the message names the file and what to do."""


def save_checkpoint(model: EvidenceQA, tokenizer: PreTrainedTokenizerBase, directory: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``model`` and ``tokenizer`` as a Hugging Face model directory at ``directory``.

    The directory is built under a temporary name and renamed into place, so an existing checkpoint
    there stays intact until the new one is complete. ``metadata`` (JSON-serialisable) goes to
    ``evspan.json`` together with ``format_version``.
    """
    directory = Path(directory)
    # A torch.compile wrapper keeps the real module in _orig_mod; save that one's keys.
    model = getattr(model, "_orig_mod", model)
    try:
        metadata_text = json.dumps({**metadata, "format_version": FORMAT_VERSION}, indent=2, ensure_ascii=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint metadata for {directory} is not JSON-serialisable: {exc}") from None
    state = _portable_state_dict(model)
    config = copy.deepcopy(model.config)
    config.architectures = [model.qa_architecture]
    with atomic_directory(directory) as tmp:
        config.save_pretrained(tmp)
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / METADATA_NAME, metadata_text)
    return directory


def _portable_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Contiguous CPU copies of the state dict; tensors sharing storage get their own copy each."""
    state: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu").contiguous()
        storage = tensor.untyped_storage()
        # safetensors refuses tensors that share memory (tied weights, views of one buffer);
        # a copy each keeps every key, and loading ties the weights again where the model does.
        if storage.data_ptr() in seen or storage.nbytes() != tensor.numel() * tensor.element_size():
            tensor = tensor.clone()
        seen.add(tensor.untyped_storage().data_ptr())
        state[key] = tensor
    return state


def load_checkpoint(
    directory: str | Path, settings: ModelSettings | None = None, device: str | torch.device = "cpu"
) -> tuple[EvidenceQA, PreTrainedTokenizerBase, dict[str, Any]]:
    """Load a checkpoint directory: the model (in eval mode, on ``device``), its tokenizer and metadata.

    ``settings`` supplies dropout, attention kernel and gradient checkpointing (defaults otherwise).
    A standard Hugging Face QA directory without ``evspan.json`` loads too, with empty metadata.
    """
    directory = Path(directory)
    _check_layout(directory)
    try:
        config = load_config(directory)
        tokenizer = load_tokenizer(directory)
    except ModelLoadError as exc:
        raise CheckpointError(f"checkpoint {directory}: {exc}") from None
    weights = directory / WEIGHTS_NAME
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{weights}: cannot be read as safetensors ({exc}); the file is corrupt or truncated. "
            "Fix: copy the checkpoint again from its source, or retrain"
        ) from None
    model = _build(config, settings, state, directory)
    metadata = read_metadata(directory) if (directory / METADATA_NAME).exists() else {}
    return model.to(resolve_device(device)).eval(), tokenizer, metadata


# What building a transformers model from a hand-edited config.json can raise (sizes that do not
# divide, negative or zero sizes, an unknown activation name, ...).
_BUILD_ERRORS = (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError, RuntimeError, AttributeError)


def _build(config: PretrainedConfig, settings: ModelSettings | None, state: dict[str, torch.Tensor], directory: Path) -> EvidenceQA:
    """The model ``config.json`` describes, holding the weights of ``model.safetensors``, after checking they fit.

    The model is first built on the meta device (no memory), so a config.json that cannot be built,
    or whose sizes differ from the weights (say, edited to billions of positions), is an error
    before anything is allocated; the real model then has exactly the sizes of the weights file.
    """
    weights = directory / WEIGHTS_NAME
    try:
        with torch.device("meta"):
            skeleton = EvidenceQA.from_config(config, settings)
    except ModelLoadError as exc:
        raise CheckpointError(f"checkpoint {directory}: {exc}") from None
    except _BUILD_ERRORS as exc:
        raise CheckpointError(
            f"{directory / 'config.json'}: transformers cannot build a model from it ({type(exc).__name__}: {_one_line(exc)}). "
            "Fix: copy the checkpoint again from its source, or retrain"
        ) from None
    _check_state(skeleton, state, weights)
    model = EvidenceQA.from_config(config, settings)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{weights}: tensor shapes do not match config.json: {str(exc).strip().splitlines()[-1]}") from None
    return model


def _check_layout(directory: Path) -> None:
    if not directory.exists():
        if directory.name == "model" and (directory.parent / "settings.toml").is_file():
            raise CheckpointError(
                f"{directory.parent}: a run directory without a model (no model/ folder): training stopped before it saved "
                f"a checkpoint. Fix: train again, or, if it was interrupted, resume it (invoke train --resume {directory.parent})"
            )
        raise CheckpointError(f"checkpoint directory not found: {directory}")
    if not directory.is_dir():
        raise CheckpointError(f"checkpoint {directory} is a file, not a model directory")
    if not (directory / WEIGHTS_NAME).is_file():
        hint = ""
        if (directory / "model" / WEIGHTS_NAME).is_file():
            hint = f" (a run directory: the checkpoint is {directory / 'model'})"
        elif any(directory.glob("*.bin")) or any(directory.glob("*.pt")):
            hint = " (only pickled weights are there; evspan loads safetensors only, since unpickling can run code)"
        raise CheckpointError(
            f"{directory}: no {WEIGHTS_NAME}: a run directory without a model{hint}. "
            "Fix: point at a directory written by training (its model/ folder), or train again"
        )
    if not (directory / "config.json").is_file():
        raise CheckpointError(
            f"{directory}: no config.json beside {WEIGHTS_NAME}; the checkpoint is incomplete. Fix: copy it again or retrain"
        )


def _check_state(model: EvidenceQA, state: dict[str, torch.Tensor], weights: Path) -> None:
    """The weights must hold exactly the model's tensors, each of the model's shape."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        lines = []
        if missing:
            lines.append(f"missing {len(missing)} tensor(s): {_preview(missing)}")
        if unexpected:
            lines.append(f"unexpected {len(unexpected)} tensor(s): {_preview(unexpected)}")
        raise CheckpointError(
            f"{weights}: does not match a {model.qa_architecture} of its config.json ({'; '.join(lines)}). "
            "Was it written by another model or edited by hand? Fix: retrain, or re-copy the whole directory"
        )
    wrong = [
        f"{key} {tuple(state[key].shape)} vs {tuple(tensor.shape)}" for key, tensor in expected.items() if state[key].shape != tensor.shape
    ]
    if wrong:
        raise CheckpointError(
            f"{weights}: tensor shapes do not match config.json (file vs config: {_preview(wrong, 3)}). "
            "Was config.json edited, or copied from another model? Fix: re-copy the whole directory, or retrain"
        )


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _preview(keys: list[str], limit: int = 6) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def read_metadata(directory: str | Path) -> dict[str, Any]:
    """The ``evspan.json`` metadata of a checkpoint (the caller's dict plus ``format_version``)."""
    file = Path(directory) / METADATA_NAME
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CheckpointError(f"{file}: not found; {directory} is not a checkpoint written by evspan") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file}:{exc.lineno}: not valid JSON ({exc.msg}); copy the checkpoint again") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{file}: expected a JSON object, got {type(value).__name__}")
    version = value.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{file}: format_version {version!r} is not supported (this evmodel reads up to {FORMAT_VERSION}); upgrade evmodel"
        )
    return value
