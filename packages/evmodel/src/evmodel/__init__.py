"""evmodel: encoder loading (offline), the QA span model, safetensors checkpoints, sentence similarity."""

from evmodel.checkpoint import CheckpointError, load_checkpoint, read_metadata, save_checkpoint
from evmodel.device import DeviceError, resolve_device
from evmodel.loading import ALIASES, ModelLoadError, ModelNotFoundError, load_config, load_encoder, load_tokenizer, resolve_model
from evmodel.qa import EvidenceQA, QAOutput
from evmodel.settings import ModelSettings
from evmodel.similarity import EncoderSimilarity

__all__ = [
    "ALIASES",
    "CheckpointError",
    "DeviceError",
    "EncoderSimilarity",
    "EvidenceQA",
    "ModelLoadError",
    "ModelNotFoundError",
    "ModelSettings",
    "QAOutput",
    "load_checkpoint",
    "load_config",
    "load_encoder",
    "load_tokenizer",
    "read_metadata",
    "resolve_device",
    "resolve_model",
    "save_checkpoint",
]
