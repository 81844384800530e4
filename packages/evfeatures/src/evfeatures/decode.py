"""Start/end logits -> character spans: the best answer per example over all of its windows.

For every window the ``n_best_size`` highest start and end logits are candidates (ties: the
earlier position first); a pair is valid when both tokens are context tokens, ``end >= start`` and
the span is at most ``max_answer_length`` tokens; its score is the sum of the two logits (float32).
An example's answer is its best valid pair over all its windows, ties broken by the earlier window,
then the earlier start token, then the earlier end token; the text is ``context[start:end]`` from
the tokens' character offsets.

An example none of whose windows has a valid pair gets ``text=""``, ``start=end=0`` and
``score=-inf``, so callers can tell "no answer found" from a real answer.

No answer (SQuAD 2.0): every window's CLS token stands for "no evidence here". An example's
``null_score`` is the lowest CLS start + end logit over its windows (as the Hugging Face SQuAD v2
post-processing takes it: an example holds no answer only if even its most answer-like window
says so). ``decide`` compares it with the best span's score: the example gets no answer when
``null_score - score`` exceeds a threshold tuned on validation data. With ``max_spans > 0`` a
prediction also lists the best non-overlapping spans over all windows, so that a post with several
evidence sentences can report each of them.

``decode`` does this with array operations over all windows at once (top-n selection, a
``[windows, n, n]`` grid of candidate pairs, masks, per-example reductions); ``decode_reference`` is
the plain loop over windows and candidate pairs that it must agree with exactly. The array work is
numpy on float32 copies of the logits: single-threaded and deterministic, and (on a busy CPU) far
quicker than waking a thread pool for arrays of this size.
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
    best first; the first entry is the answer itself. ``null_score`` is the lowest CLS start + end
    logit over the example's windows (``-inf`` when it has no windows). ``spans`` lists up to the
    requested number of non-overlapping spans, best first (the first is the answer itself): the
    candidates in score order, each kept unless it overlaps a span kept before it.
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
    null_score: float = NO_SCORE
    spans: tuple[NBestEntry, ...] = ()

    @property
    def na_score(self) -> float:
        """``null_score - score``, SQuAD 2.0's ``na_prob``: no answer when it exceeds the threshold.

        ``+inf`` when no span was found, ``-inf`` when the example had no windows to give a null score.
        """
        if self.score == NO_SCORE:
            return float("inf")
        return self.null_score - self.score


def _prediction(
    example: QAExample,
    span: tuple[int, int] | None,
    score: float,
    nbest: tuple[NBestEntry, ...] = (),
    *,
    null_score: float = NO_SCORE,
    spans: tuple[NBestEntry, ...] = (),
) -> Prediction:
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
        null_score=null_score,
        spans=spans,
    )


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    """True when the character spans ``[a_start, a_end)`` and ``[b_start, b_end)`` share a character."""
    return a_start < b_end and b_start < a_end


def _float32_array(value: torch.Tensor | np.ndarray) -> np.ndarray:
    """Logits as a float32 numpy array (no copy when they already are float32 on the CPU)."""
    tensor = torch.as_tensor(value).detach().cpu()
    if tensor.dtype == torch.bfloat16:
        # bf16 is the top half of a float32, so widening is a bit shift; done in numpy, which
        # lacks bf16, to skip a round through torch's thread pool.
        bits = tensor.view(torch.int16).numpy().view(np.uint16).astype(np.uint32) << 16
        return bits.view(np.float32)
    return tensor.to(torch.float32).numpy()


def _checked_logits(
    examples: Sequence[QAExample], windows: Windows, start_logits: torch.Tensor, end_logits: torch.Tensor
) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and values; return float32 arrays with ``-inf`` beyond each window's length."""
    logits = []
    for name, value in (("start_logits", start_logits), ("end_logits", end_logits)):
        array = _float32_array(value)
        if array.ndim != 2 or array.shape[0] != len(windows):
            raise ValueError(f"{name}: expected shape [windows={len(windows)}, length], got {list(array.shape)}")
        logits.append(array)
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
    real = np.arange(starts.shape[1])[None, :] < windows.lengths[:, None]
    out = []
    for name, array in (("start_logits", starts), ("end_logits", ends)):
        finite = np.isfinite(array) | ~real
        if not finite.all():
            w = int(np.flatnonzero(~finite.all(axis=1))[0])
            raise ValueError(f"{name}: window {w} holds NaN or infinite logits within its length")
        out.append(np.where(real, array, np.float32(NO_SCORE)))
    return out[0], out[1]


