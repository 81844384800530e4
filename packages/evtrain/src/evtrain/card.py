"""The model card (README.md with the Hugging Face metadata header) written into every saved model directory."""

from __future__ import annotations

from pathlib import Path

from huggingface_hub import ModelCardData

from evdata.atomic import atomic_write_text
from evtrain.records import RunMetrics, Scores
from evtrain.settings import RunSettings

# Hub ids of the encoders that evspan knows by an alias, for the card's ``base_model``.
_BASE_MODELS = {"minilm": "sentence-transformers/all-MiniLM-L6-v2"}

INTENDED_USE = (
    "A research tool: it points a clinical-NLP researcher at the sentences of a post that may be evidence "
    "for a DSM-5 depression symptom, so they can be read and judged by a person. It is **not a diagnostic "
    "device**: it does not diagnose depression or any other condition, must not be used to make decisions "
    "about a person's care, safety or access to services, and its output is no substitute for a clinician."
)


def card_text(settings: RunSettings, metrics: RunMetrics) -> str:
    """The card as Markdown with a YAML metadata header, from the run's typed records."""
    synthetic = metrics.synthetic_data
    base = _BASE_MODELS.get(settings.model.name)
    data = ModelCardData(
        library_name="transformers",
        pipeline_tag="question-answering",
        language=["en"],
        base_model=base,
        metrics=["f1", "exact_match"],
        tags=["evspan", "extractive-qa", "clinical-nlp", "depression", "dsm-5"] + (["synthetic-data"] if synthetic else []),
    )
    corpus = (
        "the **synthetic demo corpus bundled with evspan** (generated text, not real posts and not ReDSM5: its scores say "
        "nothing about real data)"
        if synthetic
        else f"the corpus in `{settings.data.data_dir or settings.data.posts_file}` (ReDSM5 format)"
    )
    t, f = settings.train, settings.features
    lines = [
        "---",
        data.to_yaml(),
        "---",
        "",
        "# evspan evidence-span model",
        "",
        f"An extractive question-answering model fine-tuned by evspan from `{settings.model.name}`"
        + (f" (`{base}`)" if base else "")
        + " to find the sentences of a Reddit post that are evidence for a DSM-5 depression symptom.",
        "",
        "## Intended use and limits",
        "",
        INTENDED_USE,
        "",
        "- Trained and evaluated on English Reddit-style posts; other registers, languages and clinical notes are untested.",
        "- Scores below come from the data named here; they do not transfer to other corpora.",
        "- Annotation of mental-health text is subjective; the model inherits its training labels' errors.",
        "",
        "## Data",
        "",
        f"Trained on {corpus}: {metrics.examples.get('train', 0)} training, {metrics.examples.get('val', 0)} validation and "
        f"{metrics.examples.get('test', 0)} test examples, split by post (no post in two splits). "
        f"Question mode: `{metrics.question_mode}`.",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        f"| encoder | `{settings.model.name}` |",
        f"| epochs / optimizer steps | {t.epochs} / {metrics.optimizer_steps}{' (stopped early)' if metrics.stopped_early else ''} |",
        f"| batch size x accumulation | {t.batch_size} x {t.grad_accum_steps} |",
        f"| learning rate, warm-up, weight decay | {t.learning_rate:g}, {t.warmup_ratio:g}, {t.weight_decay:g} |",
        f"| window (tokens), stride | {f.max_length}, {f.doc_stride} |",
        f"| precision, device | {metrics.precision}, {metrics.device} |",
        f"| seed | {t.seed} |",
        f"| best checkpoint | validation {metrics.best.metric} {metrics.best.value:.2f} at epoch {metrics.best.epoch}, step {metrics.best.step} |",
        "",
        "## Results (SQuAD 2.0 percentages, best checkpoint)",
        "",
        f"No-answer threshold: {metrics.null_threshold if metrics.null_threshold is not None else 'none'} ({metrics.threshold_source or 'n/a'}): "
        "a (post, symptom) holds no evidence when null score - best span score exceeds it.",
        "",
        "| split | system | F1 | EM | HasAns F1 | NoAns acc | symptom macro F1 | n |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for split in ("val", "test"):
        scores = metrics.split(split)
        if scores is not None:
            lines.append(_row(split, "evspan", scores))
        for name, baseline in metrics.baselines.get(split, {}).items():
            lines.append(_row(split, f"baseline: {name.replace('_', ' ')}", baseline))
    lines += [
        "",
        "## How to load",
        "",
        "```python",
        "from transformers import AutoModelForQuestionAnswering, AutoTokenizer",
        'model = AutoModelForQuestionAnswering.from_pretrained("path/to/model")',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/model")',
        "```",
        "",
        "or `invoke predict --run RUN --input posts.csv` from the evspan repository.",
        "",
    ]
    return "\n".join(lines)


def _row(split: str, system: str, scores: Scores) -> str:
    return (
        f"| {split} | {system} | {scores.f1:.2f} | {scores.exact_match:.2f} | {scores.has_ans_f1:.2f} | {scores.no_ans_exact:.2f} | "
        f"{scores.symptom_macro_f1:.2f} | {scores.n} |"
    )


def write_model_card(model_dir: Path, settings: RunSettings, metrics: RunMetrics) -> Path:
    """Write ``model_dir/README.md`` atomically."""
    return atomic_write_text(Path(model_dir) / "README.md", card_text(settings, metrics))
