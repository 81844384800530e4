"""HTML reports: a run's evidence spans highlighted in every post of a split, or a search study's trials.

``write_report`` is what ``invoke report`` calls; the page is one self-contained file (inline CSS
and script, images as data URIs) and every piece of post text is escaped.
"""

from evtrain.report.api import write_report, write_run_report, write_study_report
from evtrain.report.inputs import ReportError

__all__ = ["ReportError", "write_report", "write_run_report", "write_study_report"]
