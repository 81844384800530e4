"""CPU fast path: fp32 attention under bf16 autocast computes what bf16 attention computes, more precisely."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from evmodel.checkpoint import save_checkpoint
from evmodel.kernels import ATTENTION_FP32, use_fp32_attention
from evmodel.loading import load_tokenizer
from evmodel.qa import EvidenceQA
from evmodel.settings import ModelSettings


def _batch(directory: Path) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(directory)
    encoded = tokenizer(
        ["what shows a sleep problem?", "is there hopelessness?"],
        ["I could not sleep at night for weeks, insomnia again.", "I feel hopeless."],
        padding=True,
        return_tensors="pt",
    )
    return {**encoded, "start_positions": torch.tensor([9, 7]), "end_positions": torch.tensor([12, 8])}


def _grads(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch)
    out.loss.backward()
    return out.start_logits.detach().float(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_fp32_attention_agrees_with_bf16_attention(tiny_bert: Path) -> None:
    """Under bf16 autocast the switched model's gradients match bf16 attention's to bf16 precision; inference is unchanged."""
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.0), seed=0).eval()
    batch = _batch(tiny_bert)
    _, bf16_grads = _grads(model, batch)
    assert use_fp32_attention(model)
    assert model.encoder.config._attn_implementation == ATTENTION_FP32
    logits, fp32_grads = _grads(model, batch)
    assert all(torch.isfinite(g).all() for g in fp32_grads.values())
    assert fp32_grads.keys() == bf16_grads.keys()
    # bf16 and fp32 attention agree to bf16 precision, and the switched model is still a bf16-autocast model.
    for name, grad in fp32_grads.items():
        assert torch.allclose(grad, bf16_grads[name], rtol=0.1, atol=2e-2), name
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        inference = model(**{k: v for k, v in batch.items() if "positions" not in k}).start_logits.float()
    assert torch.allclose(inference, logits, atol=0.05)


def test_fp32_attention_is_not_saved_in_checkpoints(tiny_bert: Path, tmp_path: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0)
    use_fp32_attention(model)
    save_checkpoint(model, load_tokenizer(tiny_bert), tmp_path / "ckpt", {"note": "test"})
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert ATTENTION_FP32 not in json.dumps(config)


def test_eager_attention_is_left_alone(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(attn_implementation="eager"), seed=0)
    assert not use_fp32_attention(model)
    assert model.encoder.config._attn_implementation == "eager"
