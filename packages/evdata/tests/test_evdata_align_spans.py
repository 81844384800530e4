"""The similarity step's candidates (clauses, runs), its joint resolution per post, and what it reports."""

from __future__ import annotations

from collections.abc import Sequence

import attrs
from hypothesis import given
from hypothesis import strategies as st

from evdata.align import METHODS, align_annotation, align_corpus
from evdata.records import Annotation, Corpus, Post
from evdata.report import alignment_report
from evdata.sentences import MIN_CLAUSE_WORDS, clause_spans, split_sentences
from evdata.settings import DataSettings

# The rules alone: the span score is the cosine (no lexical blend) less the clause/run penalty.
RULES = DataSettings(semantic_threshold=0.6, semantic_margin=0.1, lexical_weight=0.0, clause_penalty=0.1, run_penalty=0.0)


@attrs.define
class TableSimilarity:
    """A deterministic fake scorer: cosine looked up by (query, candidate), ``default`` otherwise."""

    table: dict[tuple[str, str], float]
    default: float = 0.1
    calls: list[tuple[tuple[str, ...], tuple[str, ...]]] = attrs.field(factory=list)

    def similarity(self, queries: Sequence[str], candidates: Sequence[str]) -> list[list[float]]:
        self.calls.append((tuple(queries), tuple(candidates)))
        return [[self.table.get((q, c), self.default) for c in candidates] for q in queries]


def _clauses(text: str) -> list[list[str]]:
    return [[text[a:b] for a, b in clause_spans(text, s)] for s in split_sentences(text)]


# --- clause candidates ---------------------------------------------------------------------------


def test_clauses_cut_at_punctuation_and_conjunctions() -> None:
    text = "My elderly parents supported me the whole time, and I feel incredibly guilty about it."
    assert _clauses(text) == [["My elderly parents supported me the whole time", "I feel incredibly guilty about it."]]
    text = "Now I can’t stop crying and worrying that I’ll lose my mom too."
    assert _clauses(text) == [["Now I can’t stop crying", "worrying that I’ll lose my mom too."]]
    # Subordinating conjunctions stay with their clause; a dash cuts too.
    text = "I stopped going to the gym because I'm ashamed of my body — it hurts."
    assert "because I'm ashamed of my body" in _clauses(text)[0]


def test_a_sentence_with_one_clause_has_no_clause_candidates() -> None:
    assert _clauses("I can't sleep at night. Me too.") == [[], []]


def test_clauses_joined_across_an_inner_and() -> None:
    text = "For six months I've been waking up every night around 3 and lying there with my heart pounding, and it sucks."
    assert "For six months I've been waking up every night around 3 and lying there with my heart pounding" in _clauses(text)[0]


PIECES = [*"abcdefgh IJK,;:.!?—–-'’\n", "and ", " but ", " because ", " so i ", " then ", " which ", " -- ", "  "]


@given(st.lists(st.sampled_from(PIECES), max_size=80).map("".join) | st.text(max_size=120))
def test_clause_spans_are_exact_trimmed_substrings_of_their_sentence(text: str) -> None:
    for start, end in split_sentences(text):
        spans = clause_spans(text, (start, end))
        assert len(spans) == len(set(spans))
        for a, b in spans:
            assert start <= a < b <= end and (a, b) != (start, end)
            piece = text[a:b]
            assert piece == piece.strip() and piece != text[start:end].strip(" ,;:")
            assert len(piece.split()) >= MIN_CLAUSE_WORDS


# --- the similarity step: shapes --------------------------------------------------------------------

GUILT = "My elderly parents supported me the whole time, and I feel incredibly guilty about it."
CLAUSE = "I feel incredibly guilty about it."
OTHER = "My sister visited on Sunday."
CRY = "I cry every night."
NUMB = "I just feel numb."
POST = f"Hey. {GUILT} {OTHER} {CRY} {NUMB}"


