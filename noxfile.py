"""Test sessions: one per package (in an environment holding only it and its declared dependencies),
integration (root tests/), lint. ``nox`` runs them all; ``nox -s evdata -- -k split`` forwards to pytest."""

from __future__ import annotations

import glob
import sys
from pathlib import Path

import nox

# uv creates environments and installs in seconds (hard links from its cache); plain venv + pip otherwise.
nox.options.default_venv_backend = "uv|venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

# Every install is constrained to the set CI tests (pip freeze of a bootstrapped .venv); the packages'
# pyproject.toml files hold the ranges. An absolute path: uv and pip resolve it the same from any folder.
CONSTRAINTS = ("-c", str(Path(__file__).resolve().parent / "constraints.txt"))

TORCH = "torch==2.13.0"  # the CPU build this machine provides; keeps nox from pulling a CUDA build
# pip finds that CPU build through the machine's pip configuration; uv ignores it, so name the file.
_TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
LOCAL_TORCH = sorted(glob.glob(f"/opt/wheels/torch-2.13.0+cpu-{_TAG}-*.whl"))


def _install_torch(session: nox.Session) -> None:
    """torch 2.13.0, CPU build: the local wheel where one lies on disk, else the index (pip's config decides)."""
    if LOCAL_TORCH and session.venv_backend == "uv":
        session.install(LOCAL_TORCH[-1], *CONSTRAINTS)
    else:
        session.install(TORCH, *CONSTRAINTS)


# Each package with the local siblings it depends on (installed from their folders, never from an index).
CHAINS = {
    "evdata": ["evdata"],
    "evfeatures": ["evdata", "evfeatures"],
    "evmodel": ["evdata", "evmodel"],
    "evtrain": ["evdata", "evfeatures", "evmodel", "evtrain"],
    "evsearch": ["evdata", "evfeatures", "evmodel", "evtrain", "evsearch"],
}


def _install_and_test(
    session: nox.Session,
    package: str,
    *,
    torch: bool = True,
    tests: str | None = None,
    extra: tuple[str, ...] = (),
    more_tests: tuple[str, ...] = (),
) -> None:
    """Install ``package`` (with [test]) and its sibling chain, then run pytest on its tests."""
    if torch:
        _install_torch(session)
    chain = CHAINS[package]
    args = []
    for name in chain:
        args += ["-e", f"packages/{name}[test]" if name == package else f"packages/{name}"]
    session.install(*args, *extra, *CONSTRAINTS)
    session.env.setdefault("HYPOTHESIS_PROFILE", "ci")
    session.run("pytest", tests or f"packages/{package}/tests", *more_tests, "-q", *session.posargs)


@nox.session
def evdata(session: nox.Session) -> None:
    """evdata alone, with no torch installed (proves the data layer is torch-free)."""
    _install_and_test(session, "evdata", torch=False)
    session.run("python", "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)")


@nox.session
def evfeatures(session: nox.Session) -> None:
    _install_and_test(session, "evfeatures")


@nox.session
def evmodel(session: nox.Session) -> None:
    _install_and_test(session, "evmodel")


@nox.session
def evtrain(session: nox.Session) -> None:
    # the bench extra (accelerate) is needed by the benchmark's tests
    _install_and_test(session, "evtrain", extra=("-e", "packages/evtrain[test,bench]"))


@nox.session
def evsearch(session: nox.Session) -> None:
    _install_and_test(session, "evsearch")


@nox.session
def integration(session: nox.Session) -> None:
    """Root tests/: end-to-end pipeline and properties that span packages.

    Also the paraphrase-set figures of evdata's alignment with the real encoder (evmodel), which evdata's
    own session, installed without torch, skips.
    """
    _install_and_test(
        session,
        "evsearch",
        tests="tests",
        extra=("-e", "packages/evtrain[test,bench]", "invoke>=2.2"),
        more_tests=("packages/evdata/tests/test_evdata_paraphrase_set.py",),
    )


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.6", *CONSTRAINTS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


CHROMIUM = "/usr/bin/chromium"


@nox.session
def browser(session: nox.Session) -> None:
    """The report page in headless Chromium (Debian's package, installed here when missing); screenshots go
    to artifacts/test-screenshots/."""
    import os
    import shutil

    if not os.path.exists(CHROMIUM):
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run(*sudo, "apt-get", "update", external=True, env=env)
        session.run(*sudo, "apt-get", "install", "-y", "--no-install-recommends", "chromium", external=True, env=env)
    session.env["EVSPAN_CHROMIUM"] = shutil.which("chromium") or CHROMIUM
    session.env["EVSPAN_BROWSER_TEST"] = "required"  # a missing browser fails here instead of skipping
    _install_and_test(session, "evtrain", tests="packages/evtrain/tests/test_evtrain_report_browser.py")


def _postgres_bin() -> str | None:
    """Folder of initdb/pg_ctl: Debian's /usr/lib/postgresql/<version>/bin (newest first), else PATH."""
    import glob
    import os
    import shutil

    def version(folder: str) -> int:
        name = folder.split("/")[-2]
        return int(name) if name.isdigit() else 0

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if os.path.isfile(os.path.join(folder, "initdb")) and os.path.isfile(os.path.join(folder, "pg_ctl")):
            return folder
    found = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(found)) if found and shutil.which("pg_ctl") else None


@nox.session
def postgres(session: nox.Session) -> None:
    """evsearch against a real PostgreSQL server (Debian's package, installed here when missing): two worker
    processes on one study. The test starts the server on 127.0.0.1 in a temporary folder and stops it;
    the run is bounded (SIGINT after 15 minutes, so the server is still stopped)."""
    import os

    if _postgres_bin() is None:
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run(*sudo, "apt-get", "update", external=True, env=env)
        session.run(*sudo, "apt-get", "install", "-y", "--no-install-recommends", "postgresql", external=True, env=env)
    _install_torch(session)
    chain = [f"packages/{name}[test,postgres]" if name == "evsearch" else f"packages/{name}" for name in CHAINS["evsearch"]]
    session.install(*[arg for path in chain for arg in ("-e", path)], *CONSTRAINTS)
    session.env.setdefault("HYPOTHESIS_PROFILE", "ci")
    session.env["EVSEARCH_REQUIRE_POSTGRES"] = "1"  # a missing server or driver fails here instead of skipping
    session.env["EVSEARCH_POSTGRES_BIN"] = _postgres_bin() or ""
    pytest = os.path.join(session.bin, "pytest")
    test = "packages/evsearch/tests/test_evsearch_postgres.py"
    session.run("timeout", "--signal=INT", "--kill-after=60", "900", pytest, test, "-q", *session.posargs, external=True)
