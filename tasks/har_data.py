"""Getting the UCI HAR data: locating, verifying, parsing, caching and downloading.

The data set (Anguita, Ghio, Oneto, Parra & Reyes-Ortiz, ESANN 2013) ships as text files:
per split (``train``, ``test``) one label file, one subject file and 9 raw inertial signal
files (body_acc x/y/z, body_gyro x/y/z, total_acc x/y/z), each line of which is a window of
128 samples. This module turns them into ``HarData`` (numpy arrays, no torch); the task
built on them lives in ``tasks.har``.

Loading pipeline (see ``find_har`` and ``load_har``):

    data_dir given  -> that directory (or zip) must hold the data
    data_dir null   -> default_data_dir(); when empty, download the official archive,
                       verify its SHA-256 and extract it safely
    source          -> parse and verify the 22 text files -> HarData (float32, int64)
                    -> cached as an .npz in the cache dir, memoised per process

Accepted sources: the extracted ``UCI HAR Dataset`` folder (or its parent), the inner
``UCI HAR Dataset.zip``, or the official outer download that nests the inner zip.

Example:
    >>> data = load_har("~/data/UCI HAR Dataset.zip")  # doctest: +SKIP
    >>> data.x_train.shape, data.y_train[:3]  # doctest: +SKIP
    ((7352, 128, 9), array([4, 4, 4]))
"""

from __future__ import annotations

import hashlib
import http.client
import io
import logging
import math
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import IO, NoReturn

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

HAR_URL = (
    "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip"
)
# SHA-256 of the official outer archive at HAR_URL (61,005,872 bytes). UCI publishes no
# checksum; this digest is the one recorded independently by several public projects that
# downloaded the archive from UCI (data provenance notes and download scripts found on
# GitHub), and they agree. The inner zip digest is recorded for reference only (the loader
# also accepts repackaged inner zips, e.g. one without the 561-feature files).
HAR_SHA256 = "c00b803081a5c797cd5e4b83700a9810b38d53d9d84e01917e090e1fdbc81031"
HAR_INNER_SHA256 = "2045e435c955214b38145fb5fa00776c72814f01b203fec405152dac7d5bfeb0"
DOWNLOAD_TIMEOUT_S = 30.0

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
CACHE_VERSION = 1  # bump when the parsed arrays or their layout change

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


# --------------------------------------------------------------------------------------
# Cache (.npz, never unpickled) and per-process memo
# --------------------------------------------------------------------------------------

_MEMO: OrderedDict[str, HarData] = OrderedDict()
_MEMO_SIZE = 2


def clear_memo() -> None:
    """Forget the data sets memoised in this process.

    ``tasks.har.clear_memo`` also forgets the task tensors prepared from them.
    """
    _MEMO.clear()


def _fingerprint(path: Path) -> str:
    """Identity of a source for the cache: format version, path, sizes and mtimes."""
    files = [path] if path.is_file() else [path / rel for s in SPLITS for rel in required_files(s)]
    parts = [f"v{CACHE_VERSION}", str(path.resolve())]
    for file in files:
        try:
            st = file.stat()
            parts.append(f"{file.name}:{st.st_size}:{st.st_mtime_ns}")
        except OSError:
            parts.append(f"{file.name}:missing")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def cache_file(path: Path, cache_dir: Path) -> Path:
    """Cache file of a resolved source: one per source path, overwritten when it changes."""
    name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return cache_dir / f"uci-har-{name}.npz"


