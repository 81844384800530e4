"""End to end in a real browser: headless Chromium opens the report from a file URL, runs its script,
renders the hostile posts as text, and leaves screenshots under artifacts/test-screenshots/.

Runs wherever Chromium is installed; skipped elsewhere, except under ``nox -s browser``, which installs
Debian's ``chromium`` and sets EVSPAN_BROWSER_TEST=required so a missing browser fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from report_fixtures import HOSTILE_IMG, HOSTILE_SCRIPT, POSTS, parse_report, prediction_records, runs, write_sample_run

from evtrain.report import write_report

REPO = Path(__file__).resolve().parents[3]
SCREENSHOTS = Path(os.environ.get("EVSPAN_SCREENSHOT_DIR", REPO / "artifacts" / "test-screenshots"))


def _chromium() -> str:
    found = os.environ.get("EVSPAN_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found and Path(found).exists():
        return found
    if os.environ.get("EVSPAN_BROWSER_TEST") == "required":
        pytest.fail("Chromium not found (set EVSPAN_CHROMIUM or install Debian's chromium package)")
    pytest.skip("Chromium not installed; `nox -s browser` installs it")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The sample run's report page and a browser runner with a fresh profile per call."""
    binary = _chromium()
    root = tmp_path_factory.mktemp("browser")
    run = write_sample_run(root / "sample")
    page = write_report(run=run.root)
    profiles = iter(range(1000))

    def chromium(*args: str, query: str = "") -> str:
        profile = root / f"profile-{next(profiles)}"
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            *args,
            page.resolve().as_uri() + query,
        ]
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
        return done.stdout

    return chromium


def test_browser_renders_posts_as_plain_text_and_runs_the_filter_script(report):
    dom = parse_report(report("--dump-dom"))
    assert "data-pwned" not in dom.body_attributes  # the post's <script> did not run
    assert dom.event_handlers == []  # nor did its <img onerror=...> become an element
    texts = {post.post_id: post.text for post in dom.posts}
    assert texts == POSTS  # <script>, entities, emoji and right-to-left text, character for character
    assert HOSTILE_SCRIPT in texts["p2"] and HOSTILE_IMG in texts["p2"] and "😞🙃" in texts["p2"] and "אני מרגיש" in texts["p2"]
    assert dom.texts_by_id["shown-count"] == f"{len(POSTS)} of {len(POSTS)} posts shown · 9 of 9 examples"
    for post in dom.posts:
        records = [r for r in prediction_records() if r.post_id == post.post_id]
        for k, r in enumerate(records):
            assert runs(post.pred.get(k, set())) == ([(r.start, r.end)] if r.end > r.start else [])


def test_browser_filter_from_query_string_hides_other_posts_and_their_marks(report):
    dom = parse_report(report("--dump-dom", query="?outcome=missed"))
    assert dom.texts_by_id["shown-count"] == f"1 of {len(POSTS)} posts shown · 1 of 9 examples"
    assert [p.post_id for p in dom.posts if not p.hidden] == ["p2"]
    (p2,) = (p for p in dom.posts if p.post_id == "p2")
    assert [row.get("hidden") is not None for row in p2.rows] == [True, True, False]
    for classes, gold, _pred in p2.mark_classes:
        shown = classes.split()
        # Only example 2 (the missed SLEEP_ISSUES evidence) keeps its marks.
        assert ("g" in shown) == ("2" in gold.split())
        assert "p" not in shown


def test_browser_screenshots(report):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # Headless Chromium paints only the top of the page into a screenshot (scrolling to an anchor
    # leaves it blank), so the posts are captured with a window as tall as the whole sample page.
    shots = {"report_overview.png": "1280,2000", "report_full_page.png": "1280,4000"}
    for name, size in shots.items():
        target = SCREENSHOTS / name
        target.unlink(missing_ok=True)
        report(f"--screenshot={target}", f"--window-size={size}")
        data = target.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 20_000, f"{target} is not a plausible screenshot"
