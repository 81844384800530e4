"""The alignment cache returns exactly what a fresh alignment returns, and misses when an input changes."""

import attrs

from evdata.align import align_corpus
from evdata.cache import alignment_key, load_alignment, save_alignment
from evdata.dataset import load_dataset
from evdata.readers import read_corpus
from evdata.settings import ALIGNMENT_FIELDS, DataSettings


class CountingSimilarity:
    """Word-overlap cosine stand-in that counts its calls."""

    cache_key = "counting-v1"

    def __init__(self) -> None:
        self.calls = 0

    def similarity(self, queries, candidates):
        self.calls += 1

        def vec(s):
            return set(s.lower().split())

        return [[len(vec(q) & vec(c)) / ((len(vec(q)) * len(vec(c))) ** 0.5 or 1) for c in candidates] for q in queries]


def test_cache_hit_equals_fresh_alignment(tmp_path):
    settings = DataSettings()
    scorer = CountingSimilarity()
    fresh = load_dataset(settings, scorer, cache_dir=tmp_path)
    calls = scorer.calls
    assert calls > 0 and len(list(tmp_path.glob("alignment-*.json"))) == 1
    again = load_dataset(settings, scorer, cache_dir=tmp_path)
    assert scorer.calls == calls  # served from the cache
    assert again.alignment == fresh.alignment
    assert again.split == fresh.split


def test_key_changes_with_thresholds_and_scorer():
    settings = DataSettings()
    corpus = read_corpus(settings)
    scorer = CountingSimilarity()
    key = alignment_key(corpus, settings, scorer)
    assert key != alignment_key(corpus, attrs.evolve(settings, semantic_threshold=0.9), scorer)
    assert key != alignment_key(corpus, settings, None)

    class Other(CountingSimilarity):
        cache_key = "other"

    assert key != alignment_key(corpus, settings, Other())
    assert alignment_key(corpus, settings, object()) is None  # no cache_key: never cached


def test_key_changes_with_every_alignment_setting():
    settings = DataSettings()
    corpus = read_corpus(settings)
    scorer = CountingSimilarity()
    key = alignment_key(corpus, settings, scorer)
    other_values = {"max_run_sentences": 2, "use_semantic": False, "fuzzy_threshold": 80.0}
    for name in ALIGNMENT_FIELDS:
        changed = attrs.evolve(settings, **{name: other_values.get(name, 0.33)})
        assert alignment_key(corpus, changed, scorer) != key, name


def test_saved_alignment_keeps_runner_up_and_reason(tmp_path):
    corpus = read_corpus(DataSettings())
    result = align_corpus(corpus, DataSettings(), CountingSimilarity())
    assert any(a.runner_up is not None and a.reason for a in result.alignments)
    save_alignment(tmp_path / "a.json", result)
    assert load_alignment(tmp_path / "a.json", corpus) == result


def test_progress_counts_every_annotated_post_and_changes_nothing(tmp_path, capsys):
    settings = DataSettings()
    corpus = read_corpus(settings)
    seen = []
    plain = align_corpus(corpus, settings, CountingSimilarity(), on_post=lambda: seen.append(1))
    assert len(seen) == len({a.post_id for a in corpus.annotations})
    shown = load_dataset(settings, CountingSimilarity(), cache_dir=tmp_path, show_progress=True)
    assert shown.alignment == plain
    assert capsys.readouterr().out == ""  # the bar goes to stderr, leaving stdout to the summary
    assert load_dataset(settings, CountingSimilarity(), cache_dir=tmp_path, show_progress=True).alignment == plain  # cached
