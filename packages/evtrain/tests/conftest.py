from pathlib import Path

import pytest
from evtrain_fixtures import EVIDENCE, FILLER, write_tiny_corpus

from evdata.testing import register_hypothesis_profiles

register_hypothesis_profiles()


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from evmodel.testing import make_tiny_bert

    words = sorted(
        {w.strip(".,").lower() for texts in EVIDENCE.values() for t in texts for w in t.split()}
        | {w.strip(".,").lower() for t in FILLER for w in t.split()}
    )
    return make_tiny_bert(tmp_path_factory.mktemp("tiny") / "model", words=words, hidden=32, layers=2, heads=2)
