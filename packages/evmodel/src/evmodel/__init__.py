"""evmodel: encoder loading (offline), the QA span model, safetensors checkpoints, sentence similarity.

Names are imported lazily: importing a submodule such as ``evmodel.settings`` does not import torch.
"""

from __future__ import annotations

from evdata.lazy import lazy_exports

# name -> module; imported on first use, so `import evmodel.settings` stays light (no torch).
_EXPORTS = {
    "ALIASES": "evmodel.loading",
    "CheckpointError": "evmodel.checkpoint",
    "DeviceError": "evmodel.device",
    "EncoderSimilarity": "evmodel.similarity",
    "EvidenceQA": "evmodel.qa",
    "ModelLoadError": "evmodel.loading",
    "ModelNotFoundError": "evmodel.loading",
    "ModelSettings": "evmodel.settings",
    "QAOutput": "evmodel.qa",
    "load_checkpoint": "evmodel.checkpoint",
    "load_config": "evmodel.loading",
    "load_encoder": "evmodel.loading",
    "load_tokenizer": "evmodel.loading",
    "read_metadata": "evmodel.checkpoint",
    "resolve_device": "evmodel.device",
    "resolve_model": "evmodel.loading",
    "save_checkpoint": "evmodel.checkpoint",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
