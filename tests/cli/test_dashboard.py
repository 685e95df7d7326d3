"""optuna-dashboard on a suite's Optuna 5 journal: it answers, a study page renders in a real
browser, a busy port is replaced by the next free one, and Ctrl-C stops everything."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.cli.serve import free_port, port_free
from testkit.processes import (
    default_sigint,
    group_alive,
    listening_addresses,
    read_lines,
    stop_command,
    wait_for_line,
)
from testkit.suites import SMOKE_STUDY, journal_with_a_study
from testkit.waiting import wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
STUDY = SMOKE_STUDY  # the study journal_with_a_study writes


def _busy_port() -> socket.socket:
    """A port with a listener on it, as another program's server would be."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def _screenshot(url: str, path: Path) -> tuple[str, list[str]]:
    from playwright.sync_api import sync_playwright  # here: only this slow test needs it

    with sync_playwright() as p:  # Debian's chromium; never downloads a browser
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(url, wait_until="load")
            page.wait_for_function("document.body.innerText.includes('Best Trial')",
                                   timeout=60_000)  # the study's data arrived and drew
            page.wait_for_timeout(1500)  # the plots draw after the data arrive
            page.screenshot(path=str(path), full_page=True)
            return page.inner_text("body"), errors
        finally:
            browser.close()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (scripts/system-deps.sh "
                    "installs it; CI runs it)")
def test_dashboard_serves_the_journal_renders_a_study_and_stops(tmp_path: Path) -> None:
    run_dir = tmp_path / "runs" / "smoke"
    journal_with_a_study(run_dir)
    busy = _busy_port()
    port = busy.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench", "dashboard", "smoke", "--runs-dir",
         str(tmp_path / "runs"), "--port", str(port)], start_new_session=True,
        stdout=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    seen: list[str] = []
    try:
        link = wait_for_line(read_lines(proc), "optuna-dashboard:", seen, timeout=90)
        # printed only once the server answers, on the next free port, and said so
        with urllib.request.urlopen(link.replace("/dashboard", "/api/studies"),
                                    timeout=5) as response:
            assert STUDY.encode() in response.read()
        moved = link.split(":")[2].split("/")[0]
        assert int(moved) > port and f"port {port} is in use" in "".join(seen)
        assert listening_addresses(int(moved)) == {"127.0.0.1"}
        text, errors = _screenshot(f"{link}/studies/0", tmp_path / "study.png")
        assert STUDY in text and "Hyperparameter Importance" in text and errors == []
        assert (tmp_path / "study.png").stat().st_size > 20_000
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        assert proc.wait(timeout=60) == 0
        wait_until(lambda: not group_alive(proc.pid), what="the server's group gone",
                   timeout=60)
        assert not listening_addresses(int(moved))
    finally:
        busy.close()
        stop_command(proc)


def test_dashboard_of_a_suite_not_run_is_one_clear_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", "smoke", "--runs-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "no Optuna storage for suite 'smoke'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "smoke").exists()  # nothing created


def test_a_busy_port_gives_the_next_free_one() -> None:
    busy = _busy_port()
    try:
        port = busy.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        found = free_port("127.0.0.1", port)
        assert found > port and port_free("127.0.0.1", found)
        assert free_port("127.0.0.1", found, taken={found}) > found
    finally:
        busy.close()


def test_the_dashboard_lists_the_tuning_studies_and_names_their_value(tmp_path: Path) -> None:
    """The dashboard `gradbench ui` serves lists no final seeds' study (whose "best trial"
    would be a seed), in a journal made before studies had a role or a metric name too; the
    storage itself keeps them, for `status` and resume."""
    import io
    import json
    from wsgiref.util import setup_testing_defaults

    import optuna
    from optuna_dashboard import wsgi

    from bench import tuning
    from bench.tuning.dashboard import TuningStudies

    storage = tuning.open_storage(None, tmp_path)
    for name in ("old/adding-T8/rnn/none/norm", "old/adding-T8/rnn/none/norm/final"):
        study = optuna.create_study(study_name=name, storage=storage)  # no role, no name
        study.optimize(lambda t: t.suggest_float("lr", 1e-4, 1e-1, log=True), n_trials=2)
    new = optuna.create_study(study_name="new/copy-T5/lstm/none/norm/final", storage=storage)
    new.set_user_attr("role", "final")
    tuned = optuna.create_study(study_name="new/copy-T5/lstm/none/norm", storage=storage)
    tuned.set_metric_names(["val loss"])
    app = wsgi(TuningStudies(storage))  # type: ignore[abstract]

    def get(path: str) -> dict:
        environ: dict = {"PATH_INFO": path, "REQUEST_METHOD": "GET"}
        setup_testing_defaults(environ)
        answer: list[str] = []
        body = b"".join(app(environ, lambda status, headers, *_: answer.append(status)))
        assert answer == ["200 OK"], (path, answer, body[:300])
        return json.loads(io.BytesIO(body).read())

    listed = {s["study_name"]: s for s in get("/api/studies")["study_summaries"]}
    assert set(listed) == {"old/adding-T8/rnn/none/norm", "new/copy-T5/lstm/none/norm"}
    named = listed["new/copy-T5/lstm/none/norm"]["study_id"]
    assert get(f"/api/studies/{named}")["objective_names"] == ["val loss"]  # not "Objective 0"
    old = listed["old/adding-T8/rnn/none/norm"]["study_id"]
    assert len(get(f"/api/studies/{old}")["trials"]) == 2
    assert {s.study_name for s in storage.get_all_studies()} == {*listed, *(
        "old/adding-T8/rnn/none/norm/final", "new/copy-T5/lstm/none/norm/final")}
