"""Start/end logits -> character spans: the best answer per example over all of its windows.

For every window the ``n_best_size`` highest start and end logits are candidates (ties: the
earlier position first); a pair is valid when both tokens are context tokens, ``end >= start`` and
the span is at most ``max_answer_length`` tokens; its score is the sum of the two logits (float32).
An example's answer is its best valid pair over all its windows, ties broken by the earlier window,
then the earlier start token, then the earlier end token; the text is ``context[start:end]`` from
the tokens' character offsets.

An example none of whose windows has a valid pair gets ``text=""``, ``start=end=0`` and
``score=-inf``, so callers can tell "no answer found" from a real answer.

``decode`` does this with tensor operations over all windows at once; ``decode_reference`` is the
plain loop over windows and candidate pairs that it must agree with exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import numpy as np
import torch

from evdata.records import QAExample
from evfeatures.settings import FeatureSettings
from evfeatures.windows import Windows

NO_SCORE = float("-inf")

# Windows are decoded in blocks so the [block, n, n] candidate grids stay small in memory.
_BLOCK_WINDOWS = 2048

NBestEntry = tuple[str, int, int, float]


@attrs.frozen
class Prediction:
    """The decoded answer of one example: character span ``[start, end)`` of its context and its score.

    ``score`` is ``-inf`` (with ``text == ""``, ``start == end == 0``) when no window held a valid
    span. ``nbest`` lists up to the requested number of distinct spans as ``(text, start, end, score)``,
    best first; the first entry is the answer itself.
    """

    example_id: str
    post_id: str
    question: str
    text: str
    start: int
    end: int
    score: float
    symptom: str = ""
    nbest: tuple[NBestEntry, ...] = ()


def _prediction(example: QAExample, span: tuple[int, int] | None, score: float, nbest: tuple[NBestEntry, ...] = ()) -> Prediction:
    start, end = span if span is not None else (0, 0)
    return Prediction(
        example_id=example.id,
        post_id=example.post_id,
        question=example.question,
        text=example.context[start:end],
        start=start,
        end=end,
        score=score if span is not None else NO_SCORE,
        symptom=example.symptom,
        nbest=nbest,
    )


def _checked_logits(
    examples: Sequence[QAExample], windows: Windows, start_logits: torch.Tensor, end_logits: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate shapes and values; return float32 copies with ``-inf`` beyond each window's length."""
    logits = []
    for name, value in (("start_logits", start_logits), ("end_logits", end_logits)):
        tensor = torch.as_tensor(value).detach().to("cpu", torch.float32)
        if tensor.dim() != 2 or tensor.shape[0] != len(windows):
            raise ValueError(f"{name}: expected shape [windows={len(windows)}, length], got {list(tensor.shape)}")
        logits.append(tensor)
    starts, ends = logits
    if starts.shape != ends.shape:
        raise ValueError(f"start_logits {list(starts.shape)} and end_logits {list(ends.shape)} differ in shape")
    if len(windows) == 0:
        return starts, ends
    longest = int(windows.lengths.max())
    if starts.shape[1] < longest:
        raise ValueError(f"logits have {starts.shape[1]} positions but the longest window has {longest} tokens")
    bad = (windows.example_index < 0) | (windows.example_index >= len(examples))
    if bad.any():
        raise ValueError(f"window {int(np.flatnonzero(bad)[0])} refers to an example outside the {len(examples)} given")
    real = torch.arange(starts.shape[1])[None, :] < torch.from_numpy(windows.lengths)[:, None]
    for name, tensor in (("start_logits", starts), ("end_logits", ends)):
        finite = torch.isfinite(tensor) | ~real
        if not bool(finite.all()):
            w = int((~finite).any(dim=1).nonzero()[0, 0])
            raise ValueError(f"{name}: window {w} holds NaN or infinite logits within its length")
    return starts.masked_fill(~real, NO_SCORE), ends.masked_fill(~real, NO_SCORE)


