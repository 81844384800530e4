from pathlib import Path

import pytest

from evdata.testing import register_hypothesis_profiles

register_hypothesis_profiles()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A fast WordPiece tokenizer from a tiny BERT directory built on the spot."""
    from evmodel.loading import load_tokenizer
    from evmodel.testing import make_tiny_bert

    return load_tokenizer(make_tiny_bert(tmp_path_factory.mktemp("tok") / "m"))
