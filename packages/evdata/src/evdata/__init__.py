"""evdata: ReDSM5 readers, span alignment, QA examples, post-level split and the synthetic demo corpus.

This package never imports torch; the semantic alignment step takes any ``SentenceSimilarity``.
"""

from evdata.align import METHODS, AlignmentResult, SentenceSimilarity, align_annotation, align_corpus
from evdata.dataset import Dataset, examples_by_split, load_dataset, print_summary, summary_tables
from evdata.examples import build_examples, posts_without_evidence
from evdata.readers import DataError, demo_data_dir, find_data_files, read_annotations, read_corpus, read_posts
from evdata.records import SYMPTOMS, Alignment, Annotation, Answer, Corpus, Post, QAExample, Skip, Span, Split, symptom_question
from evdata.report import alignment_report, write_alignment_report
from evdata.sentences import split_sentences
from evdata.settings import DataSettings
from evdata.split import SPLIT_NAMES, split_examples, split_post_ids

__all__ = [
    "METHODS",
    "SPLIT_NAMES",
    "SYMPTOMS",
    "Alignment",
    "AlignmentResult",
    "Annotation",
    "Answer",
    "Corpus",
    "DataError",
    "DataSettings",
    "Dataset",
    "Post",
    "QAExample",
    "SentenceSimilarity",
    "Skip",
    "Span",
    "Split",
    "align_annotation",
    "align_corpus",
    "alignment_report",
    "build_examples",
    "demo_data_dir",
    "examples_by_split",
    "find_data_files",
    "load_dataset",
    "posts_without_evidence",
    "print_summary",
    "read_annotations",
    "read_corpus",
    "read_posts",
    "split_examples",
    "split_post_ids",
    "split_sentences",
    "summary_tables",
    "symptom_question",
    "write_alignment_report",
]
