"""The extractive QA model: an encoder, dropout, one linear layer giving start and end logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn
from torch.nn import functional as F
from transformers import MODEL_FOR_QUESTION_ANSWERING_MAPPING, AutoModel, PretrainedConfig, PreTrainedModel

from evmodel.loading import ModelLoadError, encoder_kwargs, load_config, load_encoder, quiet_transformers, resolve_model
from evmodel.settings import ModelSettings


# Not frozen: frozen attrs classes set fields through object.__setattr__, which torch.compile cannot trace.
# eq=False: tensors have no single truth value, so no generated __eq__.
@attrs.define(eq=False)
class QAOutput:
    """Per-token start and end logits (batch x tokens), and the loss when labels were given."""

    start_logits: torch.Tensor
    end_logits: torch.Tensor
    loss: torch.Tensor | None = None


def qa_architecture(config: PretrainedConfig) -> str:
    """The transformers question-answering class name for ``config`` (``BertForQuestionAnswering``)."""
    try:
        return MODEL_FOR_QUESTION_ANSWERING_MAPPING[type(config)].__name__
    except KeyError:
        raise ModelLoadError(
            f"model type {config.model_type!r} has no question-answering class in transformers, "
            "so its checkpoints could not be loaded by AutoModelForQuestionAnswering; pick a BERT-family encoder"
        ) from None


def span_loss(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    start_positions: torch.Tensor,
    end_positions: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean of the start and end cross-entropies; positions outside the sequence are ignored.

    With ``attention_mask``, padded positions (mask 0) are left out of both softmaxes, so the loss
    and its gradients do not depend on how far a batch is padded: a window scores the same alone
    or beside a longer one. A label on a padded position is an error in the batch, not a loss.
    """
    length = start_logits.size(1)
    # Same convention as transformers' QA heads: a label past the end is ignored, not an index error.
    starts = start_positions.reshape(-1).clamp(0, length)
    ends = end_positions.reshape(-1).clamp(0, length)
    start_logits, end_logits = start_logits.float(), end_logits.float()
    if attention_mask is not None:
        padded = attention_mask.reshape(start_logits.shape) == 0
        _check_labels_not_padded(padded, starts, "start_positions")
        _check_labels_not_padded(padded, ends, "end_positions")
        start_logits = start_logits.masked_fill(padded, torch.finfo(start_logits.dtype).min)
        end_logits = end_logits.masked_fill(padded, torch.finfo(end_logits.dtype).min)
    start_loss = F.cross_entropy(start_logits, starts, ignore_index=length)
    end_loss = F.cross_entropy(end_logits, ends, ignore_index=length)
    return (start_loss + end_loss) / 2


def _check_labels_not_padded(padded: torch.Tensor, labels: torch.Tensor, name: str) -> None:
    length = padded.size(1)
    inside = labels < length
    rows = torch.arange(labels.numel(), device=labels.device)[inside]
    bad = padded[rows, labels[inside]]
    if bool(bad.any()):
        row = int(rows[bad.nonzero()[0, 0]])
        raise ValueError(f"span_loss: {name}[{row}] = {int(labels[row])} points at a padded position (attention_mask 0)")


class EvidenceQA(nn.Module):
    """Encoder -> dropout -> ``qa_outputs`` (hidden -> 2): start and end logits for every token.

    The encoder is registered under its ``base_model_prefix`` (``bert`` for BERT) and the head is
    called ``qa_outputs``, so the state dict has the keys of ``AutoModelForQuestionAnswering`` for
    the same config and a saved checkpoint loads there with no missing or unexpected weights.
    """

    def __init__(self, encoder: PreTrainedModel, *, dropout: float = 0.1) -> None:
        super().__init__()
        self.base_model_prefix: str = encoder.base_model_prefix
        self.config: PretrainedConfig = encoder.config
        self.qa_architecture = qa_architecture(encoder.config)
        setattr(self, self.base_model_prefix, encoder)
        self.dropout = nn.Dropout(dropout)
        self.qa_outputs = nn.Linear(encoder.config.hidden_size, 2)

    @property
    def encoder(self) -> PreTrainedModel:
        """The base model (the same module as ``self.<base_model_prefix>``)."""
        return getattr(self, self.base_model_prefix)

    @classmethod
    def from_encoder(cls, name_or_path: str | Path, settings: ModelSettings, *, seed: int | None = None) -> EvidenceQA:
        """A pretrained encoder (alias, directory or cached hub id) with a fresh span head.

        The head is drawn from ``seed`` alone (normal with the config's ``initializer_range``, zero
        bias), so the same seed gives the same head whatever else used the global RNG; without a seed
        it uses the global RNG.
        """
        path = resolve_model(name_or_path, settings)
        config = load_config(path)
        qa_architecture(config)  # fail before the (slow) weight loading when no QA class exists
        model = cls(load_encoder(path, settings, config=config), dropout=settings.dropout)
        model.reset_head(seed)
        if settings.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        return model

    @classmethod
    def from_config(cls, config: PretrainedConfig, settings: ModelSettings | None = None) -> EvidenceQA:
        """An untrained model of the architecture in ``config`` (weights to be loaded afterwards)."""
        settings = settings or ModelSettings()
        with quiet_transformers():
            encoder = AutoModel.from_config(config, dtype=torch.float32, **encoder_kwargs(config, settings))
        model = cls(encoder, dropout=settings.dropout)
        if settings.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        return model

    def reset_head(self, seed: int | None = None) -> None:
        """Re-draw the span head: normal(0, initializer_range) weights and zero bias."""
        std = float(getattr(self.config, "initializer_range", 0.02))
        generator = torch.Generator().manual_seed(seed) if seed is not None else None
        weight = torch.empty(self.qa_outputs.weight.shape, dtype=torch.float32)
        weight.normal_(0.0, std, generator=generator)
        with torch.no_grad():
            self.qa_outputs.weight.copy_(weight)
            self.qa_outputs.bias.zero_()

    def gradient_checkpointing_enable(self) -> None:
        """Recompute encoder activations during backward instead of storing them (training mode only)."""
        encoder = self.encoder
        # Non-reentrant checkpointing works with inputs that do not require grad (token ids).
        kwargs = {"use_reentrant": False}
        if hasattr(encoder, "activation_checkpointing_enable"):
            encoder.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            encoder.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        start_positions: torch.Tensor | None = None,
        end_positions: torch.Tensor | None = None,
    ) -> QAOutput:
        """Start/end logits for each token; with both position tensors, also the span loss."""
        inputs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**inputs, return_dict=True).last_hidden_state
        logits = self.qa_outputs(self.dropout(hidden))
        start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            loss = span_loss(start_logits, end_logits, start_positions, end_positions, attention_mask)
        return QAOutput(start_logits=start_logits, end_logits=end_logits, loss=loss)
