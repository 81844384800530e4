"""Window-by-window bf16 inference attention (``train.eval_cpu_attention``): exact in float64, checked at set-up."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import transformers
import transformers.masking_utils
from hypothesis import given, settings
from hypothesis import strategies as st

from evmodel import inference_attention
from evmodel.inference_attention import ATTENTION_INFERENCE, padding_lengths, use_inference_attention, window_attention
from evmodel.kernels import ATTENTION_FP32, ATTENTION_TOLERANCE, FastPathWarning, use_fp32_attention
from evmodel.qa import EvidenceQA
from evmodel.selfcheck import probe_batch
from evmodel.settings import ModelSettings


def _right_padding(lengths: list[int], tokens: int) -> torch.Tensor:
    keys = torch.arange(tokens)[None, :] < torch.tensor(lengths)[:, None]
    return keys[:, None, None, :].expand(len(lengths), 1, tokens, tokens)


def _inputs(draw_seed: int, batch: int, heads: int, tokens: int, head_dim: int, dtype: torch.dtype) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(draw_seed)
    # transformers' layout: [batch, tokens, heads, head_dim] transposed to [batch, heads, tokens, head_dim].
    return [torch.randn(batch, tokens, heads, head_dim, generator=generator, dtype=dtype).transpose(1, 2) for _ in range(3)]


def _sdpa(query, key, value, mask, scale):
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=scale).transpose(1, 2)


shapes = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 12), st.sampled_from([1, 4, 8]))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, data=st.data(), seed=st.integers(0, 2**16), value_dim=st.sampled_from([1, 4, 8]))
def test_equals_sdpa_in_float64_for_any_right_padding(shape, data, seed, value_dim) -> None:
    batch, heads, tokens, head_dim = shape
    lengths = data.draw(st.lists(st.integers(1, tokens), min_size=batch, max_size=batch))
    query, key, _ = _inputs(seed, batch, heads, tokens, head_dim, torch.float64)
    (value,) = _inputs(seed + 1, batch, heads, tokens, value_dim, torch.float64)[:1]
    mask = _right_padding(lengths, tokens)
    assert padding_lengths(mask, batch, tokens) == lengths
    ours = window_attention(query, key, value, mask, 0.3)
    assert ours.shape == (batch, tokens, heads, value_dim)
    torch.testing.assert_close(ours, _sdpa(query, key, value, mask, 0.3), rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**16), per_head=st.booleans())
def test_equals_sdpa_in_float64_for_any_other_mask(shape, seed, per_head) -> None:
    """Masks that are not right padding (any keys, per query or per head) are added to the scores instead."""
    batch, heads, tokens, head_dim = shape
    query, key, value = _inputs(seed, batch, heads, tokens, head_dim, torch.float64)
    generator = torch.Generator().manual_seed(seed + 1)
    mask = torch.rand(batch, heads if per_head else 1, tokens, tokens, generator=generator) < 0.6
    mask[..., 0] = True  # every query attends to at least one key
    additive = torch.zeros(mask.shape, dtype=torch.float64).masked_fill(~mask, float("-inf"))
    expected = _sdpa(query, key, value, mask, 0.5)
    for given_mask in (mask, additive):
        torch.testing.assert_close(window_attention(query, key, value, given_mask, 0.5), expected, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(window_attention(query, key, value, None, 0.5), _sdpa(query, key, value, None, 0.5))


def test_padding_lengths_only_recognises_right_padding() -> None:
    mask = _right_padding([3, 5], 5)
    assert padding_lengths(mask, 2, 5) == [3, 5]
    assert padding_lengths(mask[:1], 2, 5) == [3, 3]  # one mask row broadcast over the batch
    assert padding_lengths(None, 2, 5) == [5, 5]
    assert padding_lengths(mask.flip(-1), 2, 5) is None  # left padding
    assert padding_lengths(mask.float(), 2, 5) is None  # an additive mask
    assert padding_lengths(_right_padding([0, 5], 5), 2, 5) is None  # a row with no key
    per_query = mask.clone()
    per_query[1, 0, 2, 4] = False
    assert padding_lengths(per_query, 2, 5) is None
    assert padding_lengths(mask.expand(2, 3, 5, 5), 2, 5) is None  # per-head


def test_bf16_stays_within_bf16_rounding_of_fp32_sdpa() -> None:
    query, key, value = _inputs(0, 4, 12, 96, 32, torch.float32)
    mask = _right_padding([96, 70, 5, 40], 96)
    expected = _sdpa(query, key, value, mask, 32**-0.5)
    ours = window_attention(*(t.bfloat16() for t in (query, key, value)), mask, 32**-0.5).float()
    assert (ours - expected).abs().max() < 0.02 * expected.abs().max()


# --- set-up and self-check ----------------------------------------------------------------------------------


def _model(directory: Path | str) -> EvidenceQA:
    model = EvidenceQA.from_encoder(directory, ModelSettings(dropout=0.0), seed=0)
    with torch.no_grad():
        model.qa_outputs.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return model


def _bf16_copy(model: EvidenceQA) -> EvidenceQA:
    return copy.deepcopy(model).to(torch.bfloat16).eval()


def _logits(model: EvidenceQA) -> torch.Tensor:
    ids, mask = probe_batch(model.config)
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask)
    return torch.stack([out.start_logits, out.end_logits]).float()[:, mask.bool()]


@pytest.fixture
def no_fast_path_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathWarning)
        yield


def test_healthy_attention_switches_the_copy_only(tiny_bert: Path, no_fast_path_warning) -> None:
    model = _model(tiny_bert)
    plain = _bf16_copy(model)
    fast = _bf16_copy(model)
    check = use_inference_attention(fast)
    assert check and check.setting == "train.eval_cpu_attention" and check.error < ATTENTION_TOLERANCE / 5
    assert fast.encoder.config._attn_implementation == ATTENTION_INFERENCE
    assert model.encoder.config._attn_implementation == plain.encoder.config._attn_implementation == "sdpa"
    expected = _logits(plain)
    assert (_logits(fast) - expected).abs().max() < 0.05 * expected.abs().max()


def test_an_evaluation_copy_of_a_model_training_on_fp32_attention_is_switched(tiny_bert: Path, no_fast_path_warning) -> None:
    model = _model(tiny_bert)
    assert use_fp32_attention(model)
    fast = _bf16_copy(model)
    assert use_inference_attention(fast)
    assert fast.encoder.config._attn_implementation == ATTENTION_INFERENCE
    assert model.encoder.config._attn_implementation == ATTENTION_FP32


def test_with_gradients_wanted_it_runs_sdpa(tiny_bert: Path, monkeypatch) -> None:
    """Only inference takes the window path: a forward pass that needs gradients goes to sdpa."""
    fast = _bf16_copy(_model(tiny_bert))
    assert use_inference_attention(fast)
    calls = []
    healthy = inference_attention.window_attention
    monkeypatch.setattr(inference_attention, "window_attention", lambda *a: calls.append(1) or healthy(*a))
    ids, mask = probe_batch(fast.config)
    fast.train()
    out = fast(input_ids=ids, attention_mask=mask)
    out.start_logits.float().sum().backward()
    assert calls == [] and fast.qa_outputs.weight.grad is not None
    _logits(fast.eval())
    assert len(calls) == fast.config.num_hidden_layers


def _ignores_the_mask(monkeypatch) -> None:
    healthy = inference_attention.window_attention
    monkeypatch.setattr(inference_attention, "window_attention", lambda q, k, v, mask, scale: healthy(q, k, v, None, scale))


def _garbles_values(monkeypatch) -> None:
    healthy = inference_attention.window_attention
    monkeypatch.setattr(inference_attention, "window_attention", lambda q, k, v, mask, scale: healthy(q, k, v.flip(-2), mask, scale))


def _mask_builder_returns_none(monkeypatch) -> None:
    monkeypatch.setattr(transformers.masking_utils, "sdpa_mask", lambda *args, **kwargs: None)


def _set_attn_implementation_ignored(monkeypatch) -> None:
    monkeypatch.setattr(transformers.PreTrainedModel, "set_attn_implementation", lambda self, name: None)


@pytest.mark.parametrize("breakage", [_ignores_the_mask, _garbles_values, _mask_builder_returns_none, _set_attn_implementation_ignored])
def test_a_broken_attention_puts_the_copy_back_with_one_warning(tiny_bert: Path, monkeypatch, breakage) -> None:
    model = _model(tiny_bert)
    expected = _logits(_bf16_copy(model))
    fast = _bf16_copy(model)
    breakage(monkeypatch)
    with pytest.warns(FastPathWarning) as record:
        check = use_inference_attention(fast)
    (message,) = [str(w.message) for w in record if issubclass(w.category, FastPathWarning)]
    assert message.startswith("evspan: train.eval_cpu_attention disabled: ") and "\n" not in message
    assert message.endswith("evaluation runs transformers' sdpa attention")
    assert not check and check.reason in message
    assert fast.encoder.config._attn_implementation == "sdpa"
    assert torch.equal(_logits(fast), expected)
    with warnings.catch_warnings():  # the verdict stands for the rest of the process, without a second warning
        warnings.simplefilter("error", FastPathWarning)
        assert not use_inference_attention(_bf16_copy(model))


def test_a_mask_ignored_is_reported_with_its_size(tiny_bert: Path, monkeypatch) -> None:
    _ignores_the_mask(monkeypatch)
    with pytest.warns(FastPathWarning, match=r"padded and unpadded rows disagree by \d+\.\d\d \(tolerance 0\.25"):
        check = use_inference_attention(_bf16_copy(_model(tiny_bert)))
    assert check.error > ATTENTION_TOLERANCE


def test_a_passed_check_is_not_repeated(tiny_bert: Path, monkeypatch, no_fast_path_warning) -> None:
    model = _model(tiny_bert)
    assert use_inference_attention(_bf16_copy(model))

    def no_probe(*args, **kwargs):
        raise AssertionError("probed twice")

    monkeypatch.setattr(inference_attention, "_attention_probe", no_probe)
    monkeypatch.setattr(inference_attention, "_compare_attention", no_probe)
    again = _bf16_copy(model)
    assert use_inference_attention(again) and again.encoder.config._attn_implementation == ATTENTION_INFERENCE


def test_not_applicable_is_not_a_failure(tiny_bert: Path, no_fast_path_warning) -> None:
    fp32 = _model(tiny_bert).eval()
    check = use_inference_attention(fp32)
    assert not check and "bf16" in check.reason and fp32.encoder.config._attn_implementation == "sdpa"
    eager = _bf16_copy(EvidenceQA.from_encoder(tiny_bert, ModelSettings(attn_implementation="eager"), seed=0))
    check = use_inference_attention(eager)
    assert not check and "sdpa" in check.reason and eager.encoder.config._attn_implementation == "eager"


def test_the_check_passes_on_the_default_encoder(no_fast_path_warning) -> None:
    fast = _bf16_copy(_model("minilm"))
    check = use_inference_attention(fast)
    assert check and check.error < ATTENTION_TOLERANCE / 5
