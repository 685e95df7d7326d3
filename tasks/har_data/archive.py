"""Reading the UCI HAR data: locating the files in a folder or a zip, parsing and verifying.

Per split (``train``, ``test``) the data set has one label file, one subject file and 9 raw
inertial signal files, each line of which is a window of 128 samples; ``read_har`` turns them
into ``HarData`` (numpy arrays, no torch), checking every file, row and label on the way.
Accepted sources: the extracted ``UCI HAR Dataset`` folder (or its parent), the inner
``UCI HAR Dataset.zip``, or the official outer download that nests the inner zip.
"""

from __future__ import annotations

import io
import math
import re
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import IO, NoReturn

import numpy as np
import numpy.typing as npt

OUTER_ZIP_NAME = "human+activity+recognition+using+smartphones.zip"
INNER_ZIP_NAME = "UCI HAR Dataset.zip"
ROOT_NAME = "UCI HAR Dataset"
SPLITS = ("train", "test")
SIGNALS = (
    "body_acc_x", "body_acc_y", "body_acc_z",
    "body_gyro_x", "body_gyro_y", "body_gyro_z",
    "total_acc_x", "total_acc_y", "total_acc_z",
)
CLASS_NAMES = (
    "WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING", "LAYING",
)
WINDOW = 128
OFFICIAL_WINDOWS: Mapping[str, int] = MappingProxyType({"train": 7352, "test": 2947})

FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int64]

_ARRAY_FIELDS = ("x_train", "y_train", "subject_train", "x_test", "y_test", "subject_test")
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)
_INT_RE = re.compile(rb"[+-]?\d+")


class HarDataError(ValueError):
    """The UCI HAR data are missing, unreadable or not what the loader expects."""


@dataclass(frozen=True, eq=False)  # eq=False: hashed by identity, usable as a memo key
class HarData:
    """The raw UCI HAR windows, as read from the original files.

    Attributes:
        x_train: (N_train, 128, 9) float32 signals, channels in ``SIGNALS`` order.
        y_train: (N_train,) int64 activity labels 0..5 (file label - 1, ``CLASS_NAMES``).
        subject_train: (N_train,) int64 subject ids.
        x_test: (N_test, 128, 9) float32.
        y_test: (N_test,) int64 labels 0..5.
        subject_test: (N_test,) int64 subject ids.
        source: where the data were read from (path of the zip or the folder).

    The arrays are made read-only: one copy is shared by all tasks of a process.
    """

    x_train: FloatArray
    y_train: IntArray
    subject_train: IntArray
    x_test: FloatArray
    y_test: IntArray
    subject_test: IntArray
    source: str = ""

    def __post_init__(self) -> None:
        for name in _ARRAY_FIELDS:  # shared by every task of the process: freeze them
            getattr(self, name).flags.writeable = False


# --------------------------------------------------------------------------------------
# Sources: a folder in the original layout or a (possibly nested) zip
# --------------------------------------------------------------------------------------


def required_files(split: str) -> list[str]:
    """Paths, relative to the ``UCI HAR Dataset`` root, of the files one split needs."""
    signals = [f"{split}/Inertial Signals/{name}_{split}.txt" for name in SIGNALS]
    return [f"{split}/y_{split}.txt", f"{split}/subject_{split}.txt", *signals]


