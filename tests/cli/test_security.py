"""Security rules that hold for the whole code base, and the masking of secrets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.config import load
from bench.errors import mask_secrets

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*ROOT.glob("bench/**/*.py"), *ROOT.glob("tasks/**/*.py")])

# (what, pattern that must not appear in the product's code)
FORBIDDEN = [
    ("unsafe YAML loading", re.compile(r"yaml\.(?:load|unsafe_load|full_load)\(")),
    ("unpickling", re.compile(r"\bpickle\.loads?\(|cloudpickle\.loads?\(")),
    ("numpy object arrays", re.compile(r"allow_pickle\s*=\s*True")),
    ("torch.load without weights_only=True",
     re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)")),
    ("extracting archives without checks", re.compile(r"\.extractall\(")),
    ("eval / exec", re.compile(r"(?<![.\w])(?:eval|exec)\(")),
    ("binding the UI to every interface by default", re.compile(r"default=\"0\.0\.0\.0\"")),
]


@pytest.mark.parametrize(("what", "pattern"), FORBIDDEN, ids=[f[0] for f in FORBIDDEN])
def test_code_base_never_does(what: str, pattern: re.Pattern) -> None:
    assert SOURCES, "no sources found"
    hits = [f"{path.relative_to(ROOT)}:{n}" for path in SOURCES
            for n, line in enumerate(path.read_text().splitlines(), 1) if pattern.search(line)]
    assert not hits, f"{what}: {hits}"


@pytest.mark.parametrize(("text", "masked"), [
    ("postgresql+psycopg2://user:pa:ss@db:5432/x", "postgresql+psycopg2://user:***@db:5432/x"),
    ("http://alice:s3cret@mlflow:5000", "http://alice:***@mlflow:5000"),
    ("run --storage postgresql://u:p@h/db --tracking-uri http://h:5000",
     "run --storage postgresql://u:***@h/db --tracking-uri http://h:5000"),
    ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
    ("postgresql://user@host/db", "postgresql://user@host/db"),
    ("postgresql://:s3cret@db/x", "postgresql://:***@db/x"),
    # several in one line, as a storage error quoting both stores says them
    ("storage postgresql://gb:first-pw@db/x, tracking http://al:second-pw@mlflow:5000; again "
     "postgresql://gb:first-pw@db/x",
     "storage postgresql://gb:***@db/x, tracking http://al:***@mlflow:5000; again "
     "postgresql://gb:***@db/x"),
    ("postgresql://a:one@h1/x,http://b:two@h2,mysql://c:three@h3",
     "postgresql://a:***@h1/x,http://b:***@h2,mysql://c:***@h3"),
])
def test_mask_secrets(text: str, masked: str) -> None:
    assert mask_secrets(text) == masked


SECRETS = ("first-pw", "second-pw", "third-pw")


def _storage_error() -> Exception:
    """An error as a storage library raises it: a multi-line message quoting two URLs with
    passwords, raised from a lower error quoting a third."""
    try:
        raise OSError("connect to postgresql://gb:third-pw@db:5432/x refused")
    except OSError as low:
        try:
            raise RuntimeError(
                "cannot open postgresql://gb:first-pw@db/x nor http://al:second-pw@mlflow:5000"
                "\n  retried postgresql://gb:first-pw@db/x") from low
        except RuntimeError as err:
            return err


@pytest.mark.parametrize("full", [False, True], ids=["error", "full disk"])
@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_every_line_a_worker_error_prints_is_masked(
        full: bool, verbose: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """The line a worker hands its parent, its traceback (``--verbose``) and the parent's
    notes: no password anywhere, and each still says what happened."""
    import errno

    from bench.run.pool import RunStats, report_error

    err = _storage_error()
    if full:
        err.__cause__ = OSError(errno.ENOSPC, "No space left on device: "
                                "postgresql://gb:third-pw@db/x")
    events: list[tuple[str, dict]] = []
    report_error(3, err, lambda kind, payload: events.append((kind, payload)),
                 verbose=verbose)
    [(kind, payload)] = events
    assert kind == "error" and payload["worker"] == 3
    line = payload["error"]
    assert "\n" not in line and not [s for s in SECRETS if s in line], line
    assert ("the disk is full" in line) if full else line.startswith("RuntimeError: cannot open")
    assert "gb:***@db" in line or "No space left" in line
    err_text = capsys.readouterr().err
    assert not [s for s in SECRETS if s in err_text], err_text
    if verbose:  # the whole chain, masked
        assert "Traceback" in err_text and "gb:***@db" in err_text
        assert "al:***@mlflow:5000" in err_text
    else:
        assert err_text == ""
    stats = RunStats()
    stats("note", {"worker": 1, "message": "trial taken: postgresql://gb:first-pw@db/x and "
                                           "http://al:second-pw@mlflow"})
    assert stats.notes == ["worker 1: trial taken: postgresql://gb:***@db/x and "
                           "http://al:***@mlflow"]


def test_the_recorded_config_is_masked(tmp_path: Path) -> None:
    spec = load("smoke", {"storage": "postgresql://gb:topsecret@127.0.0.1/x",
                          "tracking_uri": "http://gb:topsecret@127.0.0.1:5000"})
    public = spec.public_dict()
    assert "topsecret" not in str(public)
    assert public["storage"] == "postgresql://gb:***@127.0.0.1/x"
    assert spec.storage == "postgresql://gb:topsecret@127.0.0.1/x"  # still usable in-process


def test_the_effective_tracking_uri_is_recorded_masked(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracking URI from the environment is recorded with the suite, masked; the embedded
    store is not (it follows the run directory)."""
    from bench.run.suite import Suite, recorded_config

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://gb:topsecret@trackinghost:5000")
    suite = Suite(load("smoke"), tmp_path / "smoke", [])
    assert recorded_config(suite)["tracking_uri"] == "http://gb:***@trackinghost:5000"
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert recorded_config(suite)["tracking_uri"] is None


def test_the_commands_verbose_traceback_is_masked(capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``--verbose`` prints an unexpected error's whole traceback: the password in the
    exception's text (a storage URL) is masked there as in the one-line error."""
    from bench.cli import main as cli

    def fails(args: object) -> int:
        raise KeyError("postgresql://gb:topsecret@db:5432/x refused")

    parser = cli.build_parser()
    parse = parser.parse_args

    def parsed(argv: object = None) -> object:
        args = parse(argv)  # type: ignore[arg-type]
        args.func = fails
        return args

    monkeypatch.setattr(parser, "parse_args", parsed)
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["status", "smoke", "--verbose"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "gb:***@db" in err
    assert "topsecret" not in err
