"""Bad input through the command line: each case is a short ``error: ...`` message and exit code 2, never a traceback.

The commands run through invoke's own ``Program`` (the object behind ``python -m invoke``) inside
this process, so torch is imported once and the file stays fast; training the one shared tiny run
and the 100,000-word prediction (which measures peak memory) run in real subprocesses. Everything
happens in a scratch folder holding a copy of settings.toml, so no run lands in the repository.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUN = "run"  # the shared tiny run, relative to the scratch folder
TRAIN_FLAGS = [
    "--set", "data.use_semantic=false", "--set", "data.train_ratio=0.5", "--set", "data.val_ratio=0.25", "--set", "data.test_ratio=0.25",
    "--set", "features.max_length=64", "--set", "features.doc_stride=16", "--set", 'train.precision="off"', "--set", "train.batch_size=8",
    # One thread: the CI box is shared; "empty" mode asks one question per post, so the 100,000-word post stays quick.
    "--set", "train.num_threads=1", "--set", 'data.question_mode="empty"',
]  # fmt: skip
MAX_ERROR_LINES = 24  # one screen
HUGE_WORDS = 100_000
PEAK_GROWTH_LIMIT_MB = 200  # measured: ~90 MB for the 100,000-word post on a 2-core Linux box


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Scratch folder with settings.toml, a tiny corpus, a tiny encoder and one tiny trained run."""
    from evtrain_fixtures import EVIDENCE, FILLER, write_tiny_corpus

    from evmodel.testing import make_tiny_bert

    base = tmp_path_factory.mktemp("errors")
    shutil.copy(ROOT / "settings.toml", base / "settings.toml")
    write_tiny_corpus(base / "corpus")
    words = sorted({w.strip(".,").lower() for t in FILLER + [s for v in EVIDENCE.values() for s in v] for w in t.split()})
    make_tiny_bert(base / "model", words=words)
    train = [sys.executable, "-m", "invoke", "--search-root", str(ROOT), "train", "--epochs", "1", "--max-steps", "2", "--output", RUN]
    out = subprocess.run(
        [*train, "--data-dir", "corpus", "--model", "model", *TRAIN_FLAGS], cwd=base, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return base


@pytest.fixture(autouse=True)
def _in_workdir(workdir: Path, monkeypatch: pytest.MonkeyPatch):
    """Run each command from the scratch folder; restore torch's thread count the run's settings change."""
    import torch

    threads = torch.get_num_threads()
    monkeypatch.chdir(workdir)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """``cli("train", ...)`` -> (exit code, stdout, stderr), as ``invoke train ...`` would give them."""
    from invoke.main import program

    def run(*args: str | Path) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            program.run(["invoke", "--search-root", str(ROOT), *map(str, args)])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def assert_clear_failure(result: tuple[int, str, str], *needles: str) -> str:
    """Exit code 2, one ``error:`` message of at most a screen, no traceback; returns the message."""
    code, out, err = result
    assert code == 2, f"exit code {code}\n{out}\n{err}"
    assert "Traceback" not in out + err
    assert err.startswith("error: "), err
    assert len(err.splitlines()) <= MAX_ERROR_LINES and len(err) < 3000, err
    for needle in needles:
        assert needle in err, f"{needle!r} not in:\n{err}"
    return err


def copy_run(workdir: Path, name: str) -> Path:
    target = workdir / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(workdir / RUN, target)
    return target


# --- models and runs -----------------------------------------------------------------------------------------


def test_unknown_model_name(cli) -> None:
    err = assert_clear_failure(
        cli("train", "--model", "nope", "--set", "data.use_semantic=false", "--data-dir", "corpus"), "model 'nope' not found"
    )
    # What was tried, and how to fix it.
    for tried in ("alias", "local directory", "hub cache", "Fix:"):
        assert tried in err


@pytest.mark.parametrize(
    ("name", "needle"),
    [
        ("someone/not-a-model", "hub cache: someone/not-a-model not in"),
        ("corpus", "has no config.json, so it is not a model directory"),
        ("settings.toml", "is a file; pass the model directory"),
    ],
)
def test_model_name_that_is_no_model(cli, name: str, needle: str) -> None:
    assert_clear_failure(cli("train", "--model", name, "--set", "data.use_semantic=false", "--data-dir", "corpus"), needle)


def _truncate(weights: Path) -> None:
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])


