"""The command-line contract, driven through invoke exactly as a user types it (tiny encoder, tiny corpus)."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """Run a task of ROOT's tasks.py in ``cwd`` (a scratch folder: runs, caches and ``latest`` land there, never in the repository)."""
    cmd = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_list_is_instant_and_complete():
    out = invoke("--list")
    assert out.returncode == 0, out.stderr
    for name in ("data", "train", "evaluate", "predict"):
        assert name in out.stdout


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from evtrain_fixtures import EVIDENCE, FILLER, write_tiny_corpus  # evtrain's test helpers

    from evmodel.testing import make_tiny_bert

    base = tmp_path_factory.mktemp("cli")
    shutil.copy(ROOT / "settings.toml", base / "settings.toml")
    corpus = write_tiny_corpus(base / "corpus")
    words = sorted({w.strip(".,").lower() for t in FILLER + [s for v in EVIDENCE.values() for s in v] for w in t.split()})
    model = make_tiny_bert(base / "model", words=words)
    return base, corpus, model


def _in(base: Path):
    """``invoke`` run in the scratch folder ``base``."""
    return lambda *args: invoke(*args, cwd=base)


def _common(corpus: Path, model: Path) -> list[str]:
    return [
        "--data-dir", str(corpus), "--model", str(model),
        "--set", "data.use_semantic=false", "--set", "data.train_ratio=0.5", "--set", "data.val_ratio=0.25", "--set", "data.test_ratio=0.25",
        "--set", "features.max_length=64", "--set", "features.doc_stride=16", "--set", "train.precision=\"off\"", "--set", "train.batch_size=8",
    ]  # fmt: skip


def test_train_evaluate_predict_through_invoke(tiny):
    base, corpus, model = tiny
    cli = _in(base)
    run = base / "run"
    out = cli("train", "--epochs", "1", "--output", str(run), "--max-steps", "4", *_common(corpus, model))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Scores" in out.stdout and (run / "model" / "model.safetensors").is_file()
    recorded = json.loads((run / "metrics.json").read_text())["test"]

    out = cli("evaluate", "--run", str(run), "--split", "test")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((run / "metrics_test.json").read_text())["f1"] == recorded["f1"]
    assert "yes" in out.stdout
    # --set changes how the saved model runs, never what it is scored on.
    out = cli("evaluate", "--run", str(run), "--split", "test", "--set", "train.eval_batch_size=3", "--set", 'train.device="cpu"')
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads((run / "metrics_test.json").read_text())["f1"] == recorded["f1"]
    out = cli("evaluate", "--run", str(run), "--set", "features.max_length=32", "--set", "data.test_ratio=0.5")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "features.max_length: evaluate and predict use the run's saved value" in out.stderr
    assert "data.test_ratio: evaluate and predict use the run's saved value" in out.stderr

    post = base / "post.txt"
    post.write_text("I have no energy to get out of bed. The weather here is cold and rainy.")
    out = cli("predict", "--run", str(run), "--input", str(post), "--output", str(base / "pred.json"), "--set", "train.eval_batch_size=2")
    assert out.returncode == 0, out.stdout + out.stderr
    assert len(json.loads((base / "pred.json").read_text())) == 9
    out = cli("predict", "--run", str(run), "--input", str(post), "--set", "features.doc_stride=8")
    assert out.returncode == 2 and "features.doc_stride: evaluate and predict use the run's saved value" in out.stderr


def test_bad_setting_is_one_line_per_problem(tiny):
    base, corpus, _ = tiny
    out = _in(base)(
        "train", "--data-dir", str(corpus), "--set", "train.lerning_rate=1", "--set", "features.doc_stride=999", "--set", 'train.epochs="x"'
    )
    assert out.returncode == 2
    assert "train.lerning_rate: unknown key" in out.stderr
    assert "features.doc_stride" in out.stderr
    assert "train.epochs" in out.stderr
    assert "Traceback" not in out.stderr


def test_data_task_writes_report(tiny, tmp_path):
    base, corpus, _ = tiny
    cli = _in(base)
    report = tmp_path / "report.json"
    out = cli("data", "--data-dir", str(corpus), "--report", str(report), "--set", "data.use_semantic=false")
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads(report.read_text())
    n_rows = len((corpus / "annotations.csv").read_text().splitlines()) - 1
    assert len(rows) == n_rows
    assert {"post_id", "sentence_id", "symptom", "status", "method", "start", "end", "score"} <= set(rows[0])
