"""The report as JSON, for CI and scripts."""

from __future__ import annotations

import orjson

from .model import Report

__all__ = ["render_json"]


def render_json(report: Report) -> str:
    """``report`` as indented JSON (schema: ``docs/reference/report.md``)."""
    return orjson.dumps(
        report.to_dict(), option=orjson.OPT_INDENT_2, default=repr
    ).decode()
