"""Getting the UCI HAR data: locating, verifying, parsing, caching and downloading.

The data set (Anguita, Ghio, Oneto, Parra & Reyes-Ortiz, ESANN 2013) ships as text files:
per split (``train``, ``test``) one label file, one subject file and 9 raw inertial signal
files (body_acc x/y/z, body_gyro x/y/z, total_acc x/y/z), each line of which is a window of
128 samples. This package turns them into ``HarData`` (numpy arrays, no torch); the task
built on them lives in ``tasks.har``. One module per step:

- ``archive``: the files in a folder or a (nested) zip, parsed and verified (``read_har``);
- ``cache``: the parsed arrays cached as an .npz and memoised per process (``load_har``);
- ``download``: the default copy, downloaded and checked against the official SHA-256
  (``find_har``); it reads ``HAR_URL`` and ``HAR_SHA256`` from itself, at each call.

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

from tasks.har_data.archive import (
    CLASS_NAMES,
    INNER_ZIP_NAME,
    OFFICIAL_WINDOWS,
    OUTER_ZIP_NAME,
    ROOT_NAME,
    SIGNALS,
    SPLITS,
    WINDOW,
    FloatArray,
    HarData,
    HarDataError,
    IntArray,
    read_har,
    required_files,
    resolve_source,
)
from tasks.har_data.cache import CACHE_VERSION, cache_file, clear_memo, load_har
from tasks.har_data.download import (
    DOWNLOAD_TIMEOUT_S,
    HAR_INNER_SHA256,
    HAR_SHA256,
    HAR_URL,
    check_digest,
    default_cache_dir,
    default_data_dir,
    download_har,
    file_sha256,
    find_har,
    safe_extract,
)

HELPER = True  # the loader of tasks.har, no task: the registry's scan skips it (bench.registry)

__all__ = [
    "CACHE_VERSION",
    "CLASS_NAMES",
    "DOWNLOAD_TIMEOUT_S",
    "HAR_INNER_SHA256",
    "HAR_SHA256",
    "HAR_URL",
    "INNER_ZIP_NAME",
    "OFFICIAL_WINDOWS",
    "OUTER_ZIP_NAME",
    "ROOT_NAME",
    "SIGNALS",
    "SPLITS",
    "WINDOW",
    "FloatArray",
    "HarData",
    "HarDataError",
    "IntArray",
    "cache_file",
    "check_digest",
    "clear_memo",
    "default_cache_dir",
    "default_data_dir",
    "download_har",
    "file_sha256",
    "find_har",
    "load_har",
    "read_har",
    "required_files",
    "resolve_source",
    "safe_extract",
]
