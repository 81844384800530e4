import csv
import random
from pathlib import Path

import attrs
import pytest
from optuna.trial import TrialState

from evdata.testing import register_hypothesis_profiles
from evsearch.objective import ATTR_REASON, ATTR_RUN_DIR
from evsearch.settings import SearchSettings
from evsearch.study import SURPLUS_REASON, load_study
from evtrain.settings import RunSettings

register_hypothesis_profiles()

SYMPTOM_SENTENCES = {
    "DEPRESSED_MOOD": ["I feel sad and empty almost every day.", "Nothing makes me happy and I cry at night."],
    "SLEEP_ISSUES": ["I can not sleep more than three hours a night.", "I wake up at four and lie awake until morning."],
    "FATIGUE": ["I am tired all the time even after a full night.", "I have no energy to get up in the morning."],
}
OTHER_SENTENCES = [
    "My brother visited last weekend.",
    "The bus was late again today.",
    "I cooked rice and beans for dinner.",
    "Our office moved to a new building.",
    "It rained for most of the week.",
    "I watched a film with a friend.",
    "The cat sleeps on the sofa all day.",
    "I need to fix my bike soon.",
]
WORDS = sorted(
    {w.strip(".,").lower() for s in [*OTHER_SENTENCES, *(t for ts in SYMPTOM_SENTENCES.values() for t in ts)] for w in s.split()}
)


def write_corpus(directory: Path, n_posts: int = 20, seed: int = 7) -> Path:
    """A ReDSM5-format corpus (posts.csv + annotations.csv): each post hides one or two evidence sentences among others."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    posts, rows = [], []
    for i in range(n_posts):
        post_id = f"t{i:02d}"
        sentences = rng.sample(OTHER_SENTENCES, k=2 + i % 3)
        for n, symptom in enumerate(rng.sample(sorted(SYMPTOM_SENTENCES), k=1 + i % 2)):
            sentence = rng.choice(SYMPTOM_SENTENCES[symptom])
            sentences.insert(rng.randrange(len(sentences) + 1), sentence)
            rows.append([post_id, f"s_{post_id}_{n}", sentence, symptom, 1, "first person, current"])
        posts.append([post_id, " ".join(sentences)])
    with open(directory / "posts.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["post_id", "text"], *posts])
    with open(directory / "annotations.csv", "w", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows([["post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"], *rows])
    return directory


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    from evmodel.testing import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("encoder") / "tiny", words=WORDS, hidden=32, layers=1, heads=2, max_position=128)


@pytest.fixture
def base(corpus_dir, model_dir) -> RunSettings:
    """Run settings for a tiny, fast, single-threaded fp32 training on the test corpus."""
    s = RunSettings()
    return attrs.evolve(
        s,
        data=attrs.evolve(s.data, data_dir=str(corpus_dir), use_semantic=False, train_ratio=0.6, val_ratio=0.2, test_ratio=0.2),
        features=attrs.evolve(s.features, max_length=64, doc_stride=16, max_answer_length=30),
        model=attrs.evolve(s.model, name=str(model_dir)),
        train=attrs.evolve(
            s.train,
            epochs=2,
            batch_size=8,
            eval_batch_size=32,
            learning_rate=3e-3,
            precision="off",
            num_threads=1,
            save_state_every_steps=0,
            patience=0,
        ),
    )


@pytest.fixture
def make_search(tmp_path):
    """A factory of searches over a tiny space (lr, batch size, epochs), their folders under ``tmp_path``."""

    def make(**changes) -> SearchSettings:
        return _search(tmp_path, **changes)

    return make


def _search(tmp_path: Path, **changes) -> SearchSettings:
    values = {
        "trials": 3,
        "study": "tiny",
        "root": str(tmp_path / "search"),
        "best_output": str(tmp_path / "optuna_best"),
        "startup_trials": 2,
        "pruner": "none",
        "learning_rate_min": 1e-3,
        "learning_rate_max": 1e-2,
        "batch_size": (4, 8),
        "epochs_min": 1,
        "epochs_max": 2,
        "warmup_ratio_min": 0.0,
        "warmup_ratio_max": 0.0,
        "max_length": (64,),
        "doc_stride": (16,),
        "train_fraction": 1.0,
        "trial_max_steps": 0,
        **changes,
    }
    return SearchSettings(**values)


@pytest.fixture
def check_study():
    """Check a finished multi-worker study: exactly the requested trials finished, none lost, none run twice."""
    return _check_study


def _check_study(search, base) -> list:
    """Exactly ``search.trials`` finished; nothing left running; every trial that ran has its own run folder; returns the finished."""
    trials = load_study(search, base).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == search.trials, [(t.number, t.state.name, t.user_attrs.get(ATTR_REASON)) for t in trials]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    unrun = [t for t in trials if t.user_attrs.get(ATTR_REASON) == SURPLUS_REASON]
    ran = [t for t in trials if t not in unrun]
    # no trial lost: every one that ran is finished (nothing failed here); none ran twice: one folder and one log each
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in ran)
    folders = [t.user_attrs[ATTR_RUN_DIR] for t in ran]
    assert len(set(folders)) == len(folders)
    logs = sorted(p.parent.name for p in search.trials_dir.glob("*/train.log"))
    assert logs == sorted(str(t.number) for t in ran)
    assert not [t for t in unrun if (search.trials_dir / str(t.number)).exists()]
    return finished
