"""Turn a device setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``) into a usable torch device."""

from __future__ import annotations

import torch


class DeviceError(ValueError):
    """A device that does not exist on this machine, or a spelling torch does not know."""


def cpu_supports_bf16() -> bool:
    """True when this CPU runs bf16 matmuls natively through oneDNN (AVX512-BF16 or AMX)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_device(spec: str | torch.device) -> torch.device:
    """``auto`` -> the first CUDA device when there is one, else the CPU; anything else must exist here."""
    if isinstance(spec, torch.device):
        device = spec
    else:
        text = spec.strip().lower()
        if text == "auto":
            return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
        try:
            device = torch.device(text)
        except RuntimeError:
            raise DeviceError(f"device {spec!r}: not a device name; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {str(spec)!r}: CUDA is not available here (torch {torch.__version__}, "
                f"built for CUDA {torch.version.cuda or 'none'}); use device 'cpu' or 'auto'"
            )
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {str(spec)!r}: this machine has {count} CUDA device(s) (cuda:0 to cuda:{count - 1})")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"device {str(spec)!r}: Apple MPS is not available here; use device 'cpu' or 'auto'")
    return device