def _top_mask(values: np.ndarray, n: int) -> np.ndarray:
    """Boolean mask of the ``n`` largest values in each row; at a tie, earlier columns win.

    A partial sort (``np.partition``) finds each row's n-th largest value; every value above it is
    taken, then the earliest values equal to it until the row has ``n``. This equals taking the
    first ``n`` of a stable descending sort, at a fraction of the cost.
    """
    width = values.shape[1]
    threshold = np.partition(values, width - n, axis=1)[:, width - n : width - n + 1]
    chosen = values >= threshold
    # Rows where values equal to the threshold straddle the cut keep only the earliest of them.
    crowded = np.flatnonzero(chosen.sum(axis=1) > n)
    if crowded.size:
        rows = values[crowded]
        equal = rows == threshold[crowded]
        room = n - (rows > threshold[crowded]).sum(axis=1, keepdims=True)
        chosen[crowded] = (rows > threshold[crowded]) | (equal & (np.cumsum(equal, axis=1) <= room))
    return chosen


def _top(logits: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``n`` largest values per row and their positions, in position order (ties: earlier positions)."""
    positions = (np.flatnonzero(_top_mask(logits, n)) % logits.shape[1]).reshape(logits.shape[0], n)
    return np.take_along_axis(logits, positions, axis=1), positions


def _char_offsets(positions: np.ndarray, flat: np.ndarray, base: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Offsets ``[..., 2]`` of token ``positions`` per window; ``(-1, -1)`` beyond the window's length."""
    real = positions < lengths[:, None]
    # The last row of ``flat`` is a (-1, -1) sentinel for positions past a window's end.
    return flat[np.where(real, base[:, None] + positions, flat.shape[0] - 1)]


def _window_pool(
    masked: np.ndarray, valid: np.ndarray, s_idx: np.ndarray, e_idx: np.ndarray, s_off: np.ndarray, e_off: np.ndarray, keep: int
) -> dict[str, np.ndarray]:
    """Candidates of a block of windows that can reach an example's ``keep``-best list.

    A span in an example's ``keep`` best distinct spans is among the ``keep`` best distinct spans
    of its own window. Those are a window's ``keep`` best pairs unless two of them share a
    character span (rare: it needs tokens with equal offsets); such windows contribute every valid
    pair. Extra candidates are harmless: the merge sorts and removes repeated spans anyway.
    """
    blocks, n, _ = masked.shape
    flat_valid = valid.reshape(blocks, n * n)
    # Flattened pair order is (start position, end position), so column ties resolve as the decoders do.
    chosen = _top_mask(masked.reshape(blocks, n * n), min(keep, n * n)) & flat_valid
    rows, cols = np.nonzero(chosen)
    s_char, e_char = s_off[rows, cols // n, 0], e_off[rows, cols % n, 1]
    order = np.lexsort((e_char, s_char, rows))
    repeated = (np.diff(rows[order]) == 0) & (np.diff(s_char[order]) == 0) & (np.diff(e_char[order]) == 0)
    if repeated.any():
        chosen[rows[order][1:][repeated]] = flat_valid[rows[order][1:][repeated]]
        rows, cols = np.nonzero(chosen)
    i, j = cols // n, cols % n
    return {
        "window": rows,
        "score": masked[rows, i, j],
        "s_tok": s_idx[rows, i],
        "e_tok": e_idx[rows, j],
        "s_char": s_off[rows, i, 0],
        "e_char": e_off[rows, j, 1],
    }


def _first_per_key(cand: dict[str, np.ndarray], keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Keep the first row (in current order) of each distinct value of ``keys``."""
    size = cand["score"].size
    if size == 0:
        return cand
    columns = [cand[k] for k in keys]
    # Sorting by the keys, then by current position, puts each key's first row at the head of its run.
    order = np.lexsort((np.arange(size), *reversed(columns)))
    starts_run = np.ones(size, dtype=bool)
    starts_run[1:] = np.any([np.diff(c[order]) != 0 for c in columns], axis=0)
    first = np.sort(order[starts_run])
    return {k: v[first] for k, v in cand.items()}


def _head_per_group(cand: dict[str, np.ndarray], group: str, keep: int) -> dict[str, np.ndarray]:
    """Keep the first ``keep`` rows of each run of equal ``group`` values (rows are grouped already)."""
    groups = cand[group]
    rank = np.arange(groups.size) - np.searchsorted(groups, groups, side="left")
    return {k: v[rank < keep] for k, v in cand.items()}


def decode(
    examples: Sequence[QAExample],
    windows: Windows,
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    settings: FeatureSettings,
    *,
    nbest: int = 0,
    max_spans: int = 0,
) -> list[Prediction]:
    """Best answer span per example from ``[W, L]`` start/end logits (float32 or bf16), vectorised over windows.

    Positions at or beyond a window's length are ignored. With ``nbest > 0`` each prediction also
    carries up to ``nbest`` distinct spans, and with ``max_spans > 0`` up to ``max_spans``
    non-overlapping spans (see ``Prediction``); every prediction carries its ``null_score``. Gives
    exactly what ``decode_reference`` gives on the same input.
    """
    if nbest < 0:
        raise ValueError(f"nbest must be >= 0, got {nbest}")
    if max_spans < 0:
        raise ValueError(f"max_spans must be >= 0, got {max_spans}")
    starts, ends = _checked_logits(examples, windows, start_logits, end_logits)
    n_windows, width = starts.shape
    if n_windows == 0:
        return [_prediction(example, None, NO_SCORE) for example in examples]
    n = min(settings.n_best_size, width)
    lengths = windows.lengths
    base = np.cumsum(lengths) - lengths
    flat = np.concatenate([*windows.offsets, np.full((1, 2), -1, dtype=np.int64)])
    ex = windows.example_index

    window_score = np.full(n_windows, NO_SCORE, dtype=np.float32)
    window_any = np.zeros(n_windows, dtype=bool)
    window_key = np.zeros(n_windows, dtype=np.int64)
    pools: list[dict[str, np.ndarray]] = []
    kept_spans: list[dict[str, np.ndarray]] = []
    # Non-overlapping spans are chosen per example, so then a block must hold all windows of its examples.
    for blk in _blocks(ex, whole_examples=max_spans > 0):
        ids = np.arange(n_windows)[blk]
        s_val, s_idx = _top(starts[blk], n)
        e_val, e_idx = _top(ends[blk], n)
        s_off = _char_offsets(s_idx, flat, base[blk], lengths[blk])
        e_off = _char_offsets(e_idx, flat, base[blk], lengths[blk])
        # The [block, n, n] grid of (start candidate, end candidate) pairs.
        span = e_idx[:, None, :] - s_idx[:, :, None]
        valid = (s_off[:, :, None, 0] >= 0) & (e_off[:, None, :, 0] >= 0) & (span >= 0) & (span < settings.max_answer_length)
        masked = np.where(valid, s_val[:, :, None] + e_val[:, None, :], np.float32(NO_SCORE))
        best = masked.max(axis=(1, 2))
        # Among a window's valid pairs with the top score, the earliest start, then the earliest end.
        ties = valid & (masked == best[:, None, None])
        key = np.where(ties, s_idx[:, :, None] * width + e_idx[:, None, :], width * width)
        window_score[blk] = best
        window_any[blk] = valid.any(axis=(1, 2))
        window_key[blk] = key.min(axis=(1, 2))
        if nbest:
            pool = _window_pool(masked, valid, s_idx, e_idx, s_off, e_off, nbest)
            pool["window"] = ids[pool["window"]]
            pools.append(pool)
        if max_spans:
            kept_spans.append(_greedy_spans(masked, valid, s_idx, e_idx, s_off, e_off, ids, ex, max_spans))

    # Per example: the top score over its windows, then the earliest window holding it.
    window_score[~window_any] = NO_SCORE
    ex_score = np.full(len(examples), NO_SCORE, dtype=np.float32)
    np.maximum.at(ex_score, ex, window_score)
    ex_any = np.zeros(len(examples), dtype=bool)
    np.logical_or.at(ex_any, ex, window_any)
    holds_best = window_any & (window_score == ex_score[ex])
    ex_window = np.full(len(examples), n_windows, dtype=np.int64)
    np.minimum.at(ex_window, ex, np.where(holds_best, np.arange(n_windows), n_windows))

    spans: list[tuple[int, int] | None] = [None] * len(examples)
    found = np.flatnonzero(ex_any)
    w = ex_window[found]
    s_char = flat[base[w] + window_key[w] // width, 0].tolist()
    e_char = flat[base[w] + window_key[w] % width, 1].tolist()
    for k, e_index in enumerate(found.tolist()):
        spans[e_index] = (s_char[k], e_char[k])
    scores = ex_score.tolist()
    lists = _nbest_lists(examples, windows, pools, nbest) if nbest else [()] * len(examples)
    span_lists = _span_lists(examples, kept_spans) if max_spans else [()] * len(examples)
    nulls = _null_scores(starts, ends, ex, windows.cls_index, len(examples))
    return [
        _prediction(example, spans[k], scores[k], lists[k], null_score=nulls[k], spans=span_lists[k]) for k, example in enumerate(examples)
    ]


def _blocks(example_index: np.ndarray, *, whole_examples: bool) -> list[slice | np.ndarray]:
    """Window selections of about ``_BLOCK_WINDOWS`` each; with ``whole_examples`` no example's windows are split.

    Windows of one example are normally contiguous (as ``build_windows`` makes them), and then the
    blocks are slices; otherwise whole-example blocks gather each example's windows by index.
    """
    n = example_index.size
    if not whole_examples:
        return [slice(lo, min(lo + _BLOCK_WINDOWS, n)) for lo in range(0, n, _BLOCK_WINDOWS)]
    contiguous = bool((np.diff(example_index) >= 0).all())
    order = np.arange(n) if contiguous else np.argsort(example_index, kind="stable")
    grouped = example_index[order]
    firsts = np.flatnonzero(np.concatenate([[True], grouped[1:] != grouped[:-1]]))
    blocks: list[slice | np.ndarray] = []
    lo = 0
    while lo < n:
        # Cut at the last example start within the budget; an example larger than the budget forms its own block.
        k = int(np.searchsorted(firsts, lo + _BLOCK_WINDOWS, side="right"))
        hi = n if lo + _BLOCK_WINDOWS >= n else int(firsts[k - 1])
        if hi <= lo:
            hi = int(firsts[k]) if k < firsts.size else n
        blocks.append(slice(lo, hi) if contiguous else order[lo:hi])
        lo = hi
    return blocks


def _null_scores(starts: np.ndarray, ends: np.ndarray, example_index: np.ndarray, cls_index: int, n_examples: int) -> list[float]:
    """Per example the lowest CLS start + end logit over its windows (float32 sum); ``-inf`` without windows."""
    null = np.full(n_examples, np.inf, dtype=np.float32)
    np.minimum.at(null, example_index, starts[:, cls_index] + ends[:, cls_index])
    counts = np.bincount(example_index, minlength=n_examples)
    null[counts == 0] = NO_SCORE
    return null.tolist()


def _greedy_spans(
    masked: np.ndarray,
    valid: np.ndarray,
    s_idx: np.ndarray,
    e_idx: np.ndarray,
    s_off: np.ndarray,
    e_off: np.ndarray,
    window_ids: np.ndarray,
    example_index: np.ndarray,
    max_spans: int,
) -> dict[str, np.ndarray]:
    """The ``max_spans`` best non-overlapping spans of each example in a block holding all of its windows.

    Every valid pair of the block is a candidate. Candidates are ordered as the answer is chosen
    (score, then window, start token, end token), repeated character spans dropped, and then each
    round keeps, for every example at once, its best candidate still alive and drops the
    candidates overlapping it: the greedy scan of the reference decoder, one array pass per round.
    """
    rows, i, j = np.nonzero(valid)
    window = window_ids[rows]
    cand = {
        "example": example_index[window],
        "score": masked[rows, i, j],
        "window": window,
        "s_tok": s_idx[rows, i],
        "e_tok": e_idx[rows, j],
        "s_char": s_off[rows, i, 0],
        "e_char": e_off[rows, j, 1],
    }
    order = np.lexsort((cand["e_tok"], cand["s_tok"], cand["window"], -cand["score"], cand["example"]))
    cand = {k: v[order] for k, v in cand.items()}
    cand = _first_per_key(cand, ("example", "s_char", "e_char"))
    example, s_char, e_char = cand["example"], cand["s_char"], cand["e_char"]
    size = example.size
    if size == 0:
        return cand
    # Candidates are grouped by example; ``group`` numbers the groups 0, 1, ...
    group = np.concatenate([[0], np.cumsum(example[1:] != example[:-1])])
    n_groups = int(group[-1]) + 1
    alive = np.ones(size, dtype=bool)
    picked: list[np.ndarray] = []
    for _ in range(max_spans):
        live = np.flatnonzero(alive)
        if live.size == 0:
            break
        heads = live[np.concatenate([[True], group[live][1:] != group[live][:-1]])]
        picked.append(heads)
        has = np.zeros(n_groups, dtype=bool)
        pick_start = np.zeros(n_groups, dtype=np.int64)
        pick_end = np.zeros(n_groups, dtype=np.int64)
        has[group[heads]] = True
        pick_start[group[heads]] = s_char[heads]
        pick_end[group[heads]] = e_char[heads]
        alive &= ~(has[group] & (s_char < pick_end[group]) & (pick_start[group] < e_char))
        alive[heads] = False
    # Within an example each round's pick comes later in candidate order, so index order is rank order.
    keep = np.sort(np.concatenate(picked))
    return {k: v[keep] for k, v in cand.items()}


def _span_lists(examples: Sequence[QAExample], blocks: list[dict[str, np.ndarray]]) -> list[tuple[NBestEntry, ...]]:
    """Each example's kept non-overlapping spans as ``(text, start, end, score)`` entries, best first."""
    lists: list[list[NBestEntry]] = [[] for _ in examples]
    for kept in blocks:
        for e_index, s_char, e_char, score in zip(
            kept["example"].tolist(), kept["s_char"].tolist(), kept["e_char"].tolist(), kept["score"].tolist()
        ):
            lists[e_index].append((examples[e_index].context[s_char:e_char], s_char, e_char, score))
    return [tuple(entries) for entries in lists]


def _nbest_lists(
    examples: Sequence[QAExample], windows: Windows, pools: list[dict[str, np.ndarray]], nbest: int
) -> list[tuple[NBestEntry, ...]]:
    """Merge the per-window candidates into each example's ``nbest`` best distinct spans."""
    cand = {k: np.concatenate([p[k] for p in pools]) for k in pools[0]}
    cand["example"] = windows.example_index[cand["window"]]
    order = np.lexsort((cand["e_tok"], cand["s_tok"], cand["window"], -cand["score"], cand["example"]))
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
    max_spans: int = 0,
) -> list[Prediction]:
    """The slow, obviously correct decoder: a Python loop over windows and candidate pairs (for tests and benchmarks).

    Same contract and same results as ``decode``.
    """
    if nbest < 0:
        raise ValueError(f"nbest must be >= 0, got {nbest}")
    if max_spans < 0:
        raise ValueError(f"max_spans must be >= 0, got {max_spans}")
    starts, ends = _checked_logits(examples, windows, start_logits, end_logits)
    n = min(settings.n_best_size, starts.shape[1]) if len(windows) else 0
    windows_of: list[list[int]] = [[] for _ in examples]
    for w, e_index in enumerate(windows.example_index.tolist()):
        windows_of[e_index].append(w)

    cls = windows.cls_index
    predictions = []
    for e_index, example in enumerate(examples):
        # The example's no-answer score: its lowest CLS start + end over its windows (float32 sums).
        null_score = min((float(starts[w, cls] + ends[w, cls]) for w in windows_of[e_index]), default=NO_SCORE)
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
        kept: list[NBestEntry] = []
        seen: set[tuple[int, int]] = set()
        for score, w, i, j in candidates:
            span = (int(windows.offsets[w][i, 0]), int(windows.offsets[w][j, 1]))
            if span in seen:
                continue
            seen.add(span)
            entry = (example.context[span[0] : span[1]], span[0], span[1], score)
            if len(entries) < max(nbest, 1):
                entries.append(entry)
            # Greedy: a span is kept unless it overlaps one kept before it (a better one).
            if len(kept) < max_spans and not any(_overlaps(span[0], span[1], k[1], k[2]) for k in kept):
                kept.append(entry)
            if len(entries) >= max(nbest, 1) and len(kept) >= max_spans:
                break
        if not entries:
            predictions.append(_prediction(example, None, NO_SCORE, null_score=null_score))
            continue
        _, start, end, score = entries[0]
        predictions.append(
            _prediction(example, (start, end), score, tuple(entries) if nbest else (), null_score=null_score, spans=tuple(kept))
        )
    return predictions


@attrs.frozen
class Decision:
    """Whether an example holds evidence, by how much, and the evidence spans reported for it.

    ``margin`` is ``score - null_score`` of the best span (``-inf`` when no span was found): the
    example is ``present`` when ``margin >= -threshold``. ``spans`` are ``(text, start, end, score)``
    entries, best first, non-overlapping; empty when the example is absent.
    """

    example_id: str
    present: bool
    margin: float
    spans: tuple[NBestEntry, ...] = ()


def decide(prediction: Prediction, threshold: float, max_spans: int) -> Decision:
    """Say whether ``prediction``'s example holds evidence, and which spans to report (SQuAD 2.0 rule).

    The example gets no answer when ``null_score - score > threshold`` (the official SQuAD 2.0
    evaluation's ``na_prob > thresh``, the Hugging Face ``null_score_diff_threshold``), or when no
    span was found at all. Otherwise it is present, and its spans are those of
    ``prediction.spans`` (or, when decoded without ``max_spans``, the answer itself) that pass the
    same test on their own score, ``null_score - span score <= threshold``, at most ``max_spans`` of
    them. The best span always passes, so a present example has at least one span; raising the
    threshold never turns a present example absent and never drops a span.
    """
    if max_spans < 1:
        raise ValueError(f"max_spans must be >= 1, got {max_spans}")
    if threshold != threshold:
        raise ValueError("threshold must be a number, got NaN")
    if prediction.score == NO_SCORE:
        return Decision(prediction.example_id, False, NO_SCORE)
    null = prediction.null_score
    margin = prediction.score - null
    if null - prediction.score > threshold:
        return Decision(prediction.example_id, False, margin)
    candidates = prediction.spans or ((prediction.text, prediction.start, prediction.end, prediction.score),)
    spans = tuple(entry for entry in candidates if not null - entry[3] > threshold)[:max_spans]
    return Decision(prediction.example_id, True, margin, spans)
