"""Tiny corpus and settings shared by the evtrain tests and the root integration tests."""

import csv
import random
from pathlib import Path

import attrs

from evtrain.settings import RunSettings

EVIDENCE = {
    "SLEEP_ISSUES": ["I barely sleep anymore, maybe three hours a night.", "Most nights I lie awake until five in the morning."],
    "FATIGUE": ["I am exhausted all the time even after resting.", "I have no energy to get out of bed."],
    "DEPRESSED_MOOD": ["I feel empty and sad every single day.", "Everything feels hopeless and grey to me."],
}
FILLER = [
    "My roommate moved out last month.",
    "Work has been the same as always.",
    "I started watching a new show yesterday.",
    "The weather here is cold and rainy.",
    "My sister called me on Sunday.",
    "I walked the dog around the block.",
    "We had pasta for dinner again.",
]


def write_tiny_corpus(directory: Path, n_posts: int = 24, seed: int = 0) -> Path:
    """A small ReDSM5-format corpus: each post mixes filler with one or two evidence sentences."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    posts, annotations = [], []
    for i in range(n_posts):
        pid = f"p{i:03d}"
        symptoms = rng.sample(sorted(EVIDENCE), k=1 + i % 2)
        sentences = rng.sample(FILLER, k=3 + i % 4)
        chosen = []
        for sym in symptoms:
            sent = rng.choice(EVIDENCE[sym])
            sentences.insert(rng.randrange(len(sentences) + 1), sent)
            chosen.append((sym, sent))
        posts.append({"post_id": pid, "text": " ".join(sentences)})
        for j, (sym, sent) in enumerate(chosen):
            annotations.append(
                {
                    "post_id": pid,
                    "sentence_id": f"s_{pid}_{j}",
                    "sentence_text": sent,
                    "DSM5_symptom": sym,
                    "status": 1,
                    "explanation": "clear, first person",
                }
            )
    with open(directory / "posts.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["post_id", "text"])
        w.writeheader()
        w.writerows(posts)
    with open(directory / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, ["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"])
        w.writeheader()
        w.writerows(annotations)
    return directory


def tiny_settings(corpus: Path, model: Path, **train) -> RunSettings:
    """Small, fast settings for end-to-end tests (no semantic step, short windows, fp32)."""
    s = RunSettings()
    return attrs.evolve(
        s,
        data=attrs.evolve(s.data, data_dir=str(corpus), use_semantic=False, train_ratio=0.5, val_ratio=0.25, test_ratio=0.25),
        features=attrs.evolve(s.features, max_length=64, doc_stride=16, max_answer_length=30),
        model=attrs.evolve(s.model, name=str(model)),
        train=attrs.evolve(
            s.train,
            **{
                "epochs": 2,
                "batch_size": 8,
                "eval_batch_size": 16,
                "learning_rate": 5e-3,
                "precision": "off",
                "num_threads": 1,
                "save_state_every_steps": 0,
                **train,
            },
        ),
    )
