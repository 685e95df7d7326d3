"""`gradbench ui` on a PostgreSQL store that asks for a password it was not given: one line
that says so and where libpq takes it from, before any server starts (MLflow's own client
would retry for two minutes, its server print a traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from testkit.servers import postgres_bin, postgres_server
from testkit.suites import SMALL, write_suite

pytestmark = pytest.mark.slow


def test_a_missing_password_is_one_line(tmp_path: Path) -> None:
    if postgres_bin() is None:
        pytest.skip("PostgreSQL is not installed (make test installs it)")
    with postgres_server(password="s3cret-pw") as server:
        url = f"postgresql+psycopg2://postgres@{server}/postgres"
        config = write_suite(tmp_path, {**SMALL, "tracking_uri": url, "storage": url})
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        env["PGPASSFILE"] = str(tmp_path / "no-pgpass")  # and no ~/.pgpass line
        done = subprocess.run([sys.executable, "-m", "bench", "ui", str(config), "--runs-dir",
                               str(tmp_path / "runs")], env=env, capture_output=True,
                              text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("gradbench: error: tracking store ")
    assert "no password supplied" in line and "PGPASSWORD" in line
    assert "s3cret-pw" not in line
