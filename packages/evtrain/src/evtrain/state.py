"""Resumable training state: safetensors for tensors, JSON for everything else, never pickle.

A state directory counts only once its ``COMPLETE`` marker exists; it is built under a temporary name
and renamed into place, so a run killed while saving leaves the previous state usable.
"""

from __future__ import annotations

import json
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from evdata.atomic import atomic_directory
from evdata.config import from_data, to_data
from evtrain.records import Progress

log = logging.getLogger("evtrain")
MARKER = "COMPLETE"
KEEP = 2


def _rng_state() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    np_state = np.random.get_state()
    py_state = random.getstate()
    meta = {
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
    }
    return tensors, meta


def _set_rng_state(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    n = meta["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    p = meta["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, per_param in sd["state"].items():
        for name, value in per_param.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{idx}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_state_dict(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, scalars in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_state(
    state_root: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
    progress: Progress,
) -> Path:
    """Write a complete resumable state under ``state_root/step-<global_step>`` and prune old ones."""
    name = f"step-{progress.global_step:08d}-{progress.epoch:03d}-{progress.batch_in_epoch:06d}"
    target = state_root / name
    model_tensors = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    opt_tensors, opt_meta = _optimizer_tensors(optimizer)
    rng_tensors, rng_meta = _rng_state()
    meta = {
        "progress": to_data(progress),
        "optimizer": opt_meta,
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
        "rng": rng_meta,
    }
    with atomic_directory(target) as tmp:
        save_file(model_tensors, str(tmp / "model.safetensors"))
        save_file({**opt_tensors, **rng_tensors}, str(tmp / "optimizer.safetensors"))
        (tmp / "state.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        (tmp / MARKER).write_text("ok\n", encoding="utf-8")
    for old in complete_states(state_root)[:-KEEP]:
        # Rename first so no reader ever sees a half-deleted state under a valid name.
        trash = old.with_name(f".trash-{old.name}")
        old.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    return target


def complete_states(state_root: Path) -> list[Path]:
    """Complete state directories, oldest first; incomplete ones are reported and skipped."""
    if not state_root.is_dir():
        return []
    out = []
    for d in sorted(p for p in state_root.iterdir() if p.is_dir() and p.name.startswith("step-")):
        if (d / MARKER).is_file():
            out.append(d)
        else:
            log.warning("ignoring incomplete training state %s (no %s marker)", d, MARKER)
    return out


def latest_state(state_root: Path) -> Path | None:
    """The newest complete state directory, or None."""
    states = complete_states(state_root)
    return states[-1] if states else None


def load_state(
    directory: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    scaler: Any,
) -> Progress:
    """Restore model, optimizer, scheduler, scaler and RNG states; return the saved progress."""
    meta = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    progress = from_data(meta["progress"], Progress, str(directory / "state.json"))
    _unwrap(model).load_state_dict(load_file(str(directory / "model.safetensors")))
    tensors = load_file(str(directory / "optimizer.safetensors"))
    optimizer.load_state_dict(_optimizer_state_dict(tensors, meta["optimizer"]))
    scheduler.load_state_dict(meta["scheduler"])
    if scaler is not None and meta.get("scaler"):
        scaler.load_state_dict(meta["scaler"])
    _set_rng_state(tensors, meta["rng"])
    return progress


def _unwrap(model: torch.nn.Module) -> torch.nn.Module:
    return getattr(model, "_orig_mod", model)
