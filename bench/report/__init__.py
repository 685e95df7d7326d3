"""The comparative HTML report of a suite (``gradbench report``; SPEC section 5).

``results`` reads a suite from MLflow into frames; ``leaderboard``, ``analysis`` and
``statistics`` turn frames into tables (pure pandas; ``facts`` holds the registry's facts
they show); ``plots`` turns frames into figures (seaborn), ``html`` renders the page;
``page`` and ``task`` make its parts, and ``build`` gathers the data and joins them.
"""

from __future__ import annotations

from bench.report.build import build_report

__all__ = ["build_report"]
