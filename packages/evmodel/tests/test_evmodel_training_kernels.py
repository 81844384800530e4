"""CPU training fast paths: explicit bf16 attention (train.cpu_attention = "bf16") and FastDropout (train.fast_dropout)."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import pytest
import torch
import transformers.integrations.sdpa_attention
from torch import nn
from torch.nn import functional as F
from transformers import AttentionInterface

from evmodel.kernels import (
    ATTENTION_BF16,
    ExplicitAttention,
    FastDropout,
    Fp32FlashAttention,
    _fp32_flash,
    additive_mask,
    register_attention,
    use_cpu_attention,
    use_fast_dropout,
)
from evmodel.loading import load_tokenizer
from evmodel.qa import EvidenceQA
from evmodel.settings import ModelSettings


def _batch(directory: Path) -> dict[str, torch.Tensor]:
    tokenizer = load_tokenizer(directory)
    encoded = tokenizer(
        ["what shows a sleep problem?", "is there hopelessness?", "any energy loss?"],
        ["I could not sleep at night for weeks, insomnia again.", "I feel hopeless.", "tired every day, no energy at all"],
        padding=True,
        return_tensors="pt",
    )
    assert (encoded["attention_mask"] == 0).any()  # rows of different lengths: padding is masked
    return {**encoded, "start_positions": torch.tensor([9, 7, 3]), "end_positions": torch.tensor([12, 8, 5])}


def _padding_mask(batch: int, length: int, padded: dict[int, int]) -> torch.Tensor:
    """A [batch, 1, 1, length] bool key mask: row ``r`` has its last ``padded[r]`` keys masked."""
    mask = torch.ones(batch, 1, 1, length, dtype=torch.bool)
    for row, count in padded.items():
        mask[row, ..., length - count :] = False
    return mask


# --- ExplicitAttention --------------------------------------------------------------------------------------


@pytest.mark.parametrize("masked", [False, True])
def test_explicit_attention_gradients_are_exact_in_float64(masked: bool) -> None:
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(3))
    bias = additive_mask(_padding_mask(2, 5, {1: 2}), torch.float64) if masked else None
    assert torch.autograd.gradcheck(lambda q, k, v: ExplicitAttention.apply(q, k, v, bias, 0.7), (q, k, v))
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=0.7)
    assert torch.allclose(ExplicitAttention.apply(q, k, v, bias, 0.7), expected)


def test_explicit_attention_matches_sdpa_in_bf16_with_padding() -> None:
    """Output and the gradients of q, k, v agree with sdpa to bf16 precision: within 2% of each one's largest value.

    Both are compared with sdpa in float64 on the same bf16 inputs too: each is about 0.5% off there, and
    the explicit one is within the same 2%. Masked keys get exactly zero gradients.
    """
    generator = torch.Generator().manual_seed(0)
    shape = (3, 4, 40, 16)
    q, k, v, grad = (torch.randn(shape, generator=generator).to(torch.bfloat16) for _ in range(4))
    mask = _padding_mask(3, 40, {1: 10, 2: 25})

    def run(attention, dtype):
        inputs = [t.detach().to(dtype).requires_grad_() for t in (q, k, v)]
        out = attention(*inputs)
        out.backward(grad.to(dtype))
        return [out.detach().double()] + [t.grad.double() for t in inputs]

    ours = run(lambda q, k, v: ExplicitAttention.apply(q, k, v, additive_mask(mask, q.dtype), 0.25), torch.bfloat16)
    sdpa = run(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.25), torch.bfloat16)
    exact = run(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=0.25), torch.float64)
    for name, a, b, c in zip(("output", "query", "key", "value"), ours, sdpa, exact):
        scale = float(c.abs().max())
        assert (a - b).abs().max() <= 0.02 * scale, name
        assert (a - c).abs().max() <= 0.02 * scale, name
    assert ours[2][1, :, -10:].abs().max() == 0 and ours[3][2, :, -25:].abs().max() == 0


def test_fp32_flash_attention_matches_sdpa_on_fp32_copies_and_keeps_no_fp32_copies() -> None:
    """Output and gradients as sdpa on fp32 copies, within bf16 rounding; what it keeps for backward is bf16, bar one fp32 value per row."""
    generator = torch.Generator().manual_seed(0)
    shape = (3, 4, 40, 16)
    q, k, v, grad = (torch.randn(shape, generator=generator).to(torch.bfloat16) for _ in range(4))
    mask = _padding_mask(3, 40, {1: 10, 2: 25})
    saved: list[torch.Tensor] = []
    ours = [t.clone().requires_grad_() for t in (q, k, v)]
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        output = Fp32FlashAttention.apply(*ours, additive_mask(mask, torch.float32), 0.25)
    output.backward(grad)
    copies = [t.float().requires_grad_() for t in (q, k, v)]
    reference = F.scaled_dot_product_attention(*copies, attn_mask=mask, scale=0.25)
    reference.backward(grad.float())
    assert output.dtype == torch.bfloat16 and all(t.grad.dtype == torch.bfloat16 for t in ours)
    pairs = [(output, reference)] + [(a.grad, b.grad) for a, b in zip(ours, copies)]
    for name, (a, b) in zip(("output", "query", "key", "value"), pairs):
        assert (a.detach().float() - b.detach()).abs().max() <= 0.01 * float(b.detach().abs().max()), name
    assert ours[1].grad[1, :, -10:].abs().max() == 0 and ours[2].grad[2, :, -25:].abs().max() == 0
    full = [t for t in saved if t.dim() == 4 and t.shape[-1] == shape[-1]]
    assert len(full) == 4 and all(t.dtype == torch.bfloat16 for t in full)  # query, key, value, output
    assert sum(t.numel() * t.element_size() for t in saved if t.dtype == torch.float32) <= 3 * 4 * 40 * 4 + 3 * 40 * 4


def test_fp32_flash_output_in_transformers_layout_is_the_tensor_kept_for_backward() -> None:
    """The [batch, tokens, heads, head_dim] output the next layer reads shares its storage with the one kept for backward."""
    q, k, v = (torch.randn(2, 3, 20, 8).to(torch.bfloat16).requires_grad_() for _ in range(3))
    saved: list[torch.Tensor] = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        output, weights = _fp32_flash(q, k, v, None, None)
    assert weights is None and output.shape == (2, 20, 3, 8) and output.is_contiguous()
    kept = [t for t in saved if t.shape == (2, 3, 20, 8) and t.untyped_storage().data_ptr() == output.untyped_storage().data_ptr()]
    assert len(kept) == 1
    reference = F.scaled_dot_product_attention(q.detach().float(), k.detach().float(), v.detach().float()).transpose(1, 2)
    assert (output.detach().float() - reference).abs().max() <= 0.01 * float(reference.abs().max())


def test_float_masks_are_clamped_to_finite_bias() -> None:
    """fp32's minimum would round to -inf in bf16; the bias stays finite and gives what the bool mask gives."""
    mask = _padding_mask(2, 6, {1: 3})
    float_mask = torch.zeros(mask.shape).masked_fill(~mask, torch.finfo(torch.float32).min)
    bias = additive_mask(float_mask, torch.bfloat16)
    assert bias.dtype == torch.bfloat16 and torch.isfinite(bias).all()
    assert torch.equal(bias, additive_mask(mask, torch.bfloat16))
    assert additive_mask(None, torch.bfloat16) is None


