"""The report: versioned JSON with raw samples, Markdown, and the per-target recommendation."""

from edgekit.report.markdown import render_markdown
from edgekit.report.model import SCHEMA_VERSION, load_report, to_json_dict, write_report
from edgekit.report.recommend import recommend, speedups

__all__ = ["SCHEMA_VERSION", "load_report", "recommend", "render_markdown", "speedups", "to_json_dict",
           "write_report"]
