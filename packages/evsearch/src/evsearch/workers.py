"""``--workers N``: N processes on this machine, each loading the dataset and running the worker loop on one study."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import optuna

from evsearch.dataset import load_search_dataset, subsample_train
from evsearch.objective import TrialContext, TrialOutcome
from evsearch.settings import SearchSettings
from evsearch.storage import is_server_storage
from evsearch.study import SearchError, SearchInterrupted, load_study, run_worker
from evtrain.errors import TrainingInterrupted
from evtrain.settings import RunSettings

EXIT_DONE, EXIT_ERROR, EXIT_INTERRUPTED, EXIT_TOO_MANY_FAILURES = 0, 1, 130, 3


def threads_per_worker(base: RunSettings, workers: int) -> int:
    """torch threads for each of ``workers`` processes: the [train] setting, or the physical cores shared out."""
    if base.train.num_threads:
        return base.train.num_threads
    import psutil

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return max(1, cores // workers)


def sampler_salt(search: SearchSettings, index: int) -> str:
    """What makes workers' samplers differ: their index, and the host when a database server is shared by machines."""
    return f"{socket.gethostname()}:{index}" if is_server_storage(search) else str(index)


def describe_outcome(outcome: TrialOutcome) -> str:
    """One line per finished trial."""
    from evsearch.output import format_duration

    value = f" val F1 {outcome.value:.2f}" if outcome.value is not None else ""
    reason = f": {outcome.reason}" if outcome.reason else ""
    return f"trial {outcome.number} {outcome.state.name}{value} ({format_duration(outcome.seconds)}){reason}"


def worker_main(search: SearchSettings, base: RunSettings, index: int, threads: int, poll_seconds: float, cache_dir: str | None) -> None:
    """Entry point of one worker process (spawned): load the study and the dataset, run trials, exit with a status code."""
    # SIGTERM ends the current trial as interrupted, as Ctrl-C does (evtrain handles both during training).
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    prefix = f"[worker {index}]"
    try:
        study = load_study(search, base)
        dataset = subsample_train(load_search_dataset(base, cache_dir), search.train_fraction, search.sampler_seed)
        context = TrialContext(search, base, dataset, search.trials_dir, threads=threads)
        run_worker(
            study,
            context,
            search.trials,
            salt=sampler_salt(search, index),
            poll_seconds=poll_seconds,
            on_outcome=lambda o: print(f"{prefix} {describe_outcome(o)}", flush=True),
        )
    except (KeyboardInterrupt, TrainingInterrupted):
        print(f"{prefix} interrupted: its trial is recorded as failed (interrupted)", flush=True)
        sys.exit(EXIT_INTERRUPTED)
    except SearchError as exc:
        print(f"{prefix} stopped: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_TOO_MANY_FAILURES)
    except Exception as exc:
        print(f"{prefix} failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_DONE)


def run_worker_processes(
    search: SearchSettings, base: RunSettings, *, poll_seconds: float = 2.0, cache_dir: str | Path | None = None
) -> None:
    """Start ``search.workers`` processes on the study and wait for all of them.

    Ctrl-C reaches every worker (same process group); each records its trial as interrupted and
    exits. Raises ``SearchInterrupted`` if any worker was interrupted and ``SearchError`` if any
    failed.
    """
    ctx = multiprocessing.get_context("spawn")
    threads = threads_per_worker(base, search.workers)
    procs = [
        ctx.Process(
            target=worker_main,
            args=(search, base, i, threads, poll_seconds, str(cache_dir) if cache_dir else None),
            name=f"evsearch-worker-{i}",
            daemon=False,
        )
        for i in range(search.workers)
    ]
    for p in procs:
        p.start()
    # SIGTERM to this process stops the workers the way Ctrl-C does, instead of orphaning them.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if threading.current_thread() is threading.main_thread() else None
    try:
        _join(procs)
    except KeyboardInterrupt:
        # A terminal Ctrl-C reached the workers too (they need a few seconds to record their trials);
        # a signal sent to this process alone is passed on.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline and any(p.is_alive() for p in procs):
            time.sleep(0.1)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        try:
            _join(procs)
        except KeyboardInterrupt:
            for p in procs:
                p.terminate()
            _join(procs)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    codes = [p.exitcode for p in procs]
    if any(c in (EXIT_INTERRUPTED, -signal.SIGINT, -signal.SIGTERM) for c in codes):
        raise SearchInterrupted("interrupted: the running trials are recorded as failed (interrupted)")
    bad = [(i, c) for i, c in enumerate(codes) if c != EXIT_DONE]
    if bad:
        raise SearchError(
            "worker(s) stopped early: " + ", ".join(f"worker {i} exit code {c}" for i, c in bad) + " (their messages are above)"
        )


def _join(procs: list[multiprocessing.process.BaseProcess]) -> None:
    for p in procs:
        p.join()
