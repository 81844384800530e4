"""Seeded generator of the SYNTHETIC demo corpus (ReDSM5 format). Nothing in it is real data.

The posts are assembled from invented first-person phrasings (``evdata.demo.phrases``) so that
``invoke train`` has something realistic-looking to learn from on a fresh machine:

- post lengths drawn from a log-normal (median ~180 words, mean ~300, a tail past 2,000 words);
- about a quarter of the posts without any symptom, the rest with one to three;
- evidence sentences built from an opener, a core phrasing and a closer, in several styles
  (plain, typographic quotes, all lowercase), with distractors that mention a symptom's topic
  without being evidence (status 0), a few ``SPECIAL_CASE`` rows, and sentences annotated for two
  symptoms at once;
- annotation sentences that exercise every alignment step: verbatim, changed case, changed quotes
  or spaces, small edits (fuzzy) and paraphrases (semantic).

Run ``python -m evdata.demo.generate --out DIR --seed N --posts N``; the bundled files in
``evdata/demo/data`` are this module's output for the defaults.
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import random
import re
import statistics
from collections import Counter
from pathlib import Path

import attrs
from rapidfuzz import fuzz

from evdata.atomic import atomic_write_text
from evdata.demo import phrases
from evdata.normalize import normalize_text

DEFAULT_SEED = 2024
DEFAULT_POSTS = 650

# Relative symptom frequencies of the real corpus (DATA.md), so the demo is as unbalanced as real data.
SYMPTOM_WEIGHTS: dict[str, int] = {
    "DEPRESSED_MOOD": 328,
    "WORTHLESSNESS": 311,
    "SUICIDAL_THOUGHTS": 165,
    "FATIGUE": 124,
    "ANHEDONIA": 124,
    "SLEEP_ISSUES": 102,
    "COGNITIVE_ISSUES": 59,
    "APPETITE_CHANGE": 44,
    "PSYCHOMOTOR": 35,
}
# How an evidence row's annotation sentence relates to the post sentence (the alignment step it exercises).
EVIDENCE_VARIANTS: dict[str, float] = {"verbatim": 0.50, "case": 0.10, "quotes_spaces": 0.10, "edited": 0.08, "paraphrase": 0.22}
DISTRACTOR_VARIANTS: dict[str, float] = {"verbatim": 0.80, "case": 0.10, "quotes_spaces": 0.10}
STYLES: dict[str, float] = {"plain": 0.55, "typographic": 0.25, "lowercase": 0.12, "double_space": 0.08}
_SLOT = re.compile(r"\{(\w+)\}")


@attrs.frozen
class _Item:
    """A sentence placed in a post and the annotation rows it gets."""

    text: str
    paraphrase: str
    labels: tuple[tuple[str, int], ...]  # (symptom, status)
    kind: str  # evidence | distractor | special | filler


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def _fill(rng: random.Random, template: str, values: dict[str, str]) -> str:
    """Fill ``{slot}`` names, reusing ``values`` so a pair's two halves agree."""

    def slot(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            values[name] = rng.choice(phrases.SLOTS[name])
        return values[name]

    return _SLOT.sub(slot, template)


def _capitalize(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(opener: str, core: str, closer: str) -> str:
    if opener and not (core.startswith("I ") or core.startswith("I'")):
        core = core[:1].lower() + core[1:]
    return _capitalize(opener + core) + closer


def _sentence_pair(rng: random.Random, core: str, paraphrase: str) -> tuple[str, str]:
    """The sentence as written in the post and its paraphrase (same slot values)."""
    values: dict[str, str] = {}
    post_core = _fill(rng, core, values)
    para_core = _fill(rng, paraphrase, values)
    opener = rng.choice(phrases.OPENERS)
    if "{duration}" in opener and "duration" in values:
        opener = ""
    text = _join(_fill(rng, opener, values), post_core, rng.choice(phrases.CLOSERS))
    para = _join(_fill(rng, rng.choice(phrases.PARAPHRASE_OPENERS), values), para_core, rng.choice(phrases.PARAPHRASE_CLOSERS))
    return text, para


def _style(text: str, style: str) -> str:
    if style == "typographic":
        return text.replace("'", "\u2019")
    if style == "lowercase":
        lowered = text.lower()
        # People who skip capitals often skip apostrophes in common contractions too.
        for full, short in (("don't", "dont"), ("can't", "cant"), ("i'm", "im"), ("didn't", "didnt")):
            lowered = lowered.replace(full, short)
        return lowered
    return text


def _word_target(rng: random.Random) -> int:
    # Log-normal: median e^mu, mean e^(mu + sigma^2 / 2); with the evidence sentences added, posts end
    # up near the real corpus (median ~180 words, mean ~300).
    return max(2, min(6990, round(math.exp(rng.gauss(math.log(168), 0.97)))))


def _choose_symptoms(rng: random.Random) -> tuple[list[str], tuple[str, str, str, str] | None]:
    """The post's symptoms (empty for about a quarter of posts), and possibly a two-symptom sentence."""
    if rng.random() < 0.26:
        return [], None
    count = rng.choices((1, 2, 3), weights=(0.55, 0.30, 0.15))[0]
    symptoms: list[str] = []
    combined = None
    if count >= 2 and rng.random() < 0.15:
        combined = rng.choice(phrases.TWO_SYMPTOMS)
        symptoms = [combined[2], combined[3]]
    while len(symptoms) < count:
        symptom = rng.choices(list(SYMPTOM_WEIGHTS), weights=list(SYMPTOM_WEIGHTS.values()))[0]
        if symptom not in symptoms:
            symptoms.append(symptom)
    return symptoms, combined


def _post_items(rng: random.Random) -> list[_Item]:
    """The annotated sentences of one post (evidence, distractors, special cases), unordered."""
    symptoms, combined = _choose_symptoms(rng)
    items: list[_Item] = []
    if combined is not None:
        text, para = _sentence_pair(rng, combined[0], combined[1])
        items.append(_Item(text, para, ((combined[2], 1), (combined[3], 1)), "evidence"))
    for symptom in symptoms:
        if combined is not None and symptom in combined[2:] and rng.random() < 0.7:
            continue  # the shared sentence is often the only evidence for its two symptoms
        n = rng.choices((1, 2, 3), weights=(0.62, 0.28, 0.10))[0]
        for core, para_core in rng.sample(phrases.EVIDENCE[symptom], n):
            text, para = _sentence_pair(rng, core, para_core)
            items.append(_Item(text, para, ((symptom, 1),), "evidence"))
    if rng.random() < (0.35 if symptoms else 0.45):
        for symptom in rng.sample(list(phrases.DISTRACTORS), rng.choice((1, 1, 2))):
            values: dict[str, str] = {}
            core = _fill(rng, rng.choice(phrases.DISTRACTORS[symptom]), values)
            items.append(_Item(_join("", core, "."), _join("", core, "."), ((symptom, 0),), "distractor"))
    if rng.random() < 0.02:
        template, status = rng.choice(phrases.SPECIAL_CASES)
        core = _fill(rng, template, {})
        items.append(_Item(_join("", core, "."), _join("", core, "."), (("SPECIAL_CASE", status),), "special"))
    return items


def _filler(rng: random.Random, used: set[str]) -> str:
    """A neutral sentence not yet used in this post (within a few tries)."""
    for _ in range(8):
        if rng.random() < 0.5:
            core = _fill(rng, rng.choice(phrases.FILLER), {})
        else:
            what = _fill(rng, rng.choice(phrases.FILLER_WHAT), {})
            core = f"{_fill(rng, rng.choice(phrases.FILLER_WHEN), {})} {what[:1].lower() + what[1:] if what.startswith('My') else what}"
            core += rng.choice(phrases.FILLER_TAIL)
        text = _join("", core, rng.choice((".", ".", ".", "!", "...")))
        if text not in used:
            break
    used.add(text)
    return text


def _assemble(rng: random.Random, items: list[_Item], target: int) -> list[str | _Item]:
    """Order a post of about ``target`` words: optional intro, filler and annotated sentences interleaved, optional outro."""
    words = sum(len(item.text.split()) for item in items)
    if not items and target < 15:
        return [_join("", _fill(rng, rng.choice(phrases.SHORT_POSTS), {}), "")]
    used: set[str] = set()
    body: list[str | _Item] = []
    while words < target or (not body and not items):
        sentence = _filler(rng, used)
        body.append(sentence)
        words += len(sentence.split())
    for item in items:
        body.insert(rng.randint(0, len(body)), item)
    if rng.random() < 0.3:
        body.insert(0, rng.choice(phrases.INTROS))
    if rng.random() < 0.35:
        body.append(rng.choice(phrases.OUTROS))
    return body


def _render(rng: random.Random, body: list[str | _Item], style: str) -> tuple[str, list[tuple[int, str, _Item]]]:
    """Post text, and (sentence index, styled text, item) of every annotated sentence in it."""
    paragraphs: list[list[str]] = [[]]
    placed: list[tuple[int, str, _Item]] = []
    paragraph_length = rng.randint(3, 8)
    for index, piece in enumerate(body):
        text = _style(piece.text if isinstance(piece, _Item) else piece, style)
        if isinstance(piece, _Item):
            placed.append((index, text, piece))
        if len(paragraphs[-1]) >= paragraph_length:
            paragraphs.append([])
            paragraph_length = rng.randint(2, 8)
        paragraphs[-1].append(text)
    joiner = "  " if style == "double_space" else " "
    breaks = "\n" if rng.random() < 0.2 else "\n\n"
    return breaks.join(joiner.join(p) for p in paragraphs if p), placed


def _change_case(text: str) -> str:
    changed = text.lower()
    if changed == text:
        changed = re.sub(r"\bi\b", "I", _capitalize(text))
    return changed if changed != text else text.upper()


def _change_quotes_spaces(text: str) -> str:
    if "\u2019" in text:
        return text.replace("\u2019", "'")
    if "'" in text:
        return text.replace("'", "\u2019")
    return text.replace(" ", "  ", 1) if " " in text else text


def _edit(rng: random.Random, text: str, post: str) -> str | None:
    """A small edit (dropped word, swapped letters) that keeps the fuzzy ratio high, or None."""
    words = text.split(" ")
    options = []
    for i, word in enumerate(words[1:], start=1):
        if word.lower() in ("just", "really", "like", "so", "even", "all", "literally", "completely", "still", "always"):
            options.append(" ".join(words[:i] + words[i + 1 :]))
        if len(word) >= 6 and word.isalpha():
            j = rng.randint(1, len(word) - 3)
            options.append(" ".join([*words[:i], word[:j] + word[j + 1] + word[j] + word[j + 2 :], *words[i + 1 :]]))
    rng.shuffle(options)
    for edited in options:
        norm = normalize_text(edited)
        if norm not in normalize_text(post) and fuzz.ratio(norm, normalize_text(text)) >= 93:
            return edited
    return None


def _annotation_text(rng: random.Random, variant: str, text: str, item: _Item, post: str) -> tuple[str, str]:
    """The annotation sentence for ``variant`` and the variant actually used."""
    if variant == "case":
        return _change_case(text), variant
    if variant == "quotes_spaces":
        return _change_quotes_spaces(text), variant
    if variant == "edited":
        edited = _edit(rng, text, post)
        return (edited, variant) if edited is not None else (text, "verbatim")
    if variant == "paraphrase":
        return item.paraphrase, variant
    return text, "verbatim"


def _quote(text: str, words: int = 6) -> str:
    return " ".join(text.split()[:words]).rstrip(".,!")


def _explanation(rng: random.Random, symptom: str, status: int, text: str) -> str:
    """An annotator-style rationale: free text with commas, quotes and sometimes line breaks."""
    desc = phrases.SYMPTOM_DESCRIPTIONS.get(symptom, symptom.lower())
    quote = _quote(text)
    if status == 1:
        options = (
            f'The poster says "{quote}...", which describes {desc}.',
            f"First-person report of {desc}; ongoing, not situational.",
            f'Clear evidence of {desc}: "{quote}".\nStated in the present tense, so it is current.',
            f"Meets the criterion ({desc}), as described by the poster.\nNo mention of a medical cause.",
            f'Describes {desc} ("{quote}"), frequency: most days.',
        )
    else:
        options = (
            f"Mentions {desc.split(' or ')[0]}, but about someone else or a one-off event; not evidence.",
            f"Related to {desc}, however the poster does not describe it in themselves.\nMarked 0.",
            f'Not evidence: "{quote}" is situational, not a symptom.',
        )
    return rng.choice(options)


def generate(seed: int = DEFAULT_SEED, n_posts: int = DEFAULT_POSTS) -> tuple[list[dict[str, str]], list[dict[str, str]], Counter[str]]:
    """Generate ``n_posts`` posts and their annotation rows; also returns how many rows used each variant."""
    rng = random.Random(seed)
    numbers = rng.sample(range(1000, 10000), n_posts)
    # Lengths come from their own stream and every post from its own generator, so tuning one
    # part of the recipe does not reshuffle every post after it.
    lengths = random.Random(f"{seed}:lengths")
    targets = [_word_target(lengths) for _ in range(n_posts)]
    # A few long posts are guaranteed so the demo always has posts needing many stride windows.
    for i in lengths.sample(range(n_posts), min(3, n_posts)):
        targets[i] = lengths.randint(2100, 3500)
    posts: list[dict[str, str]] = []
    rows: list[dict[str, str]] = []
    variants: Counter[str] = Counter()
    for i, number in enumerate(numbers):
        rng = random.Random(f"{seed}:post:{i}")
        post_id = f"s_{number}_{rng.randint(1, 99)}"
        items = _post_items(rng)
        body = _assemble(rng, items, targets[i])
        style = _pick(rng, STYLES)
        text, placed = _render(rng, body, style)
        posts.append({"post_id": post_id, "text": text})
        for index, styled, item in placed:
            table = (
                EVIDENCE_VARIANTS if item.kind == "evidence" else DISTRACTOR_VARIANTS if item.kind == "distractor" else {"verbatim": 1.0}
            )
            sentence, variant = _annotation_text(rng, _pick(rng, table), styled, item, text)
            for symptom, status in item.labels:
                variants[variant] += 1
                rows.append(
                    {
                        "post_id": post_id,
                        "sentence_id": f"{post_id}_{index}",
                        "sentence_text": sentence,
                        "DSM5_symptom": symptom,
                        "status": str(status),
                        "explanation": _explanation(rng, symptom, status, sentence),
                    }
                )
    return posts, rows, variants


def _to_csv(rows: list[dict[str, str]], columns: tuple[str, ...]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def corpus_statistics(posts: list[dict[str, str]], rows: list[dict[str, str]]) -> dict[str, object]:
    """Word counts, posts without symptoms and rows per symptom/status, for the README and tests."""
    words = [len(post["text"].split()) for post in posts]
    with_symptom = {row["post_id"] for row in rows if row["status"] == "1" and row["DSM5_symptom"] != "SPECIAL_CASE"}
    return {
        "posts": len(posts),
        "annotation_rows": len(rows),
        "words_median": statistics.median(words),
        "words_mean": round(statistics.fmean(words), 1),
        "words_min": min(words),
        "words_max": max(words),
        "posts_over_2000_words": sum(1 for w in words if w > 2000),
        "posts_without_symptoms": sum(1 for post in posts if post["post_id"] not in with_symptom),
        "rows_by_symptom": dict(sorted(Counter((row["DSM5_symptom"], row["status"]) for row in rows).items())),
    }


def _readme(seed: int, stats: dict[str, object], variants: Counter[str]) -> str:
    symptom_lines = "\n".join(f"| {symptom} | {status} | {count} |" for (symptom, status), count in stats["rows_by_symptom"].items())  # type: ignore[attr-defined]
    variant_lines = "\n".join(f"| {variant} | {count} |" for variant, count in sorted(variants.items()))
    return f"""# SYNTHETIC demo corpus (not real data)

Every post and annotation in this folder is **synthetic**: assembled by `evdata.demo.generate`
(seed {seed}) from invented phrasings. No text comes from Reddit or from the ReDSM5 corpus, and
nothing here describes a real person. It exists so that `invoke data` and `invoke train` run on a
fresh machine; results on it say nothing about clinical performance.

Format: ReDSM5 (`posts.csv`: `post_id,text`; `annotations.csv`:
`post_id,sentence_id,sentence_text,DSM5_symptom,status,explanation`).

Regenerate with `python -m evdata.demo.generate --out DIR --seed {seed} --posts {stats["posts"]}`.

## Statistics

| | |
|---|---|
| posts | {stats["posts"]} |
| annotation rows | {stats["annotation_rows"]} |
| words per post: median / mean / min / max | {stats["words_median"]} / {stats["words_mean"]} / {stats["words_min"]} / {stats["words_max"]} |
| posts over 2,000 words | {stats["posts_over_2000_words"]} |
| posts without any symptom (no status-1 row) | {stats["posts_without_symptoms"]} |

Annotation rows per symptom and status:

| symptom | status | rows |
|---|---|---|
{symptom_lines}

How each annotation sentence relates to its post sentence (the alignment step it is meant to exercise):
`verbatim` (exact), `case` (casefold), `quotes_spaces` (normalized), `edited` (fuzzy), `paraphrase` (semantic).

| variant | rows |
|---|---|
{variant_lines}
"""


def write_corpus(out: str | Path, seed: int = DEFAULT_SEED, n_posts: int = DEFAULT_POSTS) -> dict[str, object]:
    """Generate the corpus and write posts.csv, annotations.csv and README.md into ``out``; returns its statistics."""
    out = Path(out)
    posts, rows, variants = generate(seed, n_posts)
    stats = corpus_statistics(posts, rows)
    atomic_write_text(out / "posts.csv", _to_csv(posts, ("post_id", "text")))
    atomic_write_text(
        out / "annotations.csv", _to_csv(rows, ("post_id", "sentence_id", "sentence_text", "DSM5_symptom", "status", "explanation"))
    )
    atomic_write_text(out / "README.md", _readme(seed, stats, variants))
    return stats


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m evdata.demo.generate --out DIR [--seed N] [--posts N]``."""
    parser = argparse.ArgumentParser(description="Generate the SYNTHETIC ReDSM5-format demo corpus.")
    parser.add_argument("--out", required=True, help="folder to write posts.csv, annotations.csv and README.md into")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"random seed (default {DEFAULT_SEED})")
    parser.add_argument("--posts", type=int, default=DEFAULT_POSTS, help=f"number of posts (default {DEFAULT_POSTS})")
    args = parser.parse_args(argv)
    if args.posts < 1:
        parser.error("--posts must be at least 1")
    stats = write_corpus(args.out, args.seed, args.posts)
    print(f"wrote {stats['posts']} posts and {stats['annotation_rows']} annotation rows (SYNTHETIC) to {args.out}")


if __name__ == "__main__":
    main()
