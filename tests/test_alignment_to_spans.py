"""Properties across packages: an aligned sentence becomes window labels that decode back to itself."""

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st

from evdata.align import align_annotation
from evdata.records import Answer, QAExample
from evdata.settings import DataSettings
from evfeatures.decode import decode
from evfeatures.settings import FeatureSettings
from evfeatures.windows import build_windows

WORDS = ["sleep", "night", "tired", "cold", "rain", "dog", "walk", "sad", "empty", "work", "bed", "energy", "friend", "call"]
sentence = st.lists(st.sampled_from(WORDS), min_size=3, max_size=9).map(lambda ws: " ".join(ws).capitalize() + ".")


@given(before=st.lists(sentence, max_size=12), evidence=sentence, after=st.lists(sentence, max_size=12), stride=st.sampled_from([8, 16]))
def test_aligned_sentence_round_trips_through_windows_and_decoding(tiny_tokenizer, before, evidence, after, stride):
    post = " ".join([*before, evidence, *after])
    span, method, _ = align_annotation(post, evidence.upper(), DataSettings(use_semantic=False))
    assert span is not None and method in ("exact", "casefold")
    assert post[span.start : span.end].lower() == evidence.lower()
    answer = Answer(text=post[span.start : span.end], start=span.start, end=span.end)
    ex = QAExample(id="x", post_id="x", question="", context=post, answers=(answer,))
    fs = FeatureSettings(max_length=48, doc_stride=stride, max_answer_length=40)
    windows = build_windows([ex], tiny_tokenizer, fs)
    labelled = np.flatnonzero(windows.start_positions != windows.cls_index)
    # HF-style stride: windows overlap by doc_stride tokens, so an answer no longer than that always fits one.
    if len(tiny_tokenizer(evidence, add_special_tokens=False)["input_ids"]) <= stride:
        assert len(labelled) >= 1
    if len(labelled):
        # logits that peak exactly at the labels of one window decode to the aligned sentence
        w = int(labelled[0])
        width = int(windows.lengths.max())
        start = torch.full((len(windows), width), -10.0)
        end = torch.full((len(windows), width), -10.0)
        start[w, windows.start_positions[w]] = 10.0
        end[w, windows.end_positions[w]] = 10.0
        (pred,) = decode([ex], windows, start, end, fs)
        assert (pred.start, pred.end) == (span.start, span.end)
        assert post[pred.start : pred.end] == pred.text