def _header_length_past_the_end(weights: Path) -> None:
    data = weights.read_bytes()
    weights.write_bytes(struct.pack("<Q", 2**40) + data[8:])


def _edit_config(**changes: object) -> Callable[[Path], None]:
    def edit(weights: Path) -> None:
        config = weights.parent / "config.json"
        config.write_text(json.dumps({**json.loads(config.read_text()), **changes}))

    return edit


@pytest.mark.parametrize(
    ("corrupt", "needles"),
    [
        (_truncate, ("model.safetensors", "corrupt or truncated")),
        (lambda w: w.write_bytes(b""), ("model.safetensors", "corrupt or truncated")),
        (lambda w: w.write_bytes(b"\0" * 4096), ("model.safetensors", "corrupt or truncated")),
        (_header_length_past_the_end, ("model.safetensors", "corrupt or truncated")),
        # Well-formed safetensors of another model: the tiny encoder (no QA head, a pooler).
        (lambda w: shutil.copy(Path("model") / "model.safetensors", w), ("model.safetensors", "does not match", "missing")),
        # config.json edited: sizes that disagree with the weights must not be allocated (1e9 x 32 floats).
        (_edit_config(max_position_embeddings=10**9), ("model.safetensors", "shapes do not match config.json", "position_embeddings")),
        (_edit_config(hidden_size=30, num_attention_heads=4), ("config.json", "cannot build a model")),
        (_edit_config(hidden_size="wide"), ("config.json", "hidden_size")),
    ],
    ids=["truncated", "empty", "zeros", "header-length", "other-model", "config-positions", "config-heads", "config-type"],
)
def test_corrupt_model_in_a_run(cli, workdir: Path, corrupt: Callable[[Path], None], needles: tuple[str, ...]) -> None:
    run = copy_run(workdir, "corrupt")
    corrupt(run / "model" / "model.safetensors")
    assert_clear_failure(cli("evaluate", "--run", run), *needles)


@pytest.mark.parametrize(
    ("remove", "command", "needle"),
    [
        ("model", "evaluate", "a run directory without a model (no model/ folder)"),
        ("model", "predict", "a run directory without a model (no model/ folder)"),
        ("model/model.safetensors", "evaluate", "no model.safetensors"),
    ],
)
def test_run_directory_without_a_model(cli, workdir: Path, remove: str, command: str, needle: str) -> None:
    run = copy_run(workdir, "no_model")
    target = run / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    (workdir / "post.txt").write_text("I have no energy to get out of bed.")
    extra = ["--input", "post.txt"] if command == "predict" else []
    assert_clear_failure(cli(command, "--run", run, *extra), str(run), needle)


# --- settings and data ---------------------------------------------------------------------------------------


def test_settings_problems_are_listed_at_once_naming_section_key(cli) -> None:
    overrides = [
        "features.max_length=64",
        "features.doc_stride=40",  # cross-field: must be under half of max_length
        "data.train_ratio=0.7",
        "data.val_ratio=0.2",
        "data.test_ratio=0.2",  # cross-field: the ratios sum to 1.1
        "model.dropout=1.5",
        "train.lerning_rate=1",
        'train.epochs="x"',
        "train.batch_size=0",
    ]
    err = assert_clear_failure(cli("train", "--data-dir", "corpus", *[a for o in overrides for a in ("--set", o)]))
    expected = [
        "data.train_ratio + val_ratio + test_ratio: must sum to 1, got 1.1",
        "features.doc_stride: must be less than half of max_length (64), got 40",
        "model.dropout: must be < 1, got 1.5",
        "train.lerning_rate: unknown key",
        "train.epochs: ",
        "train.batch_size: must be >= 1, got 0",
    ]
    problems = [line.removeprefix("  - ") for line in err.splitlines() if line.startswith("  - ")]
    for want in expected:
        assert sum(p.startswith(want) for p in problems) == 1, f"{want!r} not listed exactly once:\n{err}"
    # Each problem once, and none about a value the user did not give.
    assert len(problems) == len(expected), err


