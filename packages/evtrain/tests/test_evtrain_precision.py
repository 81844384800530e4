"""Mixed-precision resolution on CPUs with and without native bf16 (capability mocked, real code path)."""

import pytest
import torch

import evtrain.precision as precision
from evtrain.precision import resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("native", "dtype"), [(True, torch.bfloat16), (False, None)])
def test_auto_on_cpu_follows_capability(monkeypatch, native, dtype):
    monkeypatch.setattr(precision, "cpu_supports_bf16", lambda: native)
    plan = resolve_precision("auto", CPU)
    assert plan.autocast_dtype == dtype
    assert not plan.use_grad_scaler
    x = torch.randn(4, 8)
    w = torch.randn(8, 8)
    with plan.autocast(CPU):
        y = x @ w
    assert y.dtype == (dtype or torch.float32)


def test_explicit_settings():
    assert resolve_precision("off", CPU).autocast_dtype is None
    assert resolve_precision("bf16", CPU, cpu_bf16=False).autocast_dtype == torch.bfloat16
    with pytest.raises(ValueError, match="fp16 is for CUDA"):
        resolve_precision("fp16", CPU)


def test_cuda_plans_without_a_gpu(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda d: False)
    plan = resolve_precision("auto", cuda)
    assert plan.autocast_dtype == torch.float16 and plan.use_grad_scaler
    monkeypatch.setattr(precision, "cuda_supports_bf16", lambda d: True)
    assert resolve_precision("auto", cuda).autocast_dtype == torch.bfloat16
