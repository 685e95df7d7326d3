"""Finding the UCI HAR data where they belong, and downloading the official archive there.

The default copy lives in ``default_data_dir()``; when it is empty, ``find_har`` downloads the
official archive, checks its SHA-256 (``HAR_SHA256``) and extracts it safely. A local archive
is checked against the same digest on first use (``check_digest``). ``HAR_URL`` and
``HAR_SHA256`` are read from this module at each call (patch them here).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from tasks.har_data.archive import (
    _ZIP_ERRORS,
    INNER_ZIP_NAME,
    OUTER_ZIP_NAME,
    ROOT_NAME,
    HarDataError,
    _corrupt_zip,
    _is_junk,
    _open_zip,
    _resolve_or_raise,
    resolve_source,
)

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
