"""SQuAD 2.0 figures, the no-answer threshold, symptom detection, evidence spans, and the keyword baseline's decisions.

``squad_v2_scores`` is checked against an independent implementation written here from the published
SQuAD 2.0 evaluation rules, on many generated inputs with ties, empty answers and answers that
normalise to nothing.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from evdata.records import SYMPTOMS, Answer, QAExample
from evfeatures.decode import Decision
from evtrain.baselines import baseline_scores, keyword_decisions, keyword_sentence
from evtrain.metrics import (
    best_threshold,
    decision_scores,
    detection_scores,
    evidence_scores,
    spans_meet,
    squad_v2_scores,
)

# --- The published rules, written out independently ------------------------------------------------------


ARTICLE = re.compile(r"\b(?:an|a|the)\b")


def rules_normalise(text: str) -> str:
    """Lower-case; delete ASCII punctuation; blank out the words a, an, the (regex word boundaries); collapse whitespace."""
    no_punctuation = "".join(ch for ch in text.lower() if ch not in string.punctuation)
    return " ".join(ARTICLE.sub(" ", no_punctuation).split())


def rules_f1(prediction: str, gold: str) -> float:
    p, g = rules_normalise(prediction).split(), rules_normalise(gold).split()
    if not p or not g:
        return 1.0 if p == g else 0.0
    overlap = sum(min(count, g.count(token)) for token, count in Counter(p).items())
    if overlap == 0:
        return 0.0
    precision, recall = overlap / len(p), overlap / len(g)
    return 2 * precision * recall / (precision + recall)


def rules_em(prediction: str, gold: str) -> float:
    return 1.0 if rules_normalise(prediction) == rules_normalise(gold) else 0.0


def rules_evaluate(preds: dict, golds: dict, na_probs: dict | None, threshold: float) -> dict:
    """The SQuAD 2.0 evaluation as its rules describe it: raw scores, the threshold, HasAns/NoAns, best thresholds."""
    raw = {}
    for qid, answers in golds.items():
        # Gold answers that normalise to nothing do not count; none left means the gold is the empty answer.
        targets = [a for a in answers if rules_normalise(a)] or [""]
        raw[qid] = (max(rules_em(preds[qid], t) for t in targets), max(rules_f1(preds[qid], t) for t in targets))
    has_answer = {qid: len(answers) > 0 for qid, answers in golds.items()}
    final = {}
    for qid, (em, f1) in raw.items():
        if na_probs is not None and na_probs[qid] > threshold:
            final[qid] = (float(not has_answer[qid]),) * 2
        else:
            final[qid] = (em, f1)
    out = {"total": len(golds)}
    out["exact"] = 100 * sum(v[0] for v in final.values()) / len(golds)
    out["f1"] = 100 * sum(v[1] for v in final.values()) / len(golds)
    for name, wanted in (("HasAns", True), ("NoAns", False)):
        part = [qid for qid in golds if has_answer[qid] == wanted]
        if part:
            out[f"{name}_exact"] = 100 * sum(final[q][0] for q in part) / len(part)
            out[f"{name}_f1"] = 100 * sum(final[q][1] for q in part) / len(part)
            out[f"{name}_total"] = len(part)
    if na_probs is not None:
        for k, name in ((0, "exact"), (1, "f1")):
            # Begin with every question answered "no answer": the no-answer questions are right.
            current = best = sum(1 for q in golds if not has_answer[q])
            best_t = 0.0
            for qid in sorted(na_probs, key=lambda q: na_probs[q]):
                if has_answer[qid]:
                    current += raw[qid][k]
                elif preds[qid]:
                    current -= 1
                if current > best:
                    best, best_t = current, na_probs[qid]
            out[f"best_{name}"] = 100 * best / len(golds)
            out[f"best_{name}_thresh"] = best_t
    return out


# --- Generated inputs: short phrases, empty answers, answers of only articles or punctuation, tied na_probs --

WORDS = [
    "the",
    "a",
    "an",
    "I",
    "sleep",
    "barely",
    "night",
    "tired",
    "Sad!",
    "sad",
    "night.",
    "'",
    "-",
    "...",
    "a\u2019s",
    "th\u00e9a",
    "l'a",
    "_a_",
    "The.",
]
phrase = st.lists(st.sampled_from(WORDS), min_size=0, max_size=5).map(" ".join)
na_value = st.one_of(st.sampled_from([-2.0, -1.0, 0.0, 0.5, 1.0, 3.0]), st.floats(-5, 5, allow_nan=False))


@st.composite
def evaluation_inputs(draw):
    n = draw(st.integers(1, 14))
    ids = [f"q{k}" for k in range(n)]
    golds = {qid: draw(st.lists(phrase, min_size=0, max_size=3)) for qid in ids}
    preds = {qid: draw(phrase) for qid in ids}
    na_probs = {qid: draw(na_value) for qid in ids}
    # The sweep walks na_probs in its own key order: shuffle it, so ties are met in any order.
    order = draw(st.permutations(ids))
    return preds, golds, {qid: na_probs[qid] for qid in order}


def assert_same(ours: dict, theirs: dict) -> None:
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        assert ours[key] == pytest.approx(value, abs=1e-9), key


@given(evaluation_inputs(), st.one_of(st.just(0.0), st.floats(-4, 4, allow_nan=False)))
def test_squad_v2_scores_agree_with_the_published_rules(inputs, threshold):
    preds, golds, na_probs = inputs
    assert_same(squad_v2_scores(preds, golds, na_probs, threshold).official(), rules_evaluate(preds, golds, na_probs, threshold))
    assert_same(squad_v2_scores(preds, golds).official(), rules_evaluate(preds, golds, None, threshold))


def test_squad_v2_hand_made():
    golds = {"a": ["I barely sleep"], "b": [], "c": [], "d": ["tired"]}
    preds = {"a": "I barely sleep at night", "b": "", "c": "sad", "d": "tired"}
    scores = squad_v2_scores(preds, golds)
    assert (scores.total, scores.has_ans_total, scores.no_ans_total) == (4, 2, 2)
    assert scores.exact == 50.0 + 0.0  # d and b
    assert scores.has_ans_f1 == pytest.approx(100 * (2 * 1 * 0.6 / 1.6 + 1) / 2)
    assert (scores.no_ans_exact, scores.no_ans_f1) == (50.0, 50.0)
    assert scores.best_f1 is None and "best_f1" not in scores.official()
    # With no-answer scores: c (na 2.0) becomes "no answer" at threshold 1.0, a (na -1) stays answered.
    na = {"a": -1.0, "b": 3.0, "c": 2.0, "d": -2.0}
    tuned = squad_v2_scores(preds, golds, na, threshold=1.0)
    assert tuned.no_ans_exact == 100.0
    assert tuned.best_f1_thresh == -1.0 and tuned.best_f1 == pytest.approx(100 * (1 + 2 * 0.6 / 1.6 + 2) / 4)
    with pytest.raises(ValueError, match="no value for 1"):
        squad_v2_scores(preds, golds, {"a": 0.0, "b": 0.0, "c": 0.0})
    assert squad_v2_scores({}, {}).total == 0


@given(evaluation_inputs())
def test_best_threshold_gives_the_best_f1_any_threshold_gives(inputs):
    preds, golds, na_probs = inputs
    threshold = best_threshold(preds, golds, na_probs)
    reached = squad_v2_scores(preds, golds, na_probs, threshold).f1
    candidates = [*na_probs.values(), min(na_probs.values()) - 1.0]
    assert reached == pytest.approx(max(squad_v2_scores(preds, golds, na_probs, t).f1 for t in candidates), abs=1e-9)
    official = squad_v2_scores(preds, golds, na_probs)
    # Where the official sweep is exact (distinct na_probs, something beats "no answer everywhere"), both agree.
    no_answer_everywhere = 100 * sum(1 for g in golds.values() if not g) / len(golds)
    distinct = len(set(na_probs.values())) == len(na_probs)
    if distinct and official.best_f1 > no_answer_everywhere + 1e-9:
        assert threshold == official.best_f1_thresh
        assert reached == pytest.approx(official.best_f1, abs=1e-9)


def test_best_threshold_when_no_answer_everywhere_is_best():
    golds = {"a": [], "b": [], "c": ["sad"]}
    preds = {"a": "tired", "b": "night", "c": "sleep"}
    na = {"a": -3.0, "b": -2.0, "c": -1.0}
    # The official sweep reports 0.0, which answers every example here (F1 0); ours predicts no answer everywhere.
    assert squad_v2_scores(preds, golds, na).best_f1_thresh == 0.0
    assert squad_v2_scores(preds, golds, na, 0.0).f1 == 0.0
    threshold = best_threshold(preds, golds, na)
    assert threshold == -4.0
    assert squad_v2_scores(preds, golds, na, threshold).f1 == pytest.approx(200 / 3)


# --- Symptom detection -------------------------------------------------------------------------------------


def test_detection_hand_made():
    rows = [
        ("FATIGUE", True, True),
        ("FATIGUE", True, False),
        ("FATIGUE", False, True),
        ("FATIGUE", False, False),
        ("SLEEP_ISSUES", True, True),
        ("SPECIAL_CASE", True, True),  # not one of the nine: left out
    ]
    scores = detection_scores(*zip(*rows))
    fatigue = scores.of("FATIGUE")
    assert (fatigue.precision, fatigue.recall, fatigue.f1, fatigue.support, fatigue.predicted) == (0.5, 0.5, 0.5, 2, 2)
    assert scores.of("SLEEP_ISSUES").f1 == 1.0
    assert scores.of("ANHEDONIA").f1 == 0.0 and scores.of("ANHEDONIA").support == 0
    assert scores.n == 5
    assert (scores.micro_precision, scores.micro_recall) == (2 / 3, 2 / 3)
    assert scores.macro_f1 == pytest.approx(1.5 / 9)
    assert [row.symptom for row in scores.per_symptom] == list(SYMPTOMS)
    with pytest.raises(KeyError):
        scores.of("SPECIAL_CASE")
    with pytest.raises(ValueError, match="differ in length"):
        detection_scores(["FATIGUE"], [True], [])


@given(st.lists(st.tuples(st.sampled_from([*SYMPTOMS, "SPECIAL_CASE"]), st.booleans(), st.booleans()), max_size=60))
def test_detection_agrees_with_scikit_learn(rows):
    metrics = pytest.importorskip("sklearn.metrics")
    scores = detection_scores([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])
    for row in scores.per_symptom:
        gold = [r[1] for r in rows if r[0] == row.symptom]
        pred = [r[2] for r in rows if r[0] == row.symptom]
        if not gold:
            continue
        p, r, f, _ = metrics.precision_recall_fscore_support(gold, pred, average="binary", zero_division=0)
        assert (row.precision, row.recall, row.f1) == pytest.approx((p, r, f))
    for value in (scores.micro_f1, scores.macro_f1, scores.macro_precision, scores.macro_recall):
        assert 0.0 <= value <= 1.0


# --- Evidence spans ----------------------------------------------------------------------------------------

CONTEXT = "I can't sleep.  I feel empty. My cat is fine."


def _span(text: str) -> tuple[int, int]:
    start = CONTEXT.index(text)
    return start, start + len(text)


def test_spans_meet_on_a_non_whitespace_character():
    sleep, empty = _span("I can't sleep."), _span("I feel empty.")
    assert spans_meet(CONTEXT, sleep, sleep)
    assert spans_meet(CONTEXT, sleep, (sleep[1] - 1, empty[1]))  # shares the full stop
    assert not spans_meet(CONTEXT, sleep, (sleep[1], empty[0]))  # only the spaces between them
    assert not spans_meet(CONTEXT, (sleep[0], sleep[1] + 2), (sleep[1], empty[1]))  # shares only whitespace
    assert not spans_meet(CONTEXT, sleep, empty)  # adjacent is not overlapping
    assert not spans_meet(CONTEXT, (3, 3), (0, 10))  # an empty span finds nothing


def test_evidence_hand_made():
    sleep, empty, cat = _span("I can't sleep."), _span("I feel empty."), _span("My cat is fine.")
    contexts = {"x": CONTEXT, "y": CONTEXT}
    gold = {"x": [sleep, empty], "y": []}
    # Two predictions hit "sleep" (both correct, the gold found once), one hits nothing, one falls on a no-answer example.
    predicted = {"x": [(0, 7), (8, 14), cat], "y": [empty]}
    scores = evidence_scores(contexts, predicted, gold)
    assert (scores.predicted, scores.correct, scores.gold, scores.found) == (4, 2, 2, 1)
    assert (scores.precision, scores.recall) == (0.5, 0.5)
    nothing = evidence_scores(contexts, {}, gold)
    assert (nothing.precision, nothing.recall, nothing.f1) == (1.0, 0.0, 0.0)
    assert evidence_scores(contexts, {}, {"y": []}).f1 == 1.0


@given(st.data())
def test_evidence_properties(data):
    pieces = ["I can't sleep.", "I feel empty.", "My cat is fine.", "Work was ok.", "Food tastes of nothing."]
    context = " ".join(data.draw(st.lists(st.sampled_from(pieces), min_size=1, max_size=6)))
    bounds = st.tuples(st.integers(0, len(context)), st.integers(0, len(context))).map(sorted).map(tuple)
    gold = {"e": data.draw(st.lists(bounds, max_size=4))}
    predicted = {"e": data.draw(st.lists(bounds, max_size=4))}
    scores = evidence_scores({"e": context}, predicted, gold)
    assert 0.0 <= scores.precision <= 1.0 and 0.0 <= scores.recall <= 1.0 and 0.0 <= scores.f1 <= 1.0
    # Predicting exactly the gold spans is perfect, as long as each gold span holds something to find.
    assume(all(not context[s:e].isspace() and s < e for s, e in gold["e"]))
    exact = evidence_scores({"e": context}, gold, gold)
    assert (exact.precision, exact.recall) == (1.0, 1.0)


# --- Decisions scored together; the keyword baseline decides presence too ----------------------------------


def _example(post: str, symptom: str, context: str, evidence: list[str], **flags) -> QAExample:
    answers = tuple(Answer(text, context.index(text), context.index(text) + len(text)) for text in evidence)
    return QAExample(f"{post}::{symptom}", post, symptom, context, answers, symptom=symptom, **flags)


POST = "I can't sleep at night. I feel empty. My cat is fine."
EXAMPLES = [
    _example("p", "SLEEP_ISSUES", POST, ["I can't sleep at night."]),
    _example("p", "DEPRESSED_MOOD", POST, ["I feel empty."]),
    _example("p", "APPETITE_CHANGE", POST, [], hard_negative=True),
    _example("p", "FATIGUE", POST, [], unaligned_evidence=True),  # evidence not located: left out
    _example("p", "SPECIAL_CASE", POST, []),
]


def test_decision_scores_put_the_figures_together():
    decisions = [
        Decision("p::SLEEP_ISSUES", True, 3.0, (("I can't sleep at night.", 0, 23, 9.0),)),
        Decision("p::DEPRESSED_MOOD", False, -1.0),
        Decision("p::APPETITE_CHANGE", True, 0.5, (("My cat is fine.", 38, 53, 4.0),)),
        Decision("p::FATIGUE", True, 2.0, (("I feel empty.", 24, 37, 5.0),)),
    ]
    scores = decision_scores(EXAMPLES, decisions)
    assert scores.excluded == 1
    assert (scores.squad.total, scores.squad.has_ans_total, scores.squad.no_ans_total) == (4, 2, 2)
    assert scores.squad.exact == 50.0  # sleep right, mood missed, appetite wrongly answered, special case rightly absent
    assert scores.detection.of("SLEEP_ISSUES").f1 == 1.0 and scores.detection.of("DEPRESSED_MOOD").recall == 0.0
    assert scores.detection.of("APPETITE_CHANGE").precision == 0.0 and scores.detection.n == 3
    assert (scores.evidence.predicted, scores.evidence.correct, scores.evidence.gold, scores.evidence.found) == (2, 1, 2, 1)


def test_keyword_decisions_decide_presence_on_every_row():
    decisions = {d.example_id: d for d in keyword_decisions(EXAMPLES)}
    assert list(decisions) == [e.id for e in EXAMPLES]
    sleep = decisions["p::SLEEP_ISSUES"]
    assert sleep.present and sleep.spans == (("I can't sleep at night.", 0, 23, 2.0),) and sleep.margin == 2.0
    assert decisions["p::DEPRESSED_MOOD"].present and decisions["p::DEPRESSED_MOOD"].spans[0][0] == "I feel empty."
    assert not decisions["p::APPETITE_CHANGE"].present and decisions["p::APPETITE_CHANGE"].spans == ()
    assert not decisions["p::SPECIAL_CASE"].present, "a label without keywords is never present"
    for example in EXAMPLES:
        for text, start, end, _ in decisions[example.id].spans:
            assert example.context[start:end] == text == keyword_sentence(example.context, example.symptom)
    scores = decision_scores(EXAMPLES, decisions.values())
    assert scores.detection.of("SLEEP_ISSUES").f1 == 1.0 and scores.evidence.recall == 1.0


def test_keyword_decisions_in_empty_mode_and_the_old_scores_unchanged():
    examples = [
        QAExample("a", "a", "", POST, (Answer("I feel empty.", 24, 37),)),
        QAExample("b", "b", "", "Nice weather today. We went out.", ()),
    ]
    a, b = keyword_decisions(examples)
    assert a.present and a.spans[0][0] == "I can't sleep at night."  # most words of any symptom ("sleep", "night")
    assert not b.present and b.margin == 0.0
    old = baseline_scores(examples)
    assert set(old) == {"first_sentence", "keyword_sentence"}
    assert set(old["keyword_sentence"]) == {"exact_match", "f1", "n"} and old["keyword_sentence"]["n"] == 2
    # "I can't sleep at night." against "I feel empty.": one shared token ("i"), F1 0.25; b scores 0.
    assert math.isclose(old["first_sentence"]["f1"], 12.5)


def test_span_f1_scores_the_best_span_of_answerable_examples_whatever_the_threshold():
    """The bench's early-training quality figure: a model that found the evidence but says "no evidence" still scores here."""
    from evfeatures.decode import Prediction
    from evtrain.evaluation import decide_and_score, span_f1

    context = "I cannot sleep at night. The weather was nice."
    answer = Answer(text="I cannot sleep at night.", start=0, end=24, symptom="SLEEP_ISSUES")
    examples = [
        QAExample(id="a", post_id="p1", question="q", context=context, answers=(answer,), symptom="SLEEP_ISSUES"),
        QAExample(id="b", post_id="p2", question="q", context=context, answers=(answer,), symptom="SLEEP_ISSUES"),
        QAExample(id="n", post_id="p3", question="q", context=context, answers=(), symptom="SLEEP_ISSUES"),
    ]

    def found(example_id: str, start: int, end: int) -> Prediction:
        # The CLS outscores every span by far: at any tuned threshold the answer is "no evidence".
        return Prediction(example_id, "p", "q", context[start:end], start, end, -5.0, null_score=50.0)

    exact, half = found("a", 0, 24), found("b", 0, 15)  # "I cannot sleep" against the 5-token sentence: F1 0.75
    wrong = found("n", 25, 46)
    predictions = [exact, half, wrong]
    f1 = span_f1(examples, predictions)
    assert f1 == pytest.approx(100 * (1.0 + 0.75) / 2)
    # SQuAD 2.0's HasAns F1 at a threshold below the no-answer margin (55) sees none of it.
    scores, _, _ = decide_and_score(examples, predictions, 0.0, 1)
    assert scores.has_ans_f1 == 0.0 and scores.no_ans_exact == 100.0
    # The no-answer example's span plays no part, and without answerable examples there is no figure.
    assert span_f1(examples, [exact, half, found("n", 0, 24)]) == f1
    assert span_f1(examples[2:], [wrong]) is None
