"""HTML reports: a run's evidence spans highlighted in every post of a split.

``write_report`` is what ``invoke report`` calls for a run; the page is one self-contained file
(inline CSS and script, images as data URIs) and every piece of post text is escaped. A search
study's page is built by evsearch (``evsearch.report``) from the shared frame in ``layout``.
"""

from evtrain.report.api import write_report, write_run_report
from evtrain.report.inputs import ReportError

__all__ = ["ReportError", "write_report", "write_run_report"]
