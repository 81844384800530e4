"""The alignment report: one JSON object per annotation row, in file order (DESIGN.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from evdata.align import AlignmentResult
from evdata.atomic import atomic_write_json


def alignment_report(result: AlignmentResult) -> list[dict[str, Any]]:
    """Report rows: post_id, sentence_id, symptom, status, method, start, end, score, line, note, reason, runner_up_*.

    ``start``/``end`` are ``None`` for an unaligned row; scores are rounded to 4 decimals. Rows of the
    fuzzy and similarity steps, aligned or not, also carry the runner-up candidate (``runner_up_text``,
    ``runner_up_start``, ``runner_up_end``, ``runner_up_score``; ``None`` when the post had no other
    candidate) and ``reason``: the scores, thresholds and margin behind the decision.
    """
    rows: list[dict[str, Any]] = []
    for alignment in result.alignments:
        a = alignment.annotation
        span = alignment.span
        runner_up = alignment.runner_up
        rows.append(
            {
                "post_id": a.post_id,
                "sentence_id": a.sentence_id,
                "symptom": a.symptom,
                "status": a.status,
                "method": alignment.method,
                "start": span.start if span is not None else None,
                "end": span.end if span is not None else None,
                "score": round(float(alignment.score), 4),
                "line": a.line,
                "note": alignment.note,
                "reason": alignment.reason,
                "runner_up_text": alignment.runner_up_text if runner_up is not None else None,
                "runner_up_start": runner_up.start if runner_up is not None else None,
                "runner_up_end": runner_up.end if runner_up is not None else None,
                "runner_up_score": round(float(runner_up.score), 4) if runner_up is not None else None,
            }
        )
    return rows


def write_alignment_report(path: str | Path, result: AlignmentResult) -> Path:
    """Write the alignment report as a JSON list to ``path`` (atomically); returns the path."""
    return atomic_write_json(path, alignment_report(result))