def _read_cache(file: Path, key: str, source: Path) -> HarData | None:
    if not file.is_file():
        return None
    try:
        with open(file, "rb") as fh:  # our own handle: np.load leaks it on a truncated npz
            npz = np.load(fh, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            with npz:
                if str(npz["key"]) != key:
                    return None
                arrays = {name: npz[name] for name in _ARRAY_FIELDS}
        data = HarData(**arrays, source=str(source))
        _check_arrays(data)
    except (*_ZIP_ERRORS, KeyError, HarDataError) as exc:
        log.warning("ignoring unreadable HAR cache %s (%s); rebuilding it", file, exc)
        return None
    return data


def _write_cache(file: Path, key: str, data: HarData) -> None:
    """Write atomically (temp file + rename); a cache that cannot be written is not fatal."""
    arrays = {name: getattr(data, name) for name in _ARRAY_FIELDS}
    try:
        file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=file.parent, prefix=file.name, suffix=".tmp")
        try:
            # Uncompressed (measured on the real data): 48 MB, loads in 0.02-0.1 s, writes in
            # 0.1 s; savez_compressed: 24 MB but 0.12-0.15 s to load and 0.8 s to write.
            with os.fdopen(fd, "wb") as out:
                np.savez(out, key=np.array(key), **arrays)
            os.replace(tmp, file)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot write the HAR cache %s (%s); continuing without it", file, exc)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_digest(path: Path) -> bool:
    """On first use of a local archive: is it the official one (outer or inner zip)?

    A zip whose SHA-256 is neither is still read (a repackaged copy, e.g. without the
    561-feature files, holds the same data, and its contents are checked file by file),
    but a warning names its digest. A folder has no digest to check.
    """
    if not path.is_file():
        return False
    found = file_sha256(path)
    if found in (HAR_SHA256, HAR_INNER_SHA256):
        return True
    log.warning("%s: SHA-256 %s is not the official archive's (%s) nor its inner zip's "
                "(%s); reading it anyway, its files, shapes and labels are checked",
                path, found, HAR_SHA256, HAR_INNER_SHA256)
    return False


def load_har(
    source: str | Path,
    *,
    cache_dir: str | Path | None = None,
    expected_windows: Mapping[str, int] | None = OFFICIAL_WINDOWS,
) -> HarData:
    """The data set at ``source``, from the per-process memo, the cache or the text files.

    Args:
        source: a zip or a folder, see ``resolve_source``.
        cache_dir: where the parsed arrays are cached (default ``default_cache_dir()``).
        expected_windows: window counts to enforce, see ``read_har``.

    Returns:
        The shared, memoised ``HarData``: treat its arrays as read-only.
    """
    path = _resolve_or_raise(source)
    key = _fingerprint(path)
    data = _MEMO.get(key)
    if data is None:
        file = cache_file(path, Path(cache_dir) if cache_dir else default_cache_dir())
        data = _read_cache(file, key, path)
        if data is None:
            check_digest(path)
            data = _read_source(path)
            _check_arrays(data)
            _write_cache(file, key, data)
        _MEMO[key] = data
        while len(_MEMO) > _MEMO_SIZE:
            _MEMO.popitem(last=False)
    _MEMO.move_to_end(key)
    _check_counts(data, expected_windows)
    return data


# --------------------------------------------------------------------------------------
# Locating, downloading and extracting
# --------------------------------------------------------------------------------------