def test_a_clause_that_fits_clearly_better_than_its_sentence_is_the_answer() -> None:
    query = "I carry so much guilt over this."
    fake = TableSimilarity({(query, GUILT): 0.55, (query, CLAUSE): 0.8})
    span, method, score = align_annotation(POST, query, RULES, fake)
    assert method == "semantic_clause" and span is not None and POST[span.start : span.end] == CLAUSE
    assert abs(score - 0.7) < 1e-9  # cosine 0.8 less the clause penalty


def test_a_clause_only_slightly_better_leaves_the_whole_sentence() -> None:
    query = "I carry so much guilt over this."
    fake = TableSimilarity({(query, GUILT): 0.75, (query, CLAUSE): 0.8})
    span, method, _ = align_annotation(POST, query, RULES, fake)
    assert method == "semantic" and span is not None and POST[span.start : span.end] == GUILT


def test_a_paraphrase_of_adjacent_sentences_takes_their_run() -> None:
    query = "I cry every night and feel nothing."
    run = f"{CRY} {NUMB}"
    fake = TableSimilarity({(query, CRY): 0.5, (query, NUMB): 0.5, (query, run): 0.85})
    span, method, _ = align_annotation(POST, query, RULES, fake)
    assert method == "semantic_sentences" and span is not None and POST[span.start : span.end] == run
    assert fake.calls[1][1].count(run) == 1  # runs are scored in a second call, each text once


def test_runs_can_be_switched_off() -> None:
    query = "I cry every night and feel nothing."
    fake = TableSimilarity({(query, CRY): 0.5, (query, NUMB): 0.5, (query, f"{CRY} {NUMB}"): 0.85})
    span, method, _ = align_annotation(POST, query, attrs.evolve(RULES, max_run_sentences=1), fake)
    assert span is None and method == "unaligned"


def test_every_new_method_is_listed() -> None:
    assert {"semantic", "semantic_clause", "semantic_sentences"} <= set(METHODS) and METHODS[-1] == "unaligned"


# --- joint resolution ------------------------------------------------------------------------------


def _corpus(rows: list[tuple[str, str, str]], text: str = POST) -> Corpus:
    return Corpus(
        posts=(Post("p", text),),
        annotations=tuple(Annotation("p", sid, sentence, symptom, 1, line=i + 2) for i, (sid, sentence, symptom) in enumerate(rows)),
    )


def test_two_different_annotations_never_share_a_span() -> None:
    strong, weak = "My parents paid and I feel guilty.", "I was a burden to my family."
    fake = TableSimilarity({(strong, GUILT): 0.9, (weak, GUILT): 0.8, (weak, CRY): 0.65})
    result = align_corpus(_corpus([("a", weak, "WORTHLESSNESS"), ("b", strong, "WORTHLESSNESS")]), RULES, fake)
    first, second = result.alignments
    assert second.span is not None and POST[second.span.start : second.span.end] == GUILT
    # The weaker row takes its best remaining candidate, which passes the same rules on its own.
    assert first.span is not None and POST[first.span.start : first.span.end] == CRY
    assert "held by row b (WORTHLESSNESS)" in first.reason


def test_the_loser_stays_unaligned_when_nothing_else_passes() -> None:
    strong, weak = "My parents paid and I feel guilty.", "I was a burden to my family."
    fake = TableSimilarity({(strong, GUILT): 0.9, (weak, GUILT): 0.8})
    first, second = align_corpus(_corpus([("a", weak, "WORTHLESSNESS"), ("b", strong, "DEPRESSED_MOOD")]), RULES, fake).alignments
    assert second.method == "semantic" and first.method == "unaligned" and first.span is None
    assert "held by row b (DEPRESSED_MOOD)" in first.reason and "< threshold" in first.reason


