"""The ``[train]`` table of settings.toml and the resolved settings of one run."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

import attrs
from attrs.validators import ge, gt, le, lt

from evdata.config import SettingsError, converter, dumps_sections, evolve_sections, load_sections, structure_sections, validate_fields
from evdata.settings import DataSettings
from evfeatures.settings import FeatureSettings
from evmodel.settings import ModelSettings

ALL_SECTIONS = ("data", "features", "model", "train", "search")
CPU_ATTENTION = ("bf16", "fp32", "sdpa")
"""The choices of ``train.cpu_attention``."""


@attrs.frozen
class TrainSettings:
    """The training loop, evaluation and the levers for speed."""

    epochs: int = attrs.field(default=4, validator=ge(1))
    max_steps: int = attrs.field(default=0, validator=ge(0))
    """Stop after this many optimizer steps (0 = no limit)."""
    batch_size: int = attrs.field(default=16, validator=ge(1))
    eval_batch_size: int = attrs.field(default=16, validator=ge(1))
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
    eval_cpu_attention: bool = True
    """CPU evaluation of that bf16 copy: attention written out as two bf16 matmuls and a softmax, one window at a
    time (``evmodel.inference_attention``), instead of torch's flash attention, which is slow for MiniLM's
    32-wide heads. No effect on CUDA, in fp32, or without ``eval_cast_weights``.

    It computes what transformers' eager attention computes in bf16 (probabilities rounded to bf16, where flash
    attention keeps them in fp32). On a 2-core AVX512-BF16 CPU, interleaved A/B: the MiniLM copy's forward pass
    over 16 windows 1.11-1.25x faster at 200-384 tokens (attention alone 29 against 54 ms per layer at 384);
    the default run's test split (1,191 windows) 29.3-29.9 against 33.5-33.6 s, with the same SQuAD, HasAns
    and evidence scores; two of the 647 post-symptom decisions moved, one each way (symptom macro F1 39.10
    against 39.04).
    """
    grad_accum_steps: int = attrs.field(default=1, validator=ge(1))
    """Effective batch = batch_size x grad_accum_steps."""
    learning_rate: float = attrs.field(default=1e-4, validator=[gt(0), lt(1)])
    weight_decay: float = attrs.field(default=0.01, validator=ge(0))
    """AdamW weight decay (never on biases and LayerNorm weights)."""
    warmup_ratio: float = attrs.field(default=0.1, validator=[ge(0), lt(1)])
    max_grad_norm: float = attrs.field(default=1.0, validator=ge(0))
    seed: int = 42
    precision: Literal["auto", "off", "bf16", "fp16"] = "auto"
    """``auto``: bf16 autocast on a CPU that supports it, bf16 (or fp16 + scaler) on CUDA."""
    compile: bool = False
    """torch.compile the model (dynamic shapes).

    Off by default: on a 2-core AMX CPU compiling took 40 s, and again for a new batch shape, and the
    compiled steps were no faster (3,199 tok/s against about 3,200 uncompiled with sdpa attention,
    2,448 with eager attention), since attention and matmuls already run in library kernels there.
    """
    attention_dropout: float = attrs.field(default=0.0, validator=[ge(0), lt(1)])
    """Dropout on attention probabilities while training (replaces the encoder's own, 0.1 for BERT-family models).

    Above 0, CPU attention cannot use its fused kernel: ``invoke bench`` measured training steps
    2-2.5x slower at 0.1, at equal validation F1. Hidden-state dropout is unaffected.
    """
    cpu_attention: Literal["bf16", "fp32", "sdpa"] = "fp32"
    """CPU training under bf16 autocast: how attention runs (``evmodel.kernels``); no effect on CUDA, in fp32, or on eager attention.

    torch's CPU flash-attention backward is slow in bf16. Per layer, forward + backward, 12 windows x 12
    heads x head dimension 32 with a padding mask, on this project's 2-core AMD EPYC (AVX512-BF16, no AMX),
    quiet machine: 300 tokens took 54-62 ms with ``"fp32"``, 69-92 ms with ``"sdpa"`` and 36-40 ms with
    ``"bf16"``; 128 tokens 12, 26 and 6 ms. At 384 tokens the explicit form is slower than fp32 flash
    (102-141 against 81-117 ms: its [tokens, tokens] probabilities outgrow the caches), so ``"bf16"`` runs
    rows longer than ``evmodel.kernels.EXPLICIT_MAX_TOKENS`` (320) as ``"fp32"`` does.

    - ``"fp32"`` (the default): torch's flash attention on fp32 copies of the bf16 queries, keys and values
      (``evmodel.kernels.Fp32FlashAttention``), keeping only bf16 tensors for backward.
    - ``"bf16"``: explicit softmax attention in bf16 with its own backward (what ``eager`` attention computes
      under autocast) for rows up to 320 tokens; it stores the bf16 attention probabilities, batch x heads x
      tokens^2 per layer (26 MB per MiniLM layer for 12 windows of 300 tokens). Over the bench's 40 steps it
      trained about 6% faster than ``"fp32"`` and peaked about 200 MiB higher. Needs ``attention_dropout = 0``,
      else sdpa runs.
    - ``"sdpa"``: transformers' sdpa in bf16, unchanged.

    ``"bf16"`` and ``"fp32"`` check themselves once per process; on a mismatch training falls back to
    ``"sdpa"`` with one warning naming this setting. Runs saved with the former ``cpu_attention_fp32 = true``
    (false) load as ``"fp32"`` (``"sdpa"``).
    """
    fast_dropout: bool = True
    """CPU training: hidden-state dropout draws its mask from 16-bit lanes of 64-bit random integers
    (``evmodel.kernels.FastDropout``) instead of ``F.dropout``'s ``bernoulli_``; no effect on CUDA.

    A MiniLM training step runs 14 dropouts (embeddings, two per layer, the span head): on a [2600, 384]
    bf16 tensor on this project's 2-core AMD EPYC ``F.dropout`` took 6.0-6.1 ms (6.6 with its backward),
    10% of the step, nearly all of it in ``bernoulli_``; ``FastDropout`` 1.4 ms (1.9), 0.8 ms of it drawing
    the random bits. The drop probability is rounded to a multiple of 1/65536
    (0.1 becomes 0.100006). Another random stream than ``F.dropout``'s: still reproducible from ``seed`` and
    continued by a resumed run.
    """
    freeze_word_embeddings: bool = False
    """Keep the encoder's word-embedding matrix as pre-trained: no gradient, no AdamW state for it.

    MiniLM's is 11.7M of its 22.7M parameters, and a batch touches a few thousand of its 30,522 rows;
    training it costs a dense fp32 gradient and two AdamW moments every step (135 MiB). Position and
    token-type embeddings and the embedding LayerNorm still train. Off by default: in three paired 4-epoch
    runs on the demo corpus (frozen against trained, same seed) test SQuAD 2.0 F1 stayed within 1 point, but
    the final training loss was higher in both pairs that recorded it (0.814 against 0.786, 0.738 against
    0.720) and evidence-span F1 lower in two of three, by less than the spread between runs that differ only
    in their dropout masks (24-57): no measured loss, but no evidence that it learns as well.
    """
    pad_to_multiple_of: int = attrs.field(default=64, validator=ge(1))
    """Training batches are padded to their longest window rounded up to a multiple of this (never past the
    longest window there is); 1 pads to the longest window exactly.

    glibc's allocator keeps the memory a step frees for the next one, but when every step's tensors have a
    new size it cannot reuse it, and a CPU process's resident memory creeps up step after step (oneDNN also
    caches kernels per shape). Six widths instead of hundreds: in a 40-step probe of the bench's path (batches
    of 12) the peak fell from 1,943 to 1,585 MiB (1,685 at 32), for 7.6% padded tokens instead of 1.3% (5.0% at 32).
    The span loss leaves padded positions out of its softmax (``evmodel.qa.span_loss``), so the extra padding
    does not change what is learned: on real MiniLM batches the gradients at 64 and at 1 differ by 0.5% (bf16
    rounding; 0 where the width was already a multiple). Dropout draws its masks over the padded tensor, so
    a run at 64 sees other masks than one at 1, as a run with another seed would.
    """
    gelu_recompute: bool = True
    """Training: each BERT-style feed-forward GELU runs inside the layer after it (``evmodel.kernels.GeluInputLinear``),
    which keeps only the GELU's input for backward and recomputes the GELU there.

    Autograd would keep both the GELU's input and its output: one ``[tokens, intermediate]`` bf16 tensor
    less per layer (81 MiB for a MiniLM batch of 12 windows x 384 tokens), for one more GELU per layer in
    backward. Loss and gradients match (bit for bit on MiniLM under bf16 autocast); checkpoints are unchanged. Encoders without a
    BERT-style ``intermediate``/``output`` pair are left as they are.
    """
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    deterministic: bool = True
    """CUDA: deterministic kernels (``torch.use_deterministic_algorithms``, cuBLAS workspace ``:4096:8``, no cuDNN
    autotuning), so one seed gives one result on one GPU, as it does on a CPU. ``false``: torch's fastest CUDA
    kernels, some of which (attention and embedding backward) add in a different order on each run. No effect on
    a CPU, where training is deterministic already."""
    num_threads: int = attrs.field(default=0, validator=ge(0))
    """Intra-op CPU threads (0 = one per physical core)."""
    num_workers: int = attrs.field(default=0, validator=ge(0))
    pin_memory: bool = False
    persistent_workers: bool = False
    eval_every_steps: int = attrs.field(default=0, validator=ge(0))
    """Validate every N optimizer steps as well as after each epoch (0 = per epoch only)."""
    metric: Literal["f1", "exact_match", "symptom_macro_f1"] = "f1"
    """Validation metric for the best checkpoint, early stopping and the search objective: SQuAD 2.0 ``f1`` or
    ``exact_match`` over every example at the tuned no-answer threshold, or ``symptom_macro_f1`` (post-level
    symptom detection, macro over the nine symptoms, percent)."""
    patience: int = attrs.field(default=2, validator=ge(0))
    """Evaluations without improvement before stopping (0 = never stop early)."""
    negative_window_ratio: float = attrs.field(default=0.2, validator=[gt(0), le(1)])
    """Share of training windows without an answer that are kept each epoch (1 = all), after ``no_answer_ratio``'s draw.

    With every post asked every symptom most windows hold no answer; 0.2 with ``no_answer_ratio = 0.5`` trains on
    965 windows per epoch of the demo corpus (253k tokens), against 1,049 (292k) when only answerable examples were built.
    """
    val_no_answer_ratio: float = attrs.field(default=0.5, validator=ge(0))
    """Validation during training scores a fixed, seeded sample of the val split: every answerable example, every hard
    negative and this many other no-answer examples per answerable one (``inf`` = every example). With every post asked
    every symptom the full split is 9x the evaluation work; the best checkpoint is then evaluated on the whole split,
    where the stored threshold is tuned."""
    no_answer_ratio: float = attrs.field(default=0.5, validator=ge(0))
    """No-answer examples drawn per answerable training example each epoch (seeded, a new draw every epoch); hard
    negatives (only status-0 rows) are always kept. 0 = hard negatives only."""
    save_state_every_steps: int = attrs.field(default=200, validator=ge(0))
    """Write a resumable training state every N optimizer steps (and every epoch); 0 = per epoch only."""
    log_every_steps: int = attrs.field(default=10, validator=ge(1))

    def __attrs_post_init__(self) -> None:
        validate_fields(
            self,
            [
                (self.precision in ("auto", "off", "bf16", "fp16"), f"precision: must be auto|off|bf16|fp16, got {self.precision!r}"),
                (
                    self.cpu_attention in CPU_ATTENTION,
                    f"cpu_attention: must be 'bf16', 'fp32' or 'sdpa', got {self.cpu_attention!r}",
                ),
                (
                    self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
                    f"device: must be auto, cpu, cuda or cuda:N, got {self.device!r}",
                ),
                (not self.persistent_workers or self.num_workers > 0, "persistent_workers: needs num_workers > 0"),
                (
                    self.metric in ("f1", "exact_match", "symptom_macro_f1"),
                    f"metric: must be 'f1', 'exact_match' or 'symptom_macro_f1', got {self.metric!r}",
                ),
            ],
        )


LEGACY_CPU_ATTENTION = {True: "fp32", False: "sdpa"}
"""``train.cpu_attention`` for the former ``train.cpu_attention_fp32`` (true or false) of runs saved before it."""


def _read_legacy_keys(structure: Callable[[Any, type], TrainSettings]) -> Callable[[Any, type], TrainSettings]:
    """The ``[train]`` table's structure hook, reading ``cpu_attention_fp32 = true|false`` as ``cpu_attention``.

    Saved runs keep their settings.toml, and evaluating or resuming one reads it again. The old key is
    only translated when it is a bool and the new one is absent; anything else is reported as usual.
    """

    def structure_train(table: Any, cls: type) -> TrainSettings:
        if isinstance(table, Mapping) and isinstance(table.get("cpu_attention_fp32"), bool) and "cpu_attention" not in table:
            table = {**table, "cpu_attention": LEGACY_CPU_ATTENTION[table["cpu_attention_fp32"]]}
            del table["cpu_attention_fp32"]
        return structure(table, cls)

    return structure_train


converter.register_structure_hook(TrainSettings, _read_legacy_keys(converter.get_structure_hook(TrainSettings)))


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

    def with_changes(self, changes: dict[str, Any], source: str = "command line", *, from_text: bool = False) -> RunSettings:
        """These settings with ``{"section.key": value}`` applied, checked as settings.toml is.

        ``from_text``: the values were typed on a command line (see ``evdata.config.evolve_sections``).
        """
        if not changes:
            return self
        sections = {name: getattr(self, name) for name in self.SCHEMA}
        return type(self)(
            **evolve_sections(sections, changes, self.SCHEMA, known_sections=ALL_SECTIONS, source=source, from_text=from_text)
        )

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


RESUMABLE_SETTINGS = (
    "train.epochs",
    "train.max_steps",
    "train.patience",
    "train.log_every_steps",
    "train.save_state_every_steps",
    "train.num_threads",
    "train.num_workers",
    "train.eval_batch_size",
    "train.deterministic",
)
"""Settings a resumed run may change: how long it trains and how it runs, never what it learns from."""


INFERENCE_SETTINGS = (
    "train.eval_batch_size",
    "train.eval_cast_weights",
    "train.eval_onednn_linears",
    "train.eval_cpu_attention",
    "train.precision",
    "train.device",
    "train.num_threads",
)
"""Settings ``invoke evaluate`` and ``invoke predict`` may change (``--set``): how a saved run's model runs, never
what it is scored on or how its answers are read (data and split, windows, threshold, question mode)."""


def inference_settings(saved: RunSettings, changes: Mapping[str, Any], *, from_text: bool = False) -> RunSettings:
    """A saved run's settings for evaluation or prediction, with the requested ``changes`` to how it runs.

    Any other key is a ``SettingsError`` naming it: a changed split seed or ratio would score the model on
    posts it trained on, and changed windows or question mode would read its logits differently. Unknown
    keys and bad values of the allowed ones are reported as settings.toml's are.
    """
    refused = [key for key in changes if key not in INFERENCE_SETTINGS and _known_key(saved, key)]
    if refused:
        raise SettingsError(
            [
                f"{key}: evaluate and predict use the run's saved value (it decides what is scored or how the model's "
                f"answers are read); --set may change only {', '.join(INFERENCE_SETTINGS)}"
                for key in refused
            ],
            "--set",
        )
    return saved.with_changes(dict(changes), from_text=from_text)


def _known_key(settings: RunSettings, dotted: str) -> bool:
    """Whether ``section.key`` names a setting (a typo is left to ``with_changes`` to name)."""
    section, _, name = dotted.partition(".")
    schema = settings.SCHEMA.get(section)
    return schema is not None and name in attrs.fields_dict(schema)


def resume_settings(saved: RunSettings, changes: Mapping[str, Any], *, from_text: bool = False) -> RunSettings:
    """A resumed run's settings: its saved ones, with the requested ``changes`` that make sense on resume.

    A change to anything else (the data, the model, the seed, the learning rate, ...) would make the
    resumed run a different run: that is a ``SettingsError`` listing each conflicting key, saved and requested.
    """
    conflicts = []
    allowed = {}
    for key, value in changes.items():
        if key in RESUMABLE_SETTINGS:
            allowed[key] = value
        elif (requested := saved.with_changes({key: value}, from_text=from_text).value(key)) != saved.value(key):
            conflicts.append(f"{key} (saved {saved.value(key)!r}, requested {requested!r})")
    if conflicts:
        raise SettingsError(
            [
                "--resume continues a run with its saved settings; these would change what it learns: "
                + "; ".join(conflicts)
                + f". Start a new run instead, or change only {', '.join(RESUMABLE_SETTINGS)}"
            ],
            "--resume",
        )
    return saved.with_changes(allowed, from_text=from_text)
