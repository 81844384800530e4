"""The CPU fast paths check themselves once at set-up: a broken library turns them off with one warning naming the setting."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import pytest
import torch
import transformers
import transformers.masking_utils
from torch import nn
from transformers import BertConfig

from evmodel import kernels
from evmodel.device import cpu_supports_bf16
from evmodel.kernels import (
    ATTENTION_BF16,
    ATTENTION_FP32,
    ATTENTION_TOLERANCE,
    ONEDNN_TOLERANCE,
    FastPathWarning,
    Fusion,
    OneDNNLinear,
    fuse_linears_for_cpu_inference,
    use_cpu_attention,
    use_fp32_attention,
)
from evmodel.loading import load_config, resolve_model
from evmodel.qa import EvidenceQA
from evmodel.selfcheck import probe_batch
from evmodel.settings import ModelSettings

needs_bf16_onednn = pytest.mark.skipif(not cpu_supports_bf16(), reason="this CPU's oneDNN has no native bf16")


def _model(directory: Path | str) -> EvidenceQA:
    model = EvidenceQA.from_encoder(directory, ModelSettings(dropout=0.0), seed=0)
    with torch.no_grad():
        # A trained-looking head: the fresh one's 0.02-scale weights would make every logit ~0.
        model.qa_outputs.weight.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    return model


def _logits(model: nn.Module, *, training_condition: bool) -> torch.Tensor:
    """Start/end logits of the probe batch: under bf16 autocast with grad on (training), or plain inference."""
    ids, mask = probe_batch(model.config)
    if training_condition:
        with torch.enable_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(input_ids=ids, attention_mask=mask)
    else:
        with torch.inference_mode():
            out = model(input_ids=ids, attention_mask=mask)
    return torch.stack([out.start_logits, out.end_logits]).detach().float()


def _fast_path_warnings(record) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, FastPathWarning)]


@pytest.fixture
def no_fast_path_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathWarning)
        yield


# --- the probe batch ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        BertConfig(vocab_size=120, pad_token_id=0),
        BertConfig(vocab_size=50, pad_token_id=None),
        BertConfig(vocab_size=1000, pad_token_id=1, max_position_embeddings=514),  # RoBERTa's pad id
        BertConfig(vocab_size=30, pad_token_id=29),
    ],
)
def test_probe_batch_is_built_from_the_config_alone(config: BertConfig) -> None:
    ids, mask = probe_batch(config)
    pad = config.pad_token_id or 0
    assert ids.shape == mask.shape == (2, 24) and ids.dtype == torch.long
    assert mask.sum(1).tolist() == [6, 24]
    real = mask.bool()
    assert (ids[~real] == pad).all() and (ids[real] != pad).all()
    assert ids.min() >= 0 and ids.max() < config.vocab_size
    assert not torch.equal(ids[0, :6], ids[1, :6])
    assert torch.equal(probe_batch(config)[0], ids)  # deterministic


def test_probe_batch_fits_short_position_tables() -> None:
    ids, mask = probe_batch(BertConfig(vocab_size=50, max_position_embeddings=10))
    assert ids.shape == (2, 8) and mask.sum(1).tolist() == [6, 8]


def test_probe_batch_fits_the_default_encoder() -> None:
    config = load_config(resolve_model("minilm"))
    ids, mask = probe_batch(config)
    assert ids.max() < config.vocab_size and (ids[~mask.bool()] == config.pad_token_id).all()


# --- training attention (train.cpu_attention = "bf16" | "fp32") ------------------------------------------------

KINDS = ("bf16", "fp32")
_NAMES = {"bf16": ATTENTION_BF16, "fp32": ATTENTION_FP32}
_FUNCTIONS = {"bf16": "_bf16_attention_on_cpu", "fp32": "_sdpa_fp32_on_cpu"}
"""The module-level attention function of each kind, which ``register_attention`` looks up when it runs."""


@pytest.mark.parametrize("kind", KINDS)
def test_healthy_attention_stays_on_without_a_warning(tiny_bert: Path, no_fast_path_warning, kind: str) -> None:
    model = _model(tiny_bert).train()
    rng = torch.get_rng_state()
    check = use_cpu_attention(model, kind)
    assert check and check.active and check.reason == ""
    assert check.setting == "train.cpu_attention"
    assert check.error is not None and 0 <= check.error < ATTENTION_TOLERANCE / 5
    assert model.encoder.config._attn_implementation == _NAMES[kind]
    # The probe leaves no trace: modes, gradients, the global random state.
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)


def test_unknown_attention_kind_is_an_error(tiny_bert: Path) -> None:
    with pytest.raises(ValueError, match="'bf16', 'fp32'"):
        use_cpu_attention(_model(tiny_bert), "sdpa")


def _mask_builder_returns_none(monkeypatch, kind: str) -> None:
    monkeypatch.setattr(transformers.masking_utils, "sdpa_mask", lambda *args, **kwargs: None)


def _attention_ignores_the_mask(monkeypatch, kind: str) -> None:
    healthy = getattr(kernels, _FUNCTIONS[kind])

    def ignoring(module, query, key, value, attention_mask, *args, **kwargs):
        return healthy(module, query, key, value, None, *args, **kwargs)

    monkeypatch.setattr(kernels, _FUNCTIONS[kind], ignoring)


def _attention_garbles_values(monkeypatch, kind: str) -> None:
    healthy = getattr(kernels, _FUNCTIONS[kind])

    def garbling(module, query, key, value, attention_mask, *args, **kwargs):
        return healthy(module, query, key, value.flip(-2), attention_mask, *args, **kwargs)

    monkeypatch.setattr(kernels, _FUNCTIONS[kind], garbling)


def _no_set_attn_implementation(monkeypatch, kind: str) -> None:
    monkeypatch.delattr(transformers.PreTrainedModel, "set_attn_implementation")


def _set_attn_implementation_ignored(monkeypatch, kind: str) -> None:
    # transformers only logs when a model cannot switch; the switch must be verified.
    monkeypatch.setattr(transformers.PreTrainedModel, "set_attn_implementation", lambda self, name: None)


def _no_mask_registry(monkeypatch, kind: str) -> None:
    monkeypatch.delattr(transformers.masking_utils, "AttentionMaskInterface")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "breakage",
    [
        _mask_builder_returns_none,
        _attention_ignores_the_mask,
        _attention_garbles_values,
        _no_set_attn_implementation,
        _set_attn_implementation_ignored,
        _no_mask_registry,
    ],
)
def test_broken_attention_falls_back_to_sdpa_with_one_warning(tiny_bert: Path, monkeypatch, breakage, kind: str) -> None:
    plain = _model(tiny_bert)
    expected = _logits(plain, training_condition=True)
    model = _model(tiny_bert)
    breakage(monkeypatch, kind)
    with pytest.warns(FastPathWarning) as record:
        check = use_cpu_attention(model, kind)
    (message,) = _fast_path_warnings(record)
    assert message.startswith("evspan: train.cpu_attention disabled: ") and "\n" not in message
    assert message.endswith(f"training runs transformers' sdpa attention instead of the {kind} one")
    assert not check and not check.active and check.reason in message
    assert plain.encoder.config._attn_implementation == model.encoder.config._attn_implementation == "sdpa"
    # Back on sdpa, the model computes what the plain model computes, padding masked.
    assert torch.equal(_logits(model, training_condition=True), expected)
    # Set up again in the same process (a second trial): the verdict stands, without a second warning.
    again = _model(tiny_bert)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathWarning)
        assert not use_cpu_attention(again, kind)
    assert again.encoder.config._attn_implementation == "sdpa"


def _softmax_backward_garbled(monkeypatch) -> None:
    healthy = torch._softmax_backward_data
    monkeypatch.setattr(torch, "_softmax_backward_data", lambda grad, output, dim, dtype: healthy(grad, output, dim, dtype).flip(-1))


def _softmax_backward_gone(monkeypatch) -> None:
    monkeypatch.delattr(torch, "_softmax_backward_data")


@pytest.mark.parametrize("breakage", [_softmax_backward_garbled, _softmax_backward_gone])
def test_a_broken_explicit_backward_turns_bf16_attention_off(tiny_bert: Path, monkeypatch, breakage) -> None:
    """The probe runs no backward through the model; the check of ``ExplicitAttention`` itself catches its backward."""
    model = _model(tiny_bert)
    breakage(monkeypatch)
    with pytest.warns(
        FastPathWarning, match=r"train\.cpu_attention disabled: (ExplicitAttention's output or gradients differ|its self-check raised)"
    ):
        check = use_cpu_attention(model, "bf16")
    assert not check and model.encoder.config._attn_implementation == "sdpa"
    # The fp32 attention does not use it: its own check is unaffected.
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathWarning)
        assert use_fp32_attention(_model(tiny_bert))


@pytest.mark.parametrize("kind", KINDS)
def test_the_mismatch_is_reported_with_its_size(tiny_bert: Path, monkeypatch, kind: str) -> None:
    _mask_builder_returns_none(monkeypatch, kind)
    with pytest.warns(FastPathWarning, match=r"padded and unpadded rows disagree by \d+\.\d\d \(tolerance 0\.25"):
        check = use_cpu_attention(_model(tiny_bert), kind)
    assert check.error is not None and check.error > ATTENTION_TOLERANCE and check.tolerance == ATTENTION_TOLERANCE


@pytest.mark.parametrize("kind", KINDS)
def test_a_broken_fp32_flash_backward_turns_either_attention_off(tiny_bert: Path, monkeypatch, kind: str) -> None:
    """Both kinds train long rows through ``Fp32FlashAttention`` (private aten ops); its check covers its backward."""
    healthy = kernels.Fp32FlashAttention.backward

    def garbled(ctx, grad):
        grad_query, grad_key, grad_value, *rest = healthy(ctx, grad)
        return (grad_query.flip(-2), grad_key, grad_value, *rest)

    monkeypatch.setattr(kernels.Fp32FlashAttention, "backward", staticmethod(garbled))
    model = _model(tiny_bert)
    with pytest.warns(FastPathWarning, match=r"train\.cpu_attention disabled: Fp32FlashAttention's output or gradients differ"):
        check = use_cpu_attention(model, kind)
    assert not check and model.encoder.config._attn_implementation == "sdpa"


@pytest.mark.parametrize("kind", KINDS)
def test_a_passed_check_is_not_repeated(tiny_bert: Path, monkeypatch, no_fast_path_warning, kind: str) -> None:
    assert use_cpu_attention(_model(tiny_bert), kind)

    def no_probe(*args, **kwargs):
        raise AssertionError("probed twice")

    monkeypatch.setattr(kernels, "_attention_probe", no_probe)
    monkeypatch.setattr(kernels, "_check_attention_functions", no_probe)
    model = _model(tiny_bert)
    assert use_cpu_attention(model, kind)
    assert model.encoder.config._attn_implementation == _NAMES[kind]


def test_each_kind_has_its_own_verdict(tiny_bert: Path, monkeypatch) -> None:
    """A failed bf16 check leaves the fp32 attention available in the same process, and the other way round."""
    _softmax_backward_gone(monkeypatch)
    with pytest.warns(FastPathWarning):
        assert not use_cpu_attention(_model(tiny_bert), "bf16")
    assert use_fp32_attention(_model(tiny_bert))


@pytest.mark.parametrize("kind", KINDS)
def test_eager_attention_is_not_applicable_and_not_a_failure(tiny_bert: Path, no_fast_path_warning, kind: str) -> None:
    model = EvidenceQA.from_encoder(tiny_bert, ModelSettings(attn_implementation="eager"), seed=0)
    check = use_cpu_attention(model, kind)
    assert not check and "sdpa" in check.reason


# --- oneDNN-fused linears (train.eval_onednn_linears) -----------------------------------------------------------


def _bf16(directory: Path | str) -> EvidenceQA:
    return _model(directory).eval().to(torch.bfloat16)


@needs_bf16_onednn
def test_healthy_fusion_stays_on_without_a_warning(tiny_bert: Path, no_fast_path_warning) -> None:
    model = _bf16(tiny_bert)
    report = fuse_linears_for_cpu_inference(model)
    layers = model.config.num_hidden_layers
    assert report == Fusion(linears=6 * layers + 1, gelus=layers)
    assert report.check and report.check.setting == "train.eval_onednn_linears"
    assert report.check.error is not None and report.check.error < ONEDNN_TOLERANCE / 2


def _times_two(monkeypatch) -> None:
    healthy = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *args: healthy(*args) * 2)


def _zeros(monkeypatch) -> None:
    healthy = torch.ops.mkldnn._linear_pointwise
    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", lambda *args: torch.zeros_like(healthy(*args)))


def _matmul_raises(monkeypatch) -> None:
    def gone(*args):
        raise RuntimeError("mkldnn::_linear_pointwise: no kernel registered\nsecond line")

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", gone)


def _packing_missing(monkeypatch) -> None:
    def gone(*args):
        raise AttributeError("'_OpNamespace' 'mkldnn' object has no attribute '_reorder_linear_weight'")

    monkeypatch.setattr(torch.ops.mkldnn, "_reorder_linear_weight", gone)


@needs_bf16_onednn
@pytest.mark.parametrize("breakage", [_times_two, _zeros, _matmul_raises, _packing_missing])
def test_broken_fusion_returns_the_unfused_copy_with_one_warning(tiny_bert: Path, monkeypatch, breakage) -> None:
    model = _bf16(tiny_bert)
    unfused = copy.deepcopy(model)
    expected = _logits(unfused, training_condition=False)
    linears = sum(type(m) is nn.Linear for m in model.modules())
    breakage(monkeypatch)
    with pytest.warns(FastPathWarning) as record:
        report = fuse_linears_for_cpu_inference(model)
    (message,) = _fast_path_warnings(record)
    assert message.startswith("evspan: train.eval_onednn_linears disabled: ") and "\n" not in message
    assert message.endswith("evaluation runs the unfused bf16 copy")
    assert report == Fusion(0, 0) and not report.check and report.check.reason in message
    # Every module is back: the plain linears, the GELUs, and so the unfused copy's values.
    assert not any(isinstance(m, OneDNNLinear) for m in model.modules())
    assert sum(type(m) is nn.Linear for m in model.modules()) == linears
    assert all(type(layer.intermediate.intermediate_act_fn) is not nn.Identity for layer in model.encoder.encoder.layer)
    assert torch.equal(_logits(model, training_condition=False), expected)
    # Evaluation fuses a fresh copy on every call: no second probe, no second warning.
    again = _bf16(tiny_bert)
    with warnings.catch_warnings():
        warnings.simplefilter("error", FastPathWarning)
        assert fuse_linears_for_cpu_inference(again) == Fusion(0, 0)
    assert not any(isinstance(m, OneDNNLinear) for m in again.modules())


@needs_bf16_onednn
def test_fusion_mismatch_is_reported_with_its_size(tiny_bert: Path, monkeypatch) -> None:
    _times_two(monkeypatch)
    with pytest.warns(FastPathWarning, match=r"fused and unfused outputs differ by \d+\.\d\d of their largest value \(tolerance 0\.1\)"):
        report = fuse_linears_for_cpu_inference(_bf16(tiny_bert))
    assert report.check.error > ONEDNN_TOLERANCE


@needs_bf16_onednn
def test_a_passed_fusion_check_is_not_repeated(tiny_bert: Path, monkeypatch, no_fast_path_warning) -> None:
    assert fuse_linears_for_cpu_inference(_bf16(tiny_bert)).check

    def no_probe(*args, **kwargs):
        raise AssertionError("probed twice")

    monkeypatch.setattr(kernels, "_fusion_probe", no_probe)
    report = fuse_linears_for_cpu_inference(_bf16(tiny_bert))
    assert report.check and report.linears > 0


def test_fusion_not_applicable_is_not_a_failure(tiny_bert: Path, no_fast_path_warning) -> None:
    report = fuse_linears_for_cpu_inference(_model(tiny_bert))  # fp32 weights
    assert report == Fusion(0, 0) and not report.check and "bf16" in report.check.reason


# --- the default encoder -----------------------------------------------------------------------------------------


def test_the_checks_pass_on_the_default_encoder(no_fast_path_warning) -> None:
    for kind in KINDS:
        check = use_cpu_attention(_model("minilm"), kind)
        assert check and check.error < ATTENTION_TOLERANCE / 5, kind
    model = _model("minilm")
    if cpu_supports_bf16():
        copy_ = copy.deepcopy(model).to(torch.bfloat16).eval()
        report = fuse_linears_for_cpu_inference(copy_)
        assert report.check and report.check.error < ONEDNN_TOLERANCE / 2
        assert report.gelus == model.config.num_hidden_layers
