"""CPU fast paths compute what the plain model computes: fp32 attention under bf16 autocast, oneDNN-fused linears for inference."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from evmodel.checkpoint import save_checkpoint
from evmodel.device import cpu_supports_bf16
from evmodel.kernels import (
    ATTENTION_FP32,
    Fusion,
    OneDNNLinear,
    fuse_linears_for_cpu_inference,
    use_fp32_attention,
)
from evmodel.loading import load_tokenizer
from evmodel.qa import EvidenceQA
from evmodel.settings import ModelSettings
from evmodel.testing import make_tiny_bert


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


# --- inference: oneDNN-fused linears ----------------------------------------------------------------------

needs_bf16_onednn = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU's oneDNN has no native bf16")


def _bf16_model(directory: Path, **settings: object) -> EvidenceQA:
    return EvidenceQA.from_encoder(directory, ModelSettings(**settings), seed=0).eval().to(torch.bfloat16)


@needs_bf16_onednn
@settings(max_examples=25, deadline=None)
@given(
    rows=st.integers(1, 40),
    features=st.tuples(st.integers(1, 96), st.integers(1, 96)),
    activation=st.sampled_from(["none", "gelu"]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_onednn_linear_computes_the_linear_layer(rows: int, features: tuple[int, int], activation: str, bias: bool, seed: int) -> None:
    """Any shape, with or without bias: the packed layer is linear (+ exact GELU) to bf16 precision, for 2-D and 3-D inputs."""
    generator = torch.Generator().manual_seed(seed)
    linear = nn.Linear(*features, bias=bias).to(torch.bfloat16)
    with torch.no_grad():
        linear.weight.copy_(torch.randn(linear.weight.shape, generator=generator))
        if bias:
            linear.bias.copy_(torch.randn(linear.bias.shape, generator=generator))
    x = torch.randn(rows, features[0], generator=generator).to(torch.bfloat16)
    reference = F.linear(x.float(), linear.weight.float(), None if linear.bias is None else linear.bias.float())
    reference = F.gelu(reference) if activation == "gelu" else reference
    fused = OneDNNLinear(linear, activation)
    with torch.inference_mode():
        out = fused(x)
        out_3d = fused(x.reshape(1, rows, -1))
    assert out.dtype == torch.bfloat16 and out.shape == (rows, features[1])
    # bf16 keeps 8 significant bits; inputs and weights are bf16 already, so only the output is rounded.
    assert torch.allclose(out.float(), reference, rtol=2**-7, atol=1e-2)
    assert torch.equal(out_3d.reshape(rows, -1), out)


@needs_bf16_onednn
def test_fused_model_matches_the_bf16_model(tiny_bert: Path) -> None:
    """Every linear is swapped, each feed-forward GELU fused; logits agree with the unfused bf16 model to bf16 precision."""
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0).eval()
    with torch.no_grad():
        # A trained-looking head: the fresh one's 0.02-scale weights would make every logit ~0.
        model.qa_outputs.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    batch = {k: v for k, v in _batch(tiny_bert).items() if "positions" not in k}
    with torch.inference_mode():
        exact = model(**batch).start_logits
    unfused = model.to(torch.bfloat16)
    fused = copy.deepcopy(unfused)
    report = fuse_linears_for_cpu_inference(fused)
    layers = unfused.config.num_hidden_layers
    # Per layer: query, key, value, attention output, intermediate, output; plus the span head.
    assert report == Fusion(linears=6 * layers + 1, gelus=layers)
    assert not any(type(m) is nn.Linear for m in fused.modules())
    assert sum(isinstance(m, OneDNNLinear) and m.activation == "gelu" for m in fused.modules()) == layers
    with torch.inference_mode():
        a = unfused(**batch).start_logits.float()
        b = fused(**batch).start_logits.float()
    scale = exact.abs().max()
    assert scale > 1
    # Fusing changes only where bf16 rounding happens: both are as close to fp32 as bf16 allows.
    assert (b - exact).abs().max() <= 0.05 * scale
    assert (b - a).abs().max() <= 0.05 * scale
    assert torch.equal(b.argmax(-1), exact.argmax(-1))


def test_fusion_leaves_fp32_and_trainable_models_alone(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(), seed=0)
    assert fuse_linears_for_cpu_inference(model) == Fusion(0, 0)
    assert sum(type(m) is nn.Linear for m in model.modules()) == 6 * model.config.num_hidden_layers + 1


@needs_bf16_onednn
def test_only_exact_gelu_is_fused(tmp_path: Path) -> None:
    """A tanh-approximated GELU (``gelu_new``) is not the oneDNN erf GELU: its linear is packed, the activation stays."""
    from transformers import AutoConfig

    directory = make_tiny_bert(tmp_path / "tanh")
    config = AutoConfig.from_pretrained(directory)
    config.hidden_act = "gelu_new"
    config.save_pretrained(directory)
    model = _bf16_model(directory)
    report = fuse_linears_for_cpu_inference(model)
    assert report.gelus == 0 and report.linears == 6 * model.config.num_hidden_layers + 1
    assert all(type(layer.intermediate.intermediate_act_fn) is not nn.Identity for layer in model.encoder.encoder.layer)


@needs_bf16_onednn
def test_packed_weights_refuse_training(tiny_bert: Path) -> None:
    linear = OneDNNLinear(nn.Linear(4, 3).to(torch.bfloat16))
    with pytest.raises(RuntimeError, match="for inference"):
        linear(torch.ones(2, 4, dtype=torch.bfloat16, requires_grad=True))


@pytest.mark.parametrize("autocast", [False, True])
def test_fp32_attention_ignores_padding(tiny_bert: Path, autocast: bool) -> None:
    """A window's logits do not depend on how much padding its batch adds, while training (grad on) and in inference."""
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.0), seed=0).eval()
    with torch.no_grad():
        model.qa_outputs.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    assert use_fp32_attention(model)
    tokenizer = load_tokenizer(tiny_bert)
    alone = tokenizer(["is there hopelessness?"], ["I feel hopeless."], return_tensors="pt")
    padded = tokenizer(["is there hopelessness?"], ["I feel hopeless."], padding="max_length", max_length=64, return_tensors="pt")
    n = alone["input_ids"].shape[1]
    assert padded["attention_mask"].sum() == n < 64
    for grad in (True, False):
        with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            a = model(**alone).start_logits.detach().float()
            b = model(**padded).start_logits.detach().float()[:, :n]
        # Attending to the padding moves this tiny model's logits by ~0.7% of their range.
        tolerance = 2e-3 * float(a.abs().max()) if autocast else 1e-4
        assert torch.allclose(a, b, atol=tolerance), (grad, float((a - b).abs().max()), float(a.abs().max()))
