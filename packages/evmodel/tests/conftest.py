import sys
from pathlib import Path

import pytest

from evdata.testing import register_hypothesis_profiles

register_hypothesis_profiles()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uncased tiny BERT encoder directory with fast tokenizer files (shared, do not modify)."""
    from evmodel.testing import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), words=["insomnia"])


@pytest.fixture(scope="session")
def tiny_spanbert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cased tiny BERT with only vocab.txt + config.json, like SpanBERT's hub files (shared)."""
    from evmodel.testing import make_tiny_bert

    return make_tiny_bert(tmp_path_factory.mktemp("tiny-spanbert"), cased=True, tokenizer_config=False, max_position=520)


@pytest.fixture(autouse=True)
def _fresh_fast_path_checks():
    """Each test sees the fast paths' self-checks run anew, and leaves transformers' registry healthy.

    Set up before (so torn down after) a test's ``monkeypatch``: the re-registration sees the real functions.
    """
    from evmodel.selfcheck import forget_verdicts

    forget_verdicts()
    yield
    forget_verdicts()
    if "transformers" in sys.modules:
        from evmodel.kernels import register_attention

        register_attention()
