"""Mixed-precision resolution: which autocast dtype and whether a gradient scaler is needed."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import torch

from evmodel.device import cpu_supports_bf16 as native_bf16

if TYPE_CHECKING:
    from evtrain.settings import TrainSettings


@attrs.frozen
class PrecisionPlan:
    """What the loop does for a ``precision`` setting on a device."""

    autocast_dtype: torch.dtype | None
    use_grad_scaler: bool
    label: str
    eval_weights_dtype: torch.dtype | None = None
    """Evaluation runs a copy of the model cast to this dtype, without autocast (None = autocast over the weights)."""
    eval_onednn_linears: bool = False
    """On a CPU, that bf16 copy's linear layers run as oneDNN matmuls with bias and GELU fused in (``evmodel.kernels``).

    The fusion checks itself against the unfused copy once per process; when the check fails the copy stays
    unfused and one ``evmodel.kernels.FastPathWarning`` names ``train.eval_onednn_linears``.
    """
    eval_cpu_attention: bool = False
    """On a CPU, that bf16 copy's attention runs window by window (``evmodel.inference_attention``), self-checked the same way."""

    def autocast(self, device: torch.device):
        """A context manager for the forward pass (a no-op when precision is off)."""
        if self.autocast_dtype is None:
            return torch.autocast(device_type=device.type, enabled=False)
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)


def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively (AVX512-BF16 or AMX), so autocast pays off."""
    return native_bf16()


def cuda_supports_bf16(device: torch.device) -> bool:
    """True on CUDA devices of compute capability 8.0 (Ampere) and newer."""
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def resolve_precision(
    setting: str,
    device: torch.device,
    *,
    cpu_bf16: bool | None = None,
    cast_eval_weights: bool = False,
    onednn_linears: bool = False,
    cpu_attention: bool = False,
) -> PrecisionPlan:
    """Turn ``train.precision`` (auto|off|bf16|fp16) into a plan for ``device``.

    ``auto``: bf16 autocast on a CPU with native bf16, else fp32; on CUDA bf16 where supported, else
    fp16 with a gradient scaler. An explicit request the device cannot honour is an error. With
    ``cast_eval_weights`` (``train.eval_cast_weights``) a bf16 plan evaluates a bf16 copy of the model,
    and with ``onednn_linears`` (``train.eval_onednn_linears``) on a CPU that copy's linears are fused;
    with ``cpu_attention`` (``train.eval_cpu_attention``) on a CPU its attention runs window by window.
    """
    plan = _resolve(setting, device, cpu_bf16)
    if cast_eval_weights and plan.autocast_dtype == torch.bfloat16:
        cpu = device.type == "cpu"
        return attrs.evolve(
            plan, eval_weights_dtype=torch.bfloat16, eval_onednn_linears=onednn_linears and cpu, eval_cpu_attention=cpu_attention and cpu
        )
    return plan


def plan_for(train: TrainSettings, device: torch.device) -> PrecisionPlan:
    """``resolve_precision`` with everything ``train`` says about it (precision and the three evaluation-copy settings)."""
    return resolve_precision(
        train.precision,
        device,
        cast_eval_weights=train.eval_cast_weights,
        onednn_linears=train.eval_onednn_linears,
        cpu_attention=train.eval_cpu_attention,
    )


def _resolve(setting: str, device: torch.device, cpu_bf16: bool | None) -> PrecisionPlan:
    if setting == "off":
        return PrecisionPlan(None, False, "fp32")
    if device.type == "cpu":
        native = cpu_supports_bf16() if cpu_bf16 is None else cpu_bf16
        if setting == "fp16":
            raise ValueError("train.precision: fp16 is for CUDA; on a CPU use 'bf16', 'auto' or 'off'")
        if setting == "bf16" or native:
            return PrecisionPlan(torch.bfloat16, False, "bf16 autocast")
        return PrecisionPlan(None, False, "fp32 (this CPU has no native bf16)")
    if device.type == "cuda":
        if setting == "fp16":
            return PrecisionPlan(torch.float16, True, "fp16 autocast + grad scaler")
        if setting == "bf16" or cuda_supports_bf16(device):
            return PrecisionPlan(torch.bfloat16, False, "bf16 autocast")
        return PrecisionPlan(torch.float16, True, "fp16 autocast + grad scaler")
    return PrecisionPlan(None, False, "fp32")
