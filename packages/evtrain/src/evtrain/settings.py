"""The ``[train]`` table of settings.toml and the resolved settings of one run."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import attrs

from evdata.config import dumps_sections, evolve_sections, load_sections, structure_sections, validate_fields
from evdata.settings import DataSettings
from evfeatures.settings import FeatureSettings
from evmodel.settings import ModelSettings

ALL_SECTIONS = ("data", "features", "model", "train", "search")


@attrs.frozen
class TrainSettings:
    """The training loop, evaluation and the levers for speed."""

    epochs: int = 4
    max_steps: int = 0
    """Stop after this many optimizer steps (0 = no limit)."""
    batch_size: int = 16
    eval_batch_size: int = 16
    """Windows per evaluation batch (sorted by length). Small batches keep a CPU's activations in cache and
    pad less: ``invoke bench`` measured 16 about 1.5x faster than 64 on 2 cores; raise it on a GPU."""
    eval_cast_weights: bool = True
    """With bf16 autocast, evaluate a bf16 copy of the model instead of autocasting over fp32 weights.

    An interleaved A/B on a 2-core CPU measured it 1.05-1.13x faster (median of 5 passes), with the same
    validation and test scores as autocast on the default run's checkpoint. fp16 plans keep autocast
    (fp16 weights can overflow).
    """
    eval_onednn_linears: bool = True
    """CPU evaluation of that bf16 copy: every linear layer a oneDNN matmul on a pre-packed weight, with the bias and
    the feed-forward GELU fused into it (``evmodel.kernels``). No effect on CUDA, in fp32, or without ``eval_cast_weights``.

    Same computation, rounded at different places: the GELU is taken on the fp32 accumulator before rounding
    to bf16. On the default run's checkpoint (val and test, 288 examples) the largest logit deviation from
    fp32 fell from 0.20-0.56 to 0.19-0.38 (mean 0.008 either way), and 287 of 288 predictions equal fp32's
    (288 without it: one near-tie flips). Interleaved A/B on a 2-core AMX CPU: 1.16-1.21x faster evaluation
    (fastest of 6-7 passes each); the profiled linear + bias + GELU time fell by 31%.
    """
    grad_accum_steps: int = 1
    """Effective batch = batch_size x grad_accum_steps."""
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    """AdamW weight decay (never on biases and LayerNorm weights)."""
    warmup_ratio: float = 0.1
    max_grad_norm: float = 1.0
    seed: int = 42
    precision: Literal["auto", "off", "bf16", "fp16"] = "auto"
    """``auto``: bf16 autocast on a CPU that supports it, bf16 (or fp16 + scaler) on CUDA."""
    compile: bool = False
    """torch.compile the model (dynamic shapes).

    Off by default: on a 2-core AMX CPU compiling took 40 s, and again for a new batch shape, and the
    compiled steps were no faster (3,199 tok/s against about 3,200 uncompiled with sdpa attention,
    2,448 with eager attention), since attention and matmuls already run in library kernels there.
    """
    attention_dropout: float = 0.0
    """Dropout on attention probabilities while training (replaces the encoder's own, 0.1 for BERT-family models).

    Above 0, CPU attention cannot use its fused kernel: ``invoke bench`` measured training steps
    2-2.5x slower at 0.1, at equal validation F1. Hidden-state dropout is unaffected.
    """
    cpu_attention_fp32: bool = True
    """CPU training under bf16 autocast: compute attention in fp32 (``evmodel.kernels``).

    torch's CPU flash-attention backward is slower in bf16 than in fp32, so this is both faster (+12% per
    training step in an interleaved A/B on a 2-core CPU) and more precise. No effect on CUDA, in fp32, or on
    eager attention.
    """
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    num_threads: int = 0
    """Intra-op CPU threads (0 = one per physical core)."""
    num_workers: int = 0
    pin_memory: bool = False
    persistent_workers: bool = False
    eval_every_steps: int = 0
    """Validate every N optimizer steps as well as after each epoch (0 = per epoch only)."""
    metric: Literal["f1", "exact_match"] = "f1"
    """Validation metric for the best checkpoint and early stopping."""
    patience: int = 2
    """Evaluations without improvement before stopping (0 = never stop early)."""
    negative_window_ratio: float = 1.0
    """Share of training windows without an answer that are kept each epoch (1 = all)."""
    save_state_every_steps: int = 200
    """Write a resumable training state every N optimizer steps (and every epoch); 0 = per epoch only."""
    log_every_steps: int = 10

    def __attrs_post_init__(self) -> None:
        validate_fields(
            self,
            [
                (self.epochs >= 1, f"epochs: must be >= 1, got {self.epochs}"),
                (self.max_steps >= 0, f"max_steps: must be >= 0, got {self.max_steps}"),
                (self.batch_size >= 1, f"batch_size: must be >= 1, got {self.batch_size}"),
                (self.eval_batch_size >= 1, f"eval_batch_size: must be >= 1, got {self.eval_batch_size}"),
                (self.grad_accum_steps >= 1, f"grad_accum_steps: must be >= 1, got {self.grad_accum_steps}"),
                (0 < self.learning_rate < 1, f"learning_rate: must be within (0, 1), got {self.learning_rate}"),
                (self.weight_decay >= 0, f"weight_decay: must be >= 0, got {self.weight_decay}"),
                (0 <= self.warmup_ratio < 1, f"warmup_ratio: must be within [0, 1), got {self.warmup_ratio}"),
                (self.max_grad_norm >= 0, f"max_grad_norm: must be >= 0 (0 = no clipping), got {self.max_grad_norm}"),
                (self.precision in ("auto", "off", "bf16", "fp16"), f"precision: must be auto|off|bf16|fp16, got {self.precision!r}"),
                (
                    self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
                    f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}",
                ),
                (self.num_threads >= 0, f"num_threads: must be >= 0, got {self.num_threads}"),
                (self.num_workers >= 0, f"num_workers: must be >= 0, got {self.num_workers}"),
                (not self.persistent_workers or self.num_workers > 0, "persistent_workers: needs num_workers > 0"),
                (self.eval_every_steps >= 0, f"eval_every_steps: must be >= 0, got {self.eval_every_steps}"),
                (self.metric in ("f1", "exact_match"), f"metric: must be 'f1' or 'exact_match', got {self.metric!r}"),
                (self.patience >= 0, f"patience: must be >= 0, got {self.patience}"),
                (0 <= self.attention_dropout < 1, f"attention_dropout: must be within [0, 1), got {self.attention_dropout}"),
                (0 < self.negative_window_ratio <= 1, f"negative_window_ratio: must be within (0, 1], got {self.negative_window_ratio}"),
                (self.save_state_every_steps >= 0, f"save_state_every_steps: must be >= 0, got {self.save_state_every_steps}"),
                (self.log_every_steps >= 1, f"log_every_steps: must be >= 1, got {self.log_every_steps}"),
            ],
        )


@attrs.frozen
class RunSettings:
    """Everything one training run depends on: the resolved ``[data]``, ``[features]``, ``[model]``, ``[train]``."""

    data: DataSettings = attrs.field(factory=DataSettings)
    features: FeatureSettings = attrs.field(factory=FeatureSettings)
    model: ModelSettings = attrs.field(factory=ModelSettings)
    train: TrainSettings = attrs.field(factory=TrainSettings)

    SCHEMA: ClassVar[dict[str, type]] = {"data": DataSettings, "features": FeatureSettings, "model": ModelSettings, "train": TrainSettings}

    @classmethod
    def load(cls, path: str | Path, overrides: tuple[str, ...] | list[str] = ()) -> RunSettings:
        """Read settings.toml (its ``[search]`` table is left to evsearch) and apply ``--set`` overrides."""
        return cls(**load_sections(path, cls.SCHEMA, overrides=overrides, known_sections=ALL_SECTIONS))

    @classmethod
    def from_mapping(cls, raw: dict[str, Any], overrides: tuple[str, ...] | list[str] = ()) -> RunSettings:
        """Structure already-parsed TOML data."""
        return cls(**structure_sections(raw, cls.SCHEMA, overrides=overrides, known_sections=ALL_SECTIONS))

    def with_changes(self, changes: dict[str, Any], source: str = "command line") -> RunSettings:
        """These settings with ``{"section.key": value}`` applied (flags, ``--set``), checked as settings.toml is."""
        if not changes:
            return self
        sections = {name: getattr(self, name) for name in self.SCHEMA}
        return type(self)(**evolve_sections(sections, changes, self.SCHEMA, known_sections=ALL_SECTIONS, source=source))

    def check_for_training(self) -> None:
        """Problems that only matter when training (raised together, each naming ``section.key``).

        Training keeps the checkpoint that scores best on validation and stops early on it, so it needs
        a validation split: ``data.val_ratio = 0`` is refused here rather than faked as F1 0 (``invoke data``
        still accepts it, to inspect a two-way split).
        """
        validate_fields(
            self,
            [
                (
                    self.data.val_ratio > 0,
                    f"data.val_ratio: training needs a validation split to choose its best checkpoint; must be > 0, got {self.data.val_ratio:g}",
                )
            ],
        )

    def value(self, dotted: str) -> Any:
        """The value of ``section.key``."""
        section, _, key = dotted.partition(".")
        return getattr(getattr(self, section), key)

    def to_toml(self) -> str:
        """The resolved settings as TOML text (what a run directory stores)."""
        return dumps_sections({"data": self.data, "features": self.features, "model": self.model, "train": self.train})