@pytest.mark.parametrize(
    ("files", "needle"),
    [
        (["posts.csv"], "no annotations file found; looked for annotations.csv, redsm5_annotations.csv"),
        ([], "no posts file found; looked for posts.csv, posts.jsonl, redsm5_posts.csv, redsm5_posts.jsonl"),
        (None, "data directory not found"),
        (["posts.csv", "redsm5_posts.csv", "annotations.csv"], "more than one posts file"),
    ],
    ids=["no-annotations", "empty-dir", "no-dir", "two-posts-files"],
)
def test_data_dir_missing_files(cli, workdir: Path, files: list[str] | None, needle: str) -> None:
    data = workdir / f"data_{len(files) if files is not None else 'none'}"
    if files is not None:
        data.mkdir(exist_ok=True)
        for name in files:
            shutil.copy(workdir / "corpus" / ("posts.csv" if "posts" in name else "annotations.csv"), data / name)
    assert_clear_failure(cli("train", "--data-dir", data, "--model", "model", "--set", "data.use_semantic=false"), str(data), needle)


# --- predict -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "needle"),
    [
        ("empty.txt", b"", "holds no text"),
        ("blank.txt", b"  \n\t\r\n", "holds no text"),
        ("empty.csv", b"", "file is empty"),
        ("header_only.csv", b"post_id,text\n", "no records"),
        ("blank.jsonl", b"\n\n", "file is empty"),
        ("latin1.txt", "I feel tired.\nCafé".encode("latin-1"), "line 2, column byte 4: not valid UTF-8"),
        ("missing.txt", None, "input file not found"),
    ],
)
def test_predict_on_empty_or_unreadable_input(cli, workdir: Path, name: str, content: bytes | None, needle: str) -> None:
    path = workdir / "inputs" / name
    path.parent.mkdir(exist_ok=True)
    if content is not None:
        path.write_bytes(content)
    assert_clear_failure(cli("predict", "--run", RUN, "--input", path), str(path), needle)


def test_predict_answers_every_post_including_ones_without_text(cli, workdir: Path) -> None:
    text = "My sister called me on Sunday. I have no energy to get out of bed."
    source = workdir / "inputs" / "some_empty.csv"
    source.parent.mkdir(exist_ok=True)
    source.write_text(f'post_id,text\np1,{text}\np2,\np3,"  \n "\n', encoding="utf-8")
    output = workdir / "some_empty.json"
    code, out, err = cli("predict", "--run", RUN, "--input", source, "--output", output)
    assert code == 0, out + err
    assert "2 post(s) with no text" in out
    records = json.loads(output.read_text())
    assert [r["post_id"] for r in records] == ["p1", "p2", "p3"]  # input order, nothing dropped
    assert text[records[0]["start"] : records[0]["end"]] == records[0]["prediction_text"] != ""
    for empty in records[1:]:
        assert (empty["note"], empty["score"], empty["prediction_text"], empty["windows"]) == ("empty post", None, "", 0)


def test_predict_on_a_100000_word_post_is_valid_and_memory_bounded(workdir: Path) -> None:
    """A plain-text post of 100,000 words: one valid record, windows scored in batches, peak memory grows modestly."""
    from evtrain_fixtures import EVIDENCE, FILLER

    pool = " ".join(FILLER + [s for v in EVIDENCE.values() for s in v]).split()
    huge = workdir / "inputs" / "huge.txt"
    huge.parent.mkdir(exist_ok=True)
    huge.write_text(" ".join(pool[i % len(pool)] for i in range(HUGE_WORDS)), encoding="utf-8")
    small = workdir / "inputs" / "small.txt"
    small.write_text("I have no energy to get out of bed.", encoding="utf-8")
    # One process predicts the small post first (imports, model, tokenizer: the baseline), then the huge one.
    script = textwrap.dedent(
        """
        import resource, sys
        from invoke.main import program
        unit = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
        for name in sys.argv[2:]:
            program.run(["invoke", "--search-root", sys.argv[1], "predict", "--run", "run", "--input", name, "--output", name + ".json"])
            print("PEAK_MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / unit)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(ROOT), str(small), str(huge)], cwd=workdir, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Traceback" not in out.stderr
    baseline, peak = (float(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("PEAK_MB"))
    records = json.loads(Path(f"{huge}.json").read_text())
    text = huge.read_text(encoding="utf-8")
    assert len(records) == 1 and records[0]["post_id"] == "huge"
    record = records[0]
    assert record["windows"] > 1000  # 64-token windows over ~100,000 tokens
    assert 0 <= record["start"] < record["end"] <= len(text)
    assert text[record["start"] : record["end"]] == record["prediction_text"]
    assert peak - baseline < PEAK_GROWTH_LIMIT_MB, f"peak RSS grew {peak - baseline:.0f} MB (baseline {baseline:.0f} MB)"
