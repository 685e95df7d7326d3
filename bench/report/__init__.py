"""The comparative HTML report of a suite (``gradbench report``; SPEC section 5).

``analysis`` turns frames into tables (pure pandas), ``plots`` turns frames into figures
(seaborn), ``html`` renders the page; ``build`` gathers the data and joins them.
"""

from __future__ import annotations

from bench.report.build import build_report

__all__ = ["build_report"]