def _grads(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch)
    out.loss.backward()
    return out.loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_bf16_attention_trains_like_sdpa(tiny_bert: Path, monkeypatch) -> None:
    """A tiny model under bf16 autocast: loss and every parameter gradient as with plain sdpa, to bf16 precision."""
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.0), seed=0).eval()
    batch = _batch(tiny_bert)
    sdpa_loss, sdpa_grads = _grads(model, batch)
    assert use_cpu_attention(model, "bf16")
    assert model.encoder.config._attn_implementation == ATTENTION_BF16
    calls = []
    apply = ExplicitAttention.apply
    monkeypatch.setattr(ExplicitAttention, "apply", lambda *args: calls.append(1) or apply(*args))
    loss, grads = _grads(model, batch)
    assert len(calls) == model.config.num_hidden_layers  # the explicit path ran, once per layer
    assert torch.allclose(loss, sdpa_loss, rtol=1e-2)
    assert grads.keys() == sdpa_grads.keys()
    for name, grad in grads.items():
        assert torch.isfinite(grad).all(), name
        assert torch.allclose(grad, sdpa_grads[name], rtol=0.1, atol=2e-2), name


@pytest.fixture
def attention_calls(monkeypatch) -> dict[str, int]:
    """Counts of the calls ``ATTENTION_BF16`` makes to transformers' sdpa, ``ExplicitAttention`` and ``Fp32FlashAttention``."""
    calls = {"sdpa": 0, "explicit": 0, "flash32": 0}
    sdpa, apply, flash = transformers.integrations.sdpa_attention.sdpa_attention_forward, ExplicitAttention.apply, Fp32FlashAttention.apply

    def counting_sdpa(*args, **kwargs):
        calls["sdpa"] += 1
        return sdpa(*args, **kwargs)

    def counting_apply(*args):
        calls["explicit"] += 1
        return apply(*args)

    monkeypatch.setattr(transformers.integrations.sdpa_attention, "sdpa_attention_forward", counting_sdpa)

    def counting_flash(*args):
        calls["flash32"] += 1
        return flash(*args)

    monkeypatch.setattr(ExplicitAttention, "apply", counting_apply)
    monkeypatch.setattr(Fp32FlashAttention, "apply", counting_flash)
    return calls


