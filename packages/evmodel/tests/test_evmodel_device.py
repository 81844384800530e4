"""Device settings resolve to a device that exists, or fail with a clear message."""

from __future__ import annotations

import pytest
import torch

from evmodel.device import DeviceError, resolve_device


def test_auto_picks_cuda_only_when_available() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_absent_cuda_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"CUDA is not available.*'cpu'"):
        resolve_device("cuda")
    assert resolve_device("auto") == torch.device("cpu")


def test_cuda_index_beyond_the_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(DeviceError, match="1 CUDA device"):
        resolve_device("cuda:3")


def test_unknown_name() -> None:
    with pytest.raises(DeviceError, match="auto, cpu, cuda or cuda:N"):
        resolve_device("gpu please")
