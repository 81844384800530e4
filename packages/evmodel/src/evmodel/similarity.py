"""Sentence similarity from mean-pooled encoder embeddings (evdata's semantic alignment uses it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch.nn import functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evmodel.device import cpu_supports_bf16, resolve_device
from evmodel.loading import load_encoder, load_tokenizer, resolve_model
from evmodel.settings import ModelSettings


class EncoderSimilarity:
    """Cosine similarity of mean-pooled, L2-normalised sentence embeddings.

    Implements evdata's similarity Protocol structurally. The encoder is found and loaded through
    the same path as the QA model (``resolve_model``, ``load_tokenizer``, ``load_encoder``), on
    first use, so building a scorer is free when alignment never needs it.

    ``precision="auto"`` runs the encoder under bf16 autocast on a CPU with native bf16 (AVX512-BF16
    or AMX): about 1.6x faster on such a CPU, cosines within 0.002 of fp32; ``"fp32"`` never does.
    The embeddings of the previous call are kept, so a caller that asks about the same queries twice
    in a row (evdata asks about a post's sentences, then about clauses around the best ones) embeds
    them once.
    """

    def __init__(
        self,
        name: str | Path = "minilm",
        settings: ModelSettings | None = None,
        batch_size: int = 64,
        device: str = "cpu",
        precision: str = "auto",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if precision not in ("auto", "fp32"):
            raise ValueError(f"precision: must be 'auto' or 'fp32', got {precision!r}")
        self.name = name
        self.settings = settings or ModelSettings()
        self.batch_size = batch_size
        self.device = resolve_device(device)
        self.bf16 = precision == "auto" and self.device.type == "cpu" and cpu_supports_bf16()
        self._tokenizer: PreTrainedTokenizerBase | None = None
        self._model: PreTrainedModel | None = None
        self._previous: dict[str, torch.Tensor] = {}

    @property
    def cache_key(self) -> str:
        """Identifies the scorer for evdata's alignment cache: the resolved encoder and its weights' size."""
        path = resolve_model(self.name, self.settings)
        weights = path / "model.safetensors"
        return f"{path.resolve()}:{weights.stat().st_size if weights.exists() else 0}:mean-pool-cosine-{'bf16' if self.bf16 else 'fp32'}"

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
        ids = tokenizer(list(texts), truncation=True, max_length=tokenizer.model_max_length)["input_ids"]
        out: list[torch.Tensor | None] = [None] * len(texts)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            for chunk in _length_batches([len(x) for x in ids], self.batch_size):
                batch = tokenizer.pad({"input_ids": [ids[i] for i in chunk]}, return_tensors="pt").to(self.device)
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
        # Each distinct string is encoded once per call, however often it repeats, and not at all
        # when the previous call encoded it.
        unique = list(dict.fromkeys([*queries, *candidates]))
        new = [t for t in unique if t not in self._previous]
        known = {t: self._previous[t] for t in unique if t in self._previous}
        known.update(zip(new, self.embed(new) if new else []))
        self._previous = known
        q = torch.stack([known[t] for t in queries])
        c = torch.stack([known[t] for t in candidates])
        return (q @ c.T).clamp(-1.0, 1.0).tolist()


# A batch grows while padding stays under this share of its real tokens (a post's sentences run from
# 3 to 100+ tokens; one batch per post padded them all to the longest, 1.5x the real work).
PAD_ALLOWANCE = 0.5


def _length_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar token length (shortest first), at most ``batch_size`` each."""
    batches: list[list[int]] = []
    batch: list[int] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        # Sorted ascending, so lengths[i] is the padded length if i joins the batch.
        if batch and (len(batch) == batch_size or lengths[i] * (len(batch) + 1) > (1 + PAD_ALLOWANCE) * (total + lengths[i])):
            batches.append(batch)
            batch, total = [], 0
        batch.append(i)
        total += lengths[i]
    if batch:
        batches.append(batch)
    return batches