class _Attention(nn.Module):
    is_causal = False


@pytest.mark.parametrize(
    "case",
    ["training", "dropout", "fp32", "no_grad", "no_requires_grad", "causal", "position_bias", "output_attentions", "int_mask"],
)
def test_bf16_attention_takes_its_path_only_when_training_in_bf16(case: str, attention_calls: dict[str, int]) -> None:
    """Only bf16 with gradients, no dropout and nothing sdpa-specific goes the explicit way; the rest is transformers' sdpa."""
    register_attention()
    attention = AttentionInterface()[ATTENTION_BF16]
    generator = torch.Generator().manual_seed(0)
    dtype = torch.float32 if case == "fp32" else torch.bfloat16
    q, k, v = (torch.randn(2, 2, 6, 4, generator=generator).to(dtype).requires_grad_(case != "no_requires_grad") for _ in range(3))
    mask = _padding_mask(2, 6, {1: 2}).expand(2, 1, 6, 6)
    module = _Attention()
    options = {"dropout": 0.1 if case == "dropout" else 0.0, "scaling": 0.5}
    if case == "causal":
        mask, options["is_causal"] = None, True
    if case == "position_bias":
        options["position_bias"] = torch.zeros(1, 2, 6, 6, dtype=dtype)
    if case == "output_attentions":
        options["output_attentions"] = True
    if case == "int_mask":
        mask = mask.long()
    with torch.set_grad_enabled(case != "no_grad"):
        if case == "int_mask":  # not a mask sdpa takes either: what matters is that the explicit path leaves it alone
            with pytest.raises(RuntimeError):
                attention(module, q, k, v, mask, **options)
        else:
            output, weights = attention(module, q, k, v, mask, **options)
            assert output.shape == (2, 6, 2, 4) and output.dtype == dtype and weights is None
    explicit = case == "training"
    assert attention_calls == {"sdpa": 0 if explicit else 1, "explicit": 1 if explicit else 0, "flash32": 0}
    if explicit:
        reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=0.5).transpose(1, 2)
        assert torch.allclose(output.float(), reference, atol=2e-2)


def test_bf16_attention_hands_long_rows_to_fp32_flash_attention(attention_calls: dict[str, int], monkeypatch) -> None:
    """Rows longer than EXPLICIT_MAX_TOKENS run as flash attention on fp32 copies (faster there, and no stored probabilities)."""
    import evmodel.kernels as kernels

    register_attention()
    attention = AttentionInterface()[ATTENTION_BF16]
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 6, 4, generator=generator).bfloat16().requires_grad_() for _ in range(3))
    mask = _padding_mask(2, 6, {1: 2}).expand(2, 1, 6, 6)
    monkeypatch.setattr(kernels, "EXPLICIT_MAX_TOKENS", 5)
    output, _ = attention(_Attention(), q, k, v, mask, dropout=0.0, scaling=0.5)
    assert attention_calls == {"sdpa": 0, "explicit": 0, "flash32": 1}
    reference = F.scaled_dot_product_attention(q.float(), k.float(), v.float(), attn_mask=mask, scale=0.5).transpose(1, 2)
    assert output.dtype == torch.bfloat16 and torch.equal(output, reference.to(torch.bfloat16))
    monkeypatch.setattr(kernels, "EXPLICIT_MAX_TOKENS", 6)
    attention(_Attention(), q, k, v, mask, dropout=0.0, scaling=0.5)
    assert attention_calls == {"sdpa": 0, "explicit": 1, "flash32": 1}


# --- FastDropout --------------------------------------------------------------------------------------------


