"""Sentence similarity from mean-pooled encoder embeddings (evdata's semantic alignment uses it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evmodel.device import resolve_device
from evmodel.loading import load_encoder, load_tokenizer, resolve_model
from evmodel.settings import ModelSettings


class EncoderSimilarity:
    """Cosine similarity of mean-pooled, L2-normalised sentence embeddings.

    Implements evdata's similarity Protocol structurally. The encoder is found and loaded through
    the same path as the QA model (``resolve_model``, ``load_tokenizer``, ``load_encoder``), on
    first use, so building a scorer is free when alignment never needs it.
    """

    def __init__(
        self, name: str | Path = "minilm", settings: ModelSettings | None = None, batch_size: int = 64, device: str = "cpu"
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.name = name
        self.settings = settings or ModelSettings()
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._model: PreTrainedModel | None = None

    @property
    def cache_key(self) -> str:
        """Identifies the scorer for evdata's alignment cache: the resolved encoder and its weights' size."""
        path = resolve_model(self.name, self.settings)
        weights = path / "model.safetensors"
        return f"{path.resolve()}:{weights.stat().st_size if weights.exists() else 0}:mean-pool-cosine-fp32"

    def _load(self) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
        if self._tokenizer is None or self._model is None:
            path = resolve_model(self.name, self.settings)
            self._tokenizer = load_tokenizer(path)
            self._model = load_encoder(path, self.settings).to(self.device).eval()
        return self._tokenizer, self._model

    def embed(self, texts: Sequence[str]) -> torch.Tensor:
        """Unit-length embeddings (len(texts) x hidden, float32 on the CPU), one per text."""
        if not texts:
            return torch.empty(0, 0)
        tokenizer, model = self._load()
        # Batches of similar length pad little; results go back to the callers' order.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out: list[torch.Tensor | None] = [None] * len(texts)
        with torch.inference_mode():
            for begin in range(0, len(order), self.batch_size):
                chunk = order[begin : begin + self.batch_size]
                batch = tokenizer(
                    [texts[i] for i in chunk], padding=True, truncation=True, max_length=tokenizer.model_max_length, return_tensors="pt"
                ).to(self.device)
                hidden = model(**batch, return_dict=True).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                for i, vector in zip(chunk, F.normalize(pooled, p=2, dim=-1).cpu()):
                    out[i] = vector
        return torch.stack([v for v in out if v is not None])

    def similarity(self, queries: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
        """Cosine similarities, one row per query and one column per candidate."""
        if not queries or not candidates:
            return [[] for _ in queries]
        # Each distinct string is encoded once per call, however often it repeats.
        unique = list(dict.fromkeys([*queries, *candidates]))
        index = {text: i for i, text in enumerate(unique)}
        vectors = self.embed(unique)
        q = vectors[[index[t] for t in queries]]
        c = vectors[[index[t] for t in candidates]]
        return (q @ c.T).clamp(-1.0, 1.0).tolist()