def test_near_identical_annotations_may_share_a_span() -> None:
    one, two = "I feel so guilty that my parents paid.", "I feel so guilty that my parents paid for everything"
    fake = TableSimilarity({(one, GUILT): 0.9, (two, GUILT): 0.85, (one, two): 0.95, (two, one): 0.95})
    result = align_corpus(_corpus([("a", one, "WORTHLESSNESS"), ("b", two, "DEPRESSED_MOOD")]), RULES, fake)
    assert [(a.span.start, a.span.end) for a in result.alignments if a.span] == [(POST.index(GUILT), POST.index(GUILT) + len(GUILT))] * 2


def test_a_substring_match_holds_its_span_against_a_different_annotation() -> None:
    other = "I have nightmares every night."
    fake = TableSimilarity({(other, CRY): 0.7})  # passes threshold and margin, but says something else than row a
    exact, para = align_corpus(_corpus([("a", CRY, "DEPRESSED_MOOD"), ("b", other, "SLEEP_ISSUES")]), RULES, fake).alignments
    assert exact.method == "exact" and para.method == "unaligned" and "held by row a (DEPRESSED_MOOD)" in para.reason
    # A paraphrase of the held sentence says the same thing as row a: both keep the sentence.
    fake = TableSimilarity({(other, CRY): 0.85})
    exact, para = align_corpus(_corpus([("a", CRY, "DEPRESSED_MOOD"), ("b", other, "SLEEP_ISSUES")]), RULES, fake).alignments
    assert (para.method, para.span) == ("semantic", attrs.evolve(exact.span, method="semantic", score=para.score))


# --- what the report says ------------------------------------------------------------------------


def test_report_gives_runner_up_and_reason_for_similarity_and_unaligned_rows() -> None:
    aligned, doubtful = "My parents paid and I feel guilty.", "Nothing feels real."
    fake = TableSimilarity({(aligned, GUILT): 0.9, (aligned, CRY): 0.4, (doubtful, NUMB): 0.7, (doubtful, CRY): 0.65})
    corpus = _corpus([("a", aligned, "WORTHLESSNESS"), ("b", doubtful, "DEPRESSED_MOOD"), ("c", "Hey.", "SPECIAL_CASE")])
    first, second, third = alignment_report(align_corpus(corpus, RULES, fake))
    assert first["method"] == "semantic" and first["runner_up_text"] == CRY
    assert (first["runner_up_start"], first["runner_up_end"], first["runner_up_score"]) == (
        POST.index(CRY),
        POST.index(CRY) + len(CRY),
        0.4,
    )
    assert "score 0.900" in first["reason"] and "leads runner-up 0.400" in first["reason"]
    assert second["method"] == "unaligned" and second["start"] is None
    assert second["runner_up_text"] == CRY and "doubtful" in second["reason"] and "margin 0.1" in second["reason"]
    assert third["method"] == "exact" and third["reason"] == "" and third["runner_up_text"] is None


# --- invoke data's summary -------------------------------------------------------------------------


def test_summary_gives_rows_and_score_range_per_method() -> None:
    from rich.console import Console

    from evdata.dataset import Dataset, print_summary
    from evdata.records import Split

    aligned, below = "My parents paid and I feel guilty.", "Nothing feels real."
    fake = TableSimilarity({(aligned, GUILT): 0.9, (below, NUMB): 0.5})
    corpus = _corpus([("a", aligned, "WORTHLESSNESS"), ("b", below, "DEPRESSED_MOOD"), ("c", CRY, "DEPRESSED_MOOD")])
    dataset = Dataset(corpus, align_corpus(corpus, RULES, fake), (), Split(examples={}, post_ids={}), 0)
    console = Console(record=True, width=160)
    print_summary(dataset, console)
    lines = {line.split("│")[1].strip(): line for line in console.export_text().splitlines() if line.count("│") > 3}
    assert "0.900-0.900" in lines["semantic"] and "1.000-1.000" in lines["exact"]
    assert "0.500-0.500" in lines["unaligned"]  # the best score that fell short
