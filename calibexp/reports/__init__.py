"""Paper-ready tables and figures from the MLflow store (the MLproject ``report`` entry point):
runs selected by sweep, study, experiment or filter, grouped by config keys, aggregated over
seeds, compared by a paired test, set beside published numbers, and written as Markdown, LaTeX
and CSV with figures."""

from calibexp.reports.runner import Report, make_report
from calibexp.reports.spec import ReportSpec, report_spec

__all__ = ["Report", "ReportSpec", "make_report", "report_spec"]