def _top(logits: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``n`` largest values per row and their positions (in position order); at a tie, earlier positions win.

    ``torch.topk`` returns the right values but picks arbitrarily among equal ones, so it only
    sets the threshold: every value above it is taken, then the earliest values equal to it
    until the row has ``n``. (A stable sort does the same but is several times slower.)
    """
    threshold = torch.topk(logits, n, dim=1).values[:, -1:]
    above = logits > threshold
    equal = logits == threshold
    room = n - above.sum(dim=1, keepdim=True)
    chosen = above | (equal & (torch.cumsum(equal, dim=1) <= room))
    positions = chosen.nonzero()[:, 1].view(logits.shape[0], n)
    return torch.gather(logits, 1, positions), positions


def _char_offsets(positions: torch.Tensor, flat: torch.Tensor, base: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Offsets ``[..., 2]`` of token ``positions`` per window; ``(-1, -1)`` beyond the window's length."""
    real = positions < lengths[:, None]
    # Row ``len(flat) - 1`` of ``flat`` is a (-1, -1) sentinel for positions past a window's end.
    rows = torch.where(real, base[:, None] + positions, flat.shape[0] - 1)
    return flat[rows]


def _nbest_candidates(
    score: torch.Tensor, valid: torch.Tensor, s_idx: torch.Tensor, e_idx: torch.Tensor, s_off: torch.Tensor, e_off: torch.Tensor, keep: int
) -> dict[str, np.ndarray]:
    """Valid candidates of a block of windows, reduced to each window's ``keep`` best distinct character spans.

    A span in an example's global top ``keep`` (after removing repeated spans) is also among the
    ``keep`` best distinct spans of its own window, so this reduction loses nothing.
    """
    w, i, j = valid.nonzero(as_tuple=True)
    cand = {
        "window": w.numpy(),
        "score": score[w, i, j].numpy(),
        "s_tok": s_idx[w, i].numpy(),
        "e_tok": e_idx[w, j].numpy(),
        "s_char": s_off[w, i, 0].numpy(),
        "e_char": e_off[w, j, 1].numpy(),
    }
    order = np.lexsort((cand["e_tok"], cand["s_tok"], -cand["score"].astype(np.float64), cand["window"]))
    cand = {k: v[order] for k, v in cand.items()}
    cand = _first_per_key(cand, ("window", "s_char", "e_char"))
    return _head_per_group(cand, "window", keep)


def _first_per_key(cand: dict[str, np.ndarray], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Keep the first row (in current order) of each distinct value of ``keys``."""
    if cand["score"].size == 0:
        return cand
    stacked = np.stack([cand[k] for k in keys], axis=1)
    _, first = np.unique(stacked, axis=0, return_index=True)
    first.sort()
    return {k: v[first] for k, v in cand.items()}


def _head_per_group(cand: dict[str, np.ndarray], group: str, keep: int) -> dict[str, np.ndarray]:
    """Keep the first ``keep`` rows of each run of equal ``group`` values (rows are grouped already)."""
    groups = cand[group]
    rank = np.arange(groups.size) - np.searchsorted(groups, groups, side="left")
    mask = rank < keep
    return {k: v[mask] for k, v in cand.items()}


def decode(
    examples: Sequence[QAExample],
    windows: Windows,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    settings: FeatureSettings,
    *,
    nbest: int = 0,
) -> list[Prediction]:
    """Best answer span per example from ``[W, L]`` start/end logits (float32 or bf16), vectorised over windows.

    Positions at or beyond a window's length are ignored. With ``nbest > 0`` each prediction also
    carries up to ``nbest`` distinct spans (see ``Prediction``). Gives exactly what
    ``decode_reference`` gives on the same input.
    """
    if nbest < 0:
        raise ValueError(f"nbest must be >= 0, got {nbest}")
    starts, ends = _checked_logits(examples, windows, start_logits, end_logits)
    n_windows, width = starts.shape
    if n_windows == 0:
        return [_prediction(example, None, NO_SCORE) for example in examples]
    n = min(settings.n_best_size, width)
    lengths = torch.from_numpy(windows.lengths)
    base = torch.cumsum(lengths, 0) - lengths
    flat = torch.from_numpy(np.concatenate([*windows.offsets, np.full((1, 2), -1, dtype=np.int64)]))

    best_score = torch.full((n_windows,), NO_SCORE)
    best_any = torch.zeros(n_windows, dtype=torch.bool)
    best_key = torch.zeros(n_windows, dtype=torch.int64)
    pools: list[dict[str, np.ndarray]] = []
    for lo in range(0, n_windows, _BLOCK_WINDOWS):
        hi = min(lo + _BLOCK_WINDOWS, n_windows)
        s_val, s_idx = _top(starts[lo:hi], n)
        e_val, e_idx = _top(ends[lo:hi], n)
        s_off = _char_offsets(s_idx, flat, base[lo:hi], lengths[lo:hi])
        e_off = _char_offsets(e_idx, flat, base[lo:hi], lengths[lo:hi])
        span = e_idx[:, None, :] - s_idx[:, :, None]
        valid = (s_off[:, :, None, 0] >= 0) & (e_off[:, None, :, 0] >= 0) & (span >= 0) & (span < settings.max_answer_length)
        score = s_val[:, :, None] + e_val[:, None, :]
        masked = score.masked_fill(~valid, NO_SCORE)
        block_best = masked.amax(dim=(1, 2))
        # Among a window's valid pairs with the top score, the earliest start, then the earliest end.
        ties = valid & (masked == block_best[:, None, None])
        key = (s_idx[:, :, None] * width + e_idx[:, None, :]).masked_fill(~ties, width * width)
        best_score[lo:hi] = block_best
        best_any[lo:hi] = valid.flatten(1).any(dim=1)
        best_key[lo:hi] = key.flatten(1).amin(dim=1)
        if nbest:
            pool = _nbest_candidates(score, valid, s_idx, e_idx, s_off, e_off, nbest)
            pool["window"] += lo
            pools.append(pool)

    # Per example: the top score over its windows, then the earliest window holding it.
    n_examples = len(examples)
    ex = torch.from_numpy(windows.example_index)
    window_score = best_score.masked_fill(~best_any, NO_SCORE)
    ex_score = torch.full((n_examples,), NO_SCORE).scatter_reduce(0, ex, window_score, "amax")
    ex_any = torch.zeros(n_examples, dtype=torch.int64).scatter_reduce(0, ex, best_any.long(), "amax").bool()
    holds_best = best_any & (window_score == ex_score[ex])
    candidates = torch.where(holds_best, torch.arange(n_windows), n_windows)
    ex_window = torch.full((n_examples,), n_windows).scatter_reduce(0, ex, candidates, "amin")

    spans: list[tuple[int, int] | None] = [None] * n_examples
    found = ex_any.nonzero().flatten()
    if found.numel():
        w = ex_window[found]
        key = best_key[w]
        s_char = flat[base[w] + key // width, 0].tolist()
        e_char = flat[base[w] + key % width, 1].tolist()
        for k, e_index in enumerate(found.tolist()):
            spans[e_index] = (s_char[k], e_char[k])
    scores = ex_score.tolist()
    lists = _nbest_lists(examples, windows, pools, nbest) if nbest else [()] * n_examples
    return [_prediction(example, spans[k], scores[k], lists[k]) for k, example in enumerate(examples)]


def _nbest_lists(
    examples: Sequence[QAExample], windows: Windows, pools: list[dict[str, np.ndarray]], nbest: int
) -> list[tuple[NBestEntry, ...]]:
    """Merge the per-window candidates into each example's ``nbest`` best distinct spans."""
    cand = {k: np.concatenate([p[k] for p in pools]) for k in pools[0]}
    cand["example"] = windows.example_index[cand["window"]]
    order = np.lexsort((cand["e_tok"], cand["s_tok"], cand["window"], -cand["score"].astype(np.float64), cand["example"]))
    cand = {k: v[order] for k, v in cand.items()}
    cand = _first_per_key(cand, ("example", "s_char", "e_char"))
    cand = _head_per_group(cand, "example", nbest)
    lists: list[list[NBestEntry]] = [[] for _ in examples]
    for e_index, s_char, e_char, score in zip(
        cand["example"].tolist(), cand["s_char"].tolist(), cand["e_char"].tolist(), cand["score"].tolist()
    ):
        lists[e_index].append((examples[e_index].context[s_char:e_char], s_char, e_char, score))
    return [tuple(entries) for entries in lists]


def decode_reference(
    examples: Sequence[QAExample],
    windows: Windows,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    settings: FeatureSettings,
    *,
    nbest: int = 0,
) -> list[Prediction]:
    """The slow, obviously correct decoder: a Python loop over windows and candidate pairs (for tests and benchmarks).

    Same contract and same results as ``decode``.
    """
    if nbest < 0:
        raise ValueError(f"nbest must be >= 0, got {nbest}")
    start_t, end_t = _checked_logits(examples, windows, start_logits, end_logits)
    starts, ends = start_t.numpy(), end_t.numpy()
    n = min(settings.n_best_size, starts.shape[1]) if len(windows) else 0
    windows_of: list[list[int]] = [[] for _ in examples]
    for w, e_index in enumerate(windows.example_index.tolist()):
        windows_of[e_index].append(w)

    predictions = []
    for e_index, example in enumerate(examples):
        candidates: list[tuple[float, int, int, int]] = []
        for w in windows_of[e_index]:
            length = int(windows.lengths[w])
            offsets = windows.offsets[w]
            s_row, e_row = starts[w, :length], ends[w, :length]
            top_starts = sorted(range(length), key=lambda i: (-s_row[i], i))[:n]
            top_ends = sorted(range(length), key=lambda j: (-e_row[j], j))[:n]
            for i in top_starts:
                for j in top_ends:
                    if offsets[i, 0] < 0 or offsets[j, 0] < 0:
                        continue
                    if j < i or j - i + 1 > settings.max_answer_length:
                        continue
                    # float32 + float32, as the vectorised decoder adds them.
                    candidates.append((float(s_row[i] + e_row[j]), w, i, j))
        candidates.sort(key=lambda c: (-c[0], c[1], c[2], c[3]))
        entries: list[NBestEntry] = []
        seen: set[tuple[int, int]] = set()
        for score, w, i, j in candidates:
            span = (int(windows.offsets[w][i, 0]), int(windows.offsets[w][j, 1]))
            if span in seen:
                continue
            seen.add(span)
            entries.append((example.context[span[0] : span[1]], span[0], span[1], score))
            if len(entries) >= max(nbest, 1):
                break
        if not entries:
            predictions.append(_prediction(example, None, NO_SCORE))
            continue
        text, start, end, score = entries[0]
        predictions.append(_prediction(example, (start, end), score, tuple(entries) if nbest else ()))
    return predictions
