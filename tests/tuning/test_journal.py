"""The Optuna journal file: a torn tail cut back to the last complete record (the original
kept), a damaged line named, and a full disk during an append."""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.storages.journal import _file as journal_backend

from bench import tuning
from bench.errors import DamagedStore, error_line, full_disk
from testkit.suites import SMOKE_STUDY, journal_with_a_study


def _journal(tmp_path: Path) -> tuple[Path, bytes]:
    journal_with_a_study(tmp_path)
    path = tmp_path / "optuna.journal"
    return path, path.read_bytes()


def _trials(tmp_path: Path) -> list[Any]:
    storage = tuning.open_storage(None, tmp_path)
    return optuna.load_study(study_name=SMOKE_STUDY, storage=storage).trials


def _backups(tmp_path: Path) -> list[Path]:
    return sorted(tmp_path.glob("optuna.journal.torn-*"))


def test_a_complete_journal_is_left_untouched(tmp_path: Path) -> None:
    path, before = _journal(tmp_path)
    assert tuning.repair_torn_tail(path) is None
    assert path.read_bytes() == before and not _backups(tmp_path)
    assert tuning.repair_torn_tail(tmp_path / "absent.journal") is None


def test_a_tail_of_nul_bytes_is_cut_and_the_original_kept(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    path, before = _journal(tmp_path)
    path.write_bytes(before + b"\0" * 37)  # extended, its data never written
    message = tuning.repair_torn_tail(path)
    assert message is not None and "nothing but 37 NUL bytes" in message
    assert "\n" not in message
    assert [r.getMessage() for r in caplog.records if r.name == "bench.tuning.journal"] == [message]
    assert path.read_bytes() == before
    [backup] = _backups(tmp_path)
    assert backup.read_bytes() == before + b"\0" * 37 and backup.name in message
    assert len(_trials(tmp_path)) == 6


@pytest.mark.parametrize("tail", [b"cut", b"bad\n", b"\0\0\0\n"],
                         ids=["no-newline", "not-json", "nul-line"])
def test_a_last_record_cut_short_is_dropped_alone(tmp_path: Path, tail: bytes) -> None:
    """The last record cut in the middle (no newline), or a last line that is not JSON:
    that record goes, every record before it stays, and Optuna appends after it again."""
    path, before = _journal(tmp_path)
    last = before.rstrip(b"\n").rsplit(b"\n", 1)[1] + b"\n"
    torn = before[: -len(last)] + (last[: len(last) // 2] if tail == b"cut" else tail)
    path.write_bytes(torn)
    message = tuning.repair_torn_tail(path)
    assert message is not None
    if tail == b"cut":
        assert "a trial's state" in message  # the last record: the sixth trial's state
    assert path.read_bytes() == before[: -len(last)]
    assert _backups(tmp_path)[0].read_bytes() == torn
    trials = _trials(tmp_path)
    assert len(trials) == 6 and trials[-1].state == optuna.trial.TrialState.RUNNING
    study = optuna.load_study(study_name=SMOKE_STUDY, storage=tuning.open_storage(None, tmp_path))
    study.tell(trials[-1].number, 0.5)  # appended after the last complete record
    assert _trials(tmp_path)[-1].value == 0.5


def test_a_file_of_one_partial_line_is_cut_to_empty(tmp_path: Path) -> None:
    path = tmp_path / "optuna.journal"
    path.write_bytes(b'{"op_code":0,"worker_id":"w","study_na')
    assert tuning.repair_torn_tail(path) is not None
    assert path.read_bytes() == b"" and len(_backups(tmp_path)) == 1
    assert not tuning.study_names(tuning.open_storage(None, tmp_path))


@pytest.mark.parametrize(("damage", "problem"), [(b"\xff", "not UTF-8: byte 0xff"),
                                                 (b"}", "not JSON")])
def test_a_damaged_line_is_named_and_never_repaired(tmp_path: Path, damage: bytes,
                                                    problem: str) -> None:
    """A line before the last that cannot be read: the journal is left as it is (the tail
    is no torn write) and opening it names the file and the line."""
    path, before = _journal(tmp_path)
    lines = before.split(b"\n")
    lines[2] = damage + lines[2][1:]  # its opening brace replaced
    path.write_bytes(b"\n".join(lines) + b"partial")
    damaged = path.read_bytes()
    assert tuning.repair_torn_tail(path) is None and path.read_bytes() == damaged
    with pytest.raises(DamagedStore) as raised:
        tuning.open_storage(None, tmp_path)
    text = str(raised.value)
    assert f"{path} is damaged (line 3: {problem}" in text and "\n" not in text
    assert "restore it from a backup" in text and isinstance(raised.value.__cause__, ValueError)


class _FullDisk(io.BytesIO):
    """A file on a full disk: the first half of a write lands, then ENOSPC."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def write(self, data: Any) -> int:
        with open(self._path, "ab") as real:  # noqa: PTH123 - what Optuna's backend calls
            real.write(bytes(data)[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_an_append(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC in the middle of Optuna's append (the lowest write of the journal): one line
    saying so, the trials recorded before intact, the half-written record repaired on the
    next start, and the trial told again once space is freed."""
    path, before = _journal(tmp_path)
    storage = tuning.open_storage(None, tmp_path)
    study = optuna.load_study(study_name=SMOKE_STUDY, storage=storage)
    values = [t.value for t in study.trials]
    trial = study.ask()
    real_open = open
    monkeypatch.setattr(journal_backend, "open",
                        lambda file, mode="r", *a, **k: _FullDisk(file) if mode == "ab"
                        else real_open(file, mode, *a, **k), raising=False)
    with pytest.raises(OSError) as raised:
        study.tell(trial, 0.25)
    assert full_disk(raised.value)
    assert error_line(raised.value, with_type=True) == \
        "OSError: [Errno 28] No space left on device"
    monkeypatch.undo()  # the space freed
    assert tuning.repair_torn_tail(path) is not None
    trials = _trials(tmp_path)
    assert len(trials) == 7 and [t.value for t in trials[:6]] == values
    assert path.read_bytes().startswith(before)
    optuna.load_study(study_name=SMOKE_STUDY, storage=tuning.open_storage(None, tmp_path)).tell(
        trial.number, 0.25)
    states = [t.state for t in _trials(tmp_path)]
    assert states == [optuna.trial.TrialState.COMPLETE] * 7