def default_data_dir() -> Path:
    """``$GRADBENCH_DATA_DIR/uci-har`` when that is set, else ``~/.cache/gradbench/uci-har``."""
    base = os.environ.get("GRADBENCH_DATA_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "gradbench"
    return root / "uci-har"


def default_cache_dir() -> Path:
    """Where parsed arrays are cached unless ``tasks.har.cache_dir`` says otherwise."""
    return default_data_dir() / "cache"


def _where_to_put(directory: Path, reason: str) -> str:
    return (
        f"UCI HAR data not found in {directory}: {reason}. Put the official archive "
        f"{OUTER_ZIP_NAME!r} (from {HAR_URL}), its inner {INNER_ZIP_NAME!r}, or the extracted "
        f"{ROOT_NAME!r} folder into {directory}, or set the config key tasks.har.data_dir to "
        "where your copy is (GRADBENCH_DATA_DIR moves the default directory)"
    )


def find_har(data_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """Locate the data set; download it into the default directory when allowed.

    Args:
        data_dir: the configured ``tasks.har.data_dir``: a folder or zip that must hold the
            data. ``None``: ``default_data_dir()``, downloaded there when empty.
        download: whether a missing default copy may be downloaded.

    Returns:
        The resolved source (a zip or a ``UCI HAR Dataset`` folder).

    Raises:
        HarDataError: nothing found (and no download possible), saying where to put it.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        found = resolve_source(path)
        if found is None:
            raise HarDataError(_where_to_put(path, "tasks.har.data_dir points there"))
        return found
    directory = default_data_dir()
    found = resolve_source(directory)
    if found is not None:
        return found
    if not download:
        raise HarDataError(_where_to_put(directory, "downloading is off (tasks.har.download)"))
    return download_har(directory)


def _fetch(url: str, directory: Path, sha256: str, timeout: float) -> Path:
    """Download ``url`` to a temp file in ``directory`` and check its SHA-256."""
    fd, name = tempfile.mkstemp(dir=directory, prefix=".download-", suffix=".part")
    tmp = Path(name)
    try:
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            while chunk := resp.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256.lower():
            raise HarDataError(
                f"checksum mismatch for {url}: SHA-256 {digest.hexdigest()}, expected {sha256}; "
                "the download was deleted. Fetch the archive by hand, check it and put it into "
                f"{directory}"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def download_har(
    directory: Path, *, url: str | None = None, sha256: str | None = None,
    timeout: float = DOWNLOAD_TIMEOUT_S,
) -> Path:
    """Download the official archive into ``directory``, verify it and extract it.

    The verified outer archive is extracted (``UCI HAR Dataset.zip`` lands in
    ``directory``) and then removed.

    Args:
        directory: the data directory, created when missing.
        url: defaults to ``HAR_URL``.
        sha256: expected digest, defaults to ``HAR_SHA256``.
        timeout: socket timeout in seconds.

    Returns:
        The resolved source in ``directory``.

    Raises:
        HarDataError: network unreachable (saying where to put the archive by hand),
            checksum mismatch, or an unsafe or corrupt archive.
    """
    url = HAR_URL if url is None else url
    sha256 = HAR_SHA256 if sha256 is None else sha256
    try:
        directory.mkdir(parents=True, exist_ok=True)
        tmp = _fetch(url, directory, sha256, timeout)
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refused, ...
        raise HarDataError(
            _where_to_put(directory, f"the download from {url} failed ({exc})")
        ) from exc
    archive = directory / OUTER_ZIP_NAME
    os.replace(tmp, archive)
    log.info("downloaded %s (SHA-256 verified) to %s", url, archive)
    try:
        safe_extract(archive, directory)
    finally:  # extracted or rejected: the outer archive is not needed any more
        archive.unlink(missing_ok=True)
    return _resolve_or_raise(directory)


def _safe_parts(name: str, archive: Path) -> tuple[str, ...]:
    """Path components of a member name; rejects absolute paths and ``..`` (traversal)."""
    posix = name.replace("\\", "/")
    parts = tuple(p for p in posix.split("/") if p not in ("", "."))
    if posix.startswith("/") or re.match(r"^[A-Za-z]:", posix) or ".." in parts:
        raise HarDataError(f"{archive}: unsafe member {name!r} (absolute path or '..'); "
                           "refusing to extract this archive")
    return parts


def safe_extract(archive: Path, directory: Path) -> list[Path]:
    """Extract ``archive`` into ``directory``, skipping macOS junk.

    Every member name is checked before anything is written: absolute paths, drive letters
    and ``..`` components (path traversal) reject the whole archive. Each file is written to
    a temp file and renamed, so an interrupted extraction leaves no half-written file.

    Returns:
        The extracted files.
    """
    written = []
    with _open_zip(archive, str(archive)) as zf:
        members = [(m, _safe_parts(m.filename, archive)) for m in zf.infolist()
                   if not _is_junk(m.filename)]
        for member, parts in members:
            if member.is_dir() or not parts:
                continue
            written.append(_extract_member(zf, member, directory.joinpath(*parts), archive))
    return written


def _extract_member(zf: zipfile.ZipFile, member: zipfile.ZipInfo, target: Path,
                    archive: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=".extract-", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, zf.open(member) as src:
            shutil.copyfileobj(src, out, 1 << 20)
        os.replace(name, target)
    except _ZIP_ERRORS as exc:
        raise _corrupt_zip(str(archive), f"cannot extract {member.filename!r}", exc) from exc
    finally:
        Path(name).unlink(missing_ok=True)
    return target