def _within(observed: float, expected: float, count: int, sigmas: float = 5.0) -> bool:
    """``observed`` mean of ``count`` Bernoulli(``expected``) draws lies within ``sigmas`` standard errors of it."""
    return abs(observed - expected) <= sigmas * math.sqrt(expected * (1 - expected) / count)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_fast_dropout_drops_at_the_rate_asked_for_in_every_lane(p: float) -> None:
    """Each of the four 16-bit lanes of a 64-bit draw drops at round(p * 65536) / 65536 (a lane with a constant top bit would not)."""
    torch.manual_seed(0)
    n = 1 << 20
    dropped = FastDropout(p).train()(torch.ones(n)) == 0
    p_eff = round(p * 65536) / 65536
    assert abs(p_eff - p) <= 2**-17
    assert _within(float(dropped.float().mean()), p_eff, n, sigmas=4)
    for lane in range(4):
        assert _within(float(dropped[lane::4].float().mean()), p_eff, n // 4), lane


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fast_dropout_keeps_the_expected_value(dtype: torch.dtype) -> None:
    """Kept elements are scaled by exactly 1 / (1 - p_eff), so E[output] = input."""
    torch.manual_seed(1)
    n, p = 1 << 20, 0.2
    p_eff = round(p * 65536) / 65536
    x = torch.rand(n).add_(0.5).to(dtype)
    y = FastDropout(p).train()(x)
    assert y.dtype == dtype and y.shape == x.shape
    kept = y != 0
    assert torch.equal(y[kept], (x[kept] * (1 / (1 - p_eff))).to(dtype))
    ones = FastDropout(p).train()(torch.ones(n))
    # The mean of n draws of (0 or 1/(1-p)) has standard error sqrt(p / (1 - p) / n).
    assert abs(float(ones.mean()) - 1) <= 5 * math.sqrt(p_eff / (1 - p_eff) / n)


def test_fast_dropout_is_reproducible_from_the_seed() -> None:
    drop = FastDropout(0.1).train()
    x = torch.ones(4099)  # not a multiple of four lanes
    masks = {}
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        masks.setdefault(seed, []).append(drop(x) != 0)
    assert torch.equal(masks[0][0], masks[0][1])
    assert not torch.equal(masks[0][0], masks[1][0])
    # A resumed run restores the generator's state and continues the same stream.
    state = torch.get_rng_state()
    first = drop(x)
    torch.set_rng_state(state)
    assert torch.equal(drop(x), first)


def test_fast_dropout_backward_applies_the_same_mask_and_scale() -> None:
    torch.manual_seed(2)
    p = 0.3
    scale = 1 / (1 - round(p * 65536) / 65536)
    x = torch.ones(3, 7, 5, requires_grad=True)
    y = FastDropout(p).train()(x)
    grad = torch.randn(x.shape)
    y.backward(grad)
    assert torch.equal(x.grad, grad * (y != 0) * scale)

    def seeded(t: torch.Tensor) -> torch.Tensor:
        torch.manual_seed(3)  # one mask for every evaluation gradcheck makes
        return FastDropout(p).train()(t)

    assert torch.autograd.gradcheck(seeded, (torch.randn(4, 9, dtype=torch.float64, requires_grad=True),))


def test_fast_dropout_is_the_identity_in_eval_mode_or_at_zero() -> None:
    x = torch.randn(5, 8)
    assert FastDropout(0.5).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    assert FastDropout(1e-6).train()(x) is x  # rounds to p_eff = 0


def test_fast_dropout_leaves_other_devices_to_f_dropout(monkeypatch) -> None:
    calls = []
    dropout = F.dropout
    monkeypatch.setattr(F, "dropout", lambda *args: calls.append(args[1:]) or dropout(*args))
    out = FastDropout(0.25).train()(torch.ones(3, 4, device="meta"))
    assert out.device.type == "meta" and calls == [(0.25, True, False)]
    FastDropout(0.25).train()(torch.ones(3, 4))
    assert len(calls) == 1  # the CPU path does not call it


def test_use_fast_dropout_swaps_every_dropout_and_keeps_the_state_dict(tiny_bert: Path) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.1), seed=0).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dropouts = [m for m in model.modules() if type(m) is nn.Dropout and m.p > 0]
    swapped = use_fast_dropout(model)
    # Embeddings, per layer attention probabilities + attention output + feed-forward output, the span head.
    assert swapped == len(dropouts) == 1 + 3 * model.config.num_hidden_layers + 1
    assert not any(type(m) is nn.Dropout for m in model.modules())
    assert isinstance(model.dropout, FastDropout) and model.dropout.p == 0.1 and model.dropout.training
    after = model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], v) for k, v in before.items())
    assert use_fast_dropout(model) == 0  # nothing left to swap