class _DirSource:
    """Files under an extracted ``UCI HAR Dataset`` folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.label = str(root)

    def where(self, rel: str) -> str:
        return str(self.root / rel)

    def exists(self, rel: str) -> bool:
        return (self.root / rel).is_file()

    def read(self, rel: str) -> bytes:
        try:
            return (self.root / rel).read_bytes()
        except OSError as exc:
            raise HarDataError(f"{self.where(rel)}: cannot read the file ({exc})") from exc


class _ZipSource:
    """Members of a zip archive whose names start with ``prefix``."""

    def __init__(self, archive: zipfile.ZipFile, prefix: str, label: str) -> None:
        self.archive = archive
        self.prefix = prefix
        self.label = label
        self._names = set(archive.namelist())

    def where(self, rel: str) -> str:
        return f"{self.label}: {self.prefix}{rel}"

    def exists(self, rel: str) -> bool:
        return self.prefix + rel in self._names

    def read(self, rel: str) -> bytes:
        return _read_member(self.archive, self.prefix + rel, self.label)


_Source = _DirSource | _ZipSource


def _corrupt_zip(label: str, detail: str, exc: BaseException) -> HarDataError:
    return HarDataError(
        f"{label}: {detail} ({type(exc).__name__}: {exc}); the archive is truncated or "
        "corrupt: delete it and fetch it again"
    )


def _open_zip(file: Path | IO[bytes], label: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(file)
    except _ZIP_ERRORS as exc:
        raise _corrupt_zip(label, "not a readable zip archive", exc) from exc


def _read_member(archive: zipfile.ZipFile, member: str, label: str) -> bytes:
    try:
        return archive.read(member)
    except _ZIP_ERRORS as exc:
        raise _corrupt_zip(label, f"cannot read member {member!r}", exc) from exc


def _is_junk(name: str) -> bool:
    """macOS resource forks and metadata that some zip tools add."""
    return name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("._")


def _find_prefix(archive: zipfile.ZipFile) -> str | None:
    """The member prefix of the data set root: the folder that holds ``train/``/``test/``."""
    for name in archive.namelist():
        if _is_junk(name):
            continue
        parts = name.split("/")
        for i, part in enumerate(parts[:-1]):
            if part in SPLITS:
                return "".join(f"{p}/" for p in parts[:i])
    return None


def _find_nested(archive: zipfile.ZipFile) -> str | None:
    for name in archive.namelist():
        if not _is_junk(name) and PurePosixPath(name).name == INNER_ZIP_NAME:
            return name
    return None


def _zip_source(archive: zipfile.ZipFile, label: str, stack: ExitStack) -> _ZipSource:
    """The data set inside ``archive``, looking one level into a nested inner zip."""
    prefix = _find_prefix(archive)
    if prefix is not None:
        return _ZipSource(archive, prefix, label)
    nested = _find_nested(archive)
    if nested is None:
        raise HarDataError(
            f"{label}: not a UCI HAR archive: it has no train/ or test/ folder and no "
            f"nested {INNER_ZIP_NAME!r}"
        )
    inner_label = f"{label} > {nested}"
    inner = stack.enter_context(
        _open_zip(io.BytesIO(_read_member(archive, nested, label)), inner_label)
    )
    prefix = _find_prefix(inner)
    if prefix is None:
        raise HarDataError(f"{inner_label}: not a UCI HAR archive: no train/ or test/ folder")
    return _ZipSource(inner, prefix, inner_label)


@contextmanager
def _open_source(path: Path) -> Iterator[_Source]:
    if path.is_dir():
        yield _DirSource(path)
        return
    with ExitStack() as stack:
        archive = stack.enter_context(_open_zip(path, str(path)))
        yield _zip_source(archive, str(path), stack)


def resolve_source(path: str | Path) -> Path | None:
    """The data set at ``path``: a zip file or a ``UCI HAR Dataset`` folder, else None.

    ``path`` may be a zip, the ``UCI HAR Dataset`` folder itself, or a directory that holds
    that folder, ``UCI HAR Dataset.zip`` or the official outer archive (tried in that order).
    """
    path = Path(path).expanduser()
    if path.is_file():
        return path
    if not path.is_dir():
        return None
    if any((path / split).is_dir() for split in SPLITS):
        return path
    for candidate in (path / ROOT_NAME, path / INNER_ZIP_NAME, path / OUTER_ZIP_NAME):
        if candidate.exists():
            return candidate
    return None


# --------------------------------------------------------------------------------------
# Parsing and verification
# --------------------------------------------------------------------------------------


def _parse_ints(data: bytes, where: str) -> IntArray:
    """One integer per non-blank line."""
    values = []
    for lineno, line in enumerate(data.splitlines(), 1):
        token = line.strip()
        if not token:
            continue
        if not _INT_RE.fullmatch(token):
            text = token.decode("latin-1")
            raise HarDataError(f"{where}: line {lineno}: expected one integer, got {text!r}")
        values.append(int(token))
    if not values:
        raise HarDataError(f"{where}: the file is empty")
    return np.array(values, dtype=np.int64)


def _first_bad_value(tokens: list[str]) -> str | None:
    for token in tokens:
        try:
            value = float(token)
        except ValueError:
            return token
        if not math.isfinite(value):
            return token
    return None


def _raise_row_problem(data: bytes, where: str, detail: str) -> NoReturn:
    """Slow path: find the first malformed line of a signal file and name it."""
    rows = 0
    for lineno, line in enumerate(data.decode("latin-1").splitlines(), 1):
        tokens = line.split()
        if not tokens:
            continue
        rows += 1
        if len(tokens) != WINDOW:
            raise HarDataError(
                f"{where}: line {lineno} has {len(tokens)} values, expected {WINDOW}"
            )
        bad = _first_bad_value(tokens)
        if bad is not None:
            raise HarDataError(f"{where}: line {lineno}: non-numeric value {bad!r}")
    if rows == 0:
        raise HarDataError(f"{where}: the file is empty")
    raise HarDataError(f"{where}: cannot parse {WINDOW} numbers per line ({detail})")


def _parse_signal(data: bytes, where: str) -> FloatArray:
    """A signal file: one window of 128 whitespace-separated floats per line -> (N, 128)."""
    import pandas as pd  # lazy: only needed on a cold load; its C parser is ~3x numpy's

    try:
        frame = pd.read_csv(io.BytesIO(data), sep=r"\s+", header=None, dtype=np.float32,
                            engine="c")
    except ValueError as exc:  # ParserError and EmptyDataError are ValueErrors
        _raise_row_problem(data, where, str(exc))
    values: FloatArray = frame.to_numpy(dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != WINDOW or not np.isfinite(values).all():
        _raise_row_problem(data, where, f"parsed shape {values.shape}")
    return values


def _read_split(source: _Source, split: str) -> tuple[FloatArray, IntArray, IntArray]:
    """x (N, 128, 9), labels 0..5 and subject ids of one split."""
    y_rel, subject_rel = f"{split}/y_{split}.txt", f"{split}/subject_{split}.txt"
    labels = _parse_ints(source.read(y_rel), source.where(y_rel))
    bad = np.flatnonzero((labels < 1) | (labels > len(CLASS_NAMES)))
    if bad.size:
        raise HarDataError(f"{source.where(y_rel)}: line {bad[0] + 1}: label {labels[bad[0]]} "
                           f"outside 1..{len(CLASS_NAMES)}")
    subjects = _parse_ints(source.read(subject_rel), source.where(subject_rel))
    n = len(labels)
    _check_rows(source.where(subject_rel), len(subjects), n, y_rel)
    if (subjects < 1).any():
        raise HarDataError(f"{source.where(subject_rel)}: subject ids must be positive")
    x = np.empty((n, WINDOW, len(SIGNALS)), dtype=np.float32)  # (N, T, C)
    for channel, name in enumerate(SIGNALS):
        rel = f"{split}/Inertial Signals/{name}_{split}.txt"
        values = _parse_signal(source.read(rel), source.where(rel))  # (N, T)
        _check_rows(source.where(rel), len(values), n, y_rel)
        x[:, :, channel] = values
    return x, labels - 1, subjects


def _check_rows(where: str, rows: int, expected: int, label_file: str) -> None:
    if rows != expected:
        raise HarDataError(f"{where}: {rows} rows, but {label_file} has {expected} labels")


def _check_present(source: _Source) -> None:
    missing = [rel for split in SPLITS for rel in required_files(split) if not source.exists(rel)]
    if missing:
        raise HarDataError(
            f"{source.label}: missing file(s) {', '.join(source.where(m) for m in missing)}"
        )


def _read_source(path: Path) -> HarData:
    with _open_source(path) as source:
        _check_present(source)
        parts = {split: _read_split(source, split) for split in SPLITS}
    return HarData(*parts["train"], *parts["test"], source=str(path))


def _check_counts(data: HarData, expected: Mapping[str, int] | None) -> None:
    if expected is None:
        return
    for split in SPLITS:
        n = len(getattr(data, f"y_{split}"))
        if split in expected and n != expected[split]:
            raise HarDataError(
                f"{data.source}: the {split} split has {n} windows, the official UCI HAR data "
                f"have {expected[split]} (pass expected_windows=None to accept other sizes)"
            )


def _check_arrays(data: HarData) -> None:
    """Shapes, dtypes and label range: cheap invariants, also applied to a cached copy."""
    for split in SPLITS:
        x, y, s = (getattr(data, f"{f}_{split}") for f in ("x", "y", "subject"))
        n = len(y)
        if x.dtype != np.float32 or x.shape != (n, WINDOW, len(SIGNALS)) or s.shape != (n,):
            raise HarDataError(f"{data.source}: inconsistent {split} arrays")
        if y.dtype != np.int64 or s.dtype != np.int64 or n == 0:
            raise HarDataError(f"{data.source}: bad {split} label/subject arrays")
        if y.min() < 0 or y.max() >= len(CLASS_NAMES):
            raise HarDataError(f"{data.source}: {split} labels outside 0..5")


def _resolve_or_raise(source: str | Path) -> Path:
    path = resolve_source(source)
    if path is None:
        raise HarDataError(
            f"no UCI HAR data at {Path(source).expanduser()}: expected {INNER_ZIP_NAME!r}, "
            f"{OUTER_ZIP_NAME!r} or an extracted {ROOT_NAME!r} folder"
        )
    return path


def read_har(
    source: str | Path, *, expected_windows: Mapping[str, int] | None = OFFICIAL_WINDOWS
) -> HarData:
    """Parse and verify the data set at ``source``, without any cache or memo.

    Args:
        source: a zip (inner or official outer) or a folder, see ``resolve_source``.
        expected_windows: window counts per split to enforce (default: the official
            7352 / 2947); ``None`` accepts any size, e.g. for a small test fixture.

    Raises:
        HarDataError: naming the file and the problem (missing file, corrupt zip, row of
            the wrong length, non-numeric value, bad label, wrong window count).
    """
    data = _read_source(_resolve_or_raise(source))
    _check_arrays(data)
    _check_counts(data, expected_windows)
    return data