def test_a_tiny_model_trains_with_fast_dropout(tiny_bert: Path) -> None:
    torch.manual_seed(0)
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.1), seed=0).train()
    assert use_fast_dropout(model) > 0
    assert use_cpu_attention(model, "bf16")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    batch = _batch(tiny_bert)
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert all(math.isfinite(loss) for loss in losses)
    # About 3.5 falling to 1.6 over the 12 steps (seeded); the bound leaves room for other masks.
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], losses


def test_gradient_checkpointing_replays_the_same_masks(tiny_bert: Path) -> None:
    """Recomputation restores the CPU generator's state, so the recomputed dropouts match the forward's: same gradients."""
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.1), seed=0).train()
    use_fast_dropout(model)
    checkpointed = copy.deepcopy(model)
    checkpointed.gradient_checkpointing_enable()
    batch = _batch(tiny_bert)
    grads = []
    for m in (model, checkpointed):
        torch.manual_seed(5)
        m(**batch).loss.backward()
        grads.append({n: p.grad for n, p in m.named_parameters()})
    assert all(torch.allclose(grads[0][n], grads[1][n], atol=1e-6) for n in grads[0])


# --- GELU recompute (train.gelu_recompute) -----------------------------------------------------------------------


def _saved_bytes(model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[int, torch.Tensor, dict[str, torch.Tensor]]:
    """Bytes autograd keeps for backward (distinct storages, parameters excluded), the loss and the gradients, under bf16 autocast."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def keep(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            storages[storage.data_ptr()] = storage.nbytes()
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model(**batch).loss
    loss.backward()
    return sum(storages.values()), loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gelu_recompute_keeps_one_activation_less_per_layer_and_trains_the_same(tiny_bert: Path) -> None:
    """Same loss, gradients, state dict and inference logits; one [tokens, intermediate] bf16 tensor less kept per layer."""
    from evmodel.kernels import GeluInputLinear, use_gelu_recompute

    # Eval mode: no dropout, so both see the same masks; gradients are on all the same.
    plain = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.0), seed=0).eval()
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(dropout=0.0), seed=0).eval()
    batch = _batch(tiny_bert)
    plain_bytes, plain_loss, plain_grads = _saved_bytes(plain, batch)
    layers = model.config.num_hidden_layers
    assert use_gelu_recompute(model) == layers
    assert sum(isinstance(m, GeluInputLinear) for m in model.modules()) == layers
    assert {k: v for k, v in model.state_dict().items()}.keys() == plain.state_dict().keys()
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in model.state_dict().items())
    ours_bytes, loss, grads = _saved_bytes(model, batch)
    tokens = batch["input_ids"].numel()
    assert plain_bytes - ours_bytes == layers * tokens * model.config.intermediate_size * 2
    assert torch.allclose(loss, plain_loss, rtol=1e-3)
    assert grads.keys() == plain_grads.keys()
    for name, grad in grads.items():
        assert torch.allclose(grad, plain_grads[name], rtol=1e-2, atol=1e-3), name
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}
    with torch.no_grad():
        assert torch.equal(model(**inputs).start_logits, plain(**inputs).start_logits)
    # In fp32 (no autocast) too.
    plain.zero_grad(set_to_none=True)
    model.zero_grad(set_to_none=True)
    plain(**batch).loss.backward()
    model(**batch).loss.backward()
    for (name, a), b in zip(model.named_parameters(), plain.parameters()):
        assert torch.allclose(a.grad, b.grad, rtol=1e-4, atol=1e-6), name


def test_gelu_recompute_leaves_other_blocks_alone() -> None:
    """Only an exact-GELU intermediate followed by an nn.Linear output is moved; a tanh-approximate GELU is not."""
    from evmodel.kernels import use_gelu_recompute

    class Block(nn.Module):
        def __init__(self, act: nn.Module) -> None:
            super().__init__()
            self.intermediate = nn.Module()
            self.intermediate.dense, self.intermediate.intermediate_act_fn = nn.Linear(4, 8), act
            self.output = nn.Module()
            self.output.dense = nn.Linear(8, 4)

    assert use_gelu_recompute(nn.Sequential(Block(nn.GELU(approximate="tanh")), nn.Linear(4, 4))) == 0
    assert use_gelu_recompute(nn.Sequential(Block(nn.GELU()))) == 1
