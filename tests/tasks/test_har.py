"""Tests of the UCI HAR loader and task.

Most tests run on a tiny data set written in the exact original layout (``testkit.har``: 4
train subjects, 2 test subjects, 2 windows per subject and label, values formatted like the
original ``1.0128170e+000``), as a folder, as ``UCI HAR Dataset.zip`` and nested in an outer
zip.
One test reads the real copy next to the repository when it exists.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import http.server
import math
import os
import re
import shutil
import threading
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from tasks import har, har_data
from testkit.har import (
    PER_LABEL,
    TEST_SUBJECTS,
    TRAIN_SUBJECTS,
    Fixture,
    make_fixture,
    write_dir,
    write_outer,
    write_zip,
)

REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "uci-har"
REAL_ZIP = REAL_DIR / "UCI HAR Dataset.zip"
CPU = torch.device("cpu")
DEVICES = [
    pytest.param(CPU, id="cpu"),
    pytest.param(torch.device("cuda"), id="cuda", marks=[
        pytest.mark.cuda,
        pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
    ]),
]


# --------------------------------------------------------------------------------------
# The fixture data set (testkit.har) in its source forms
# --------------------------------------------------------------------------------------


@dataclass
class Sources:
    parent: Path  # holds the "UCI HAR Dataset" folder
    root: Path
    inner: Path
    inner_dir: Path  # holds only the inner zip
    outer: Path
    outer_dir: Path  # holds only the outer zip


@pytest.fixture(scope="module")
def fx() -> Fixture:
    return make_fixture()


@pytest.fixture(scope="module")
def sources(fx: Fixture, tmp_path_factory: pytest.TempPathFactory) -> Sources:
    base = tmp_path_factory.mktemp("har-sources")
    root = write_dir(fx.files, base / "extracted")
    inner = write_zip(fx.files, base / "inner" / har_data.INNER_ZIP_NAME)
    outer = write_outer(inner, base / "outer" / har_data.OUTER_ZIP_NAME)
    return Sources(root.parent, root, inner, inner.parent, outer, outer.parent)


@pytest.fixture(scope="module")
def fx_data(sources: Sources) -> har_data.HarData:
    return har_data.read_har(sources.root, expected_windows=None)


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh memo, a private default data dir and no network beyond 127.0.0.1."""
    har.clear_memo()
    monkeypatch.setenv("GRADBENCH_DATA_DIR", str(tmp_path / "default-data"))
    real_urlopen = urllib.request.urlopen

    def local_only(url: str, *args: Any, **kwargs: Any) -> Any:
        if not str(url).startswith("http://127.0.0.1:"):
            raise urllib.error.URLError("network disabled in tests")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", local_only)


def _assert_same(data: har_data.HarData, fx: Fixture) -> None:
    for split in har_data.SPLITS:
        np.testing.assert_array_equal(getattr(data, f"x_{split}"), fx.x[split])
        np.testing.assert_array_equal(getattr(data, f"y_{split}"), fx.y[split])
        np.testing.assert_array_equal(getattr(data, f"subject_{split}"), fx.subjects[split])


def _with(fx: Fixture, rel: str, text: str | None) -> dict[str, str]:
    """The fixture's files with one file replaced (or removed when ``text`` is None)."""
    files = dict(fx.files)
    if text is None:
        del files[rel]
    else:
        files[rel] = text
    return files


def _edit_line(text: str, index: int, edit: Any) -> str:
    lines = text.splitlines()
    lines[index] = edit(lines[index])
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def test_reads_the_values_written(fx: Fixture, fx_data: har_data.HarData) -> None:
    _assert_same(fx_data, fx)
    assert fx_data.x_train.shape == (len(TRAIN_SUBJECTS) * 6 * PER_LABEL, 128, 9)
    assert fx_data.x_train.dtype == np.float32 and fx_data.y_train.dtype == np.int64
    assert fx_data.subject_test.dtype == np.int64
    assert set(fx_data.y_train.tolist()) == set(range(6))


def test_channel_order_follows_the_signal_files(fx: Fixture, fx_data: har_data.HarData) -> None:
    assert har_data.SIGNALS == ("body_acc_x", "body_acc_y", "body_acc_z", "body_gyro_x",
                           "body_gyro_y", "body_gyro_z", "total_acc_x", "total_acc_y",
                           "total_acc_z")
    first = float(fx.files["train/Inertial Signals/total_acc_x_train.txt"].split()[0])
    assert fx_data.x_train[0, 0, 6] == np.float32(first)
    means = fx_data.x_train.mean(axis=(0, 1))
    np.testing.assert_allclose(means - means[0], 10.0 * np.arange(9), atol=0.2)


@pytest.mark.parametrize("kind", ["parent", "inner", "inner_dir", "outer", "outer_dir"])
def test_every_source_form_gives_identical_arrays(
    fx: Fixture, sources: Sources, fx_data: har_data.HarData, kind: str
) -> None:
    data = har_data.read_har(getattr(sources, kind), expected_windows=None)
    for name in ("x_train", "y_train", "subject_train", "x_test", "y_test", "subject_test"):
        np.testing.assert_array_equal(getattr(data, name), getattr(fx_data, name))


def test_official_counts_are_enforced_by_default(sources: Sources, tmp_path: Path) -> None:
    with pytest.raises(har_data.HarDataError, match="7352") as info:
        har_data.read_har(sources.root)
    assert "expected_windows=None" in str(info.value)
    har_data.load_har(sources.inner, cache_dir=tmp_path, expected_windows=None)
    with pytest.raises(har_data.HarDataError, match="7352"):  # also from the memo and the cache
        har_data.load_har(sources.inner, cache_dir=tmp_path)
    har.clear_memo()
    with pytest.raises(har_data.HarDataError, match="7352"):
        har_data.load_har(sources.inner, cache_dir=tmp_path)


def test_nothing_at_the_path(tmp_path: Path) -> None:
    with pytest.raises(har_data.HarDataError, match="no UCI HAR data at"):
        har_data.read_har(tmp_path / "empty", expected_windows=None)


# --------------------------------------------------------------------------------------
# Cache and memo
# --------------------------------------------------------------------------------------


def _forbidden(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the text files were read although the cache is valid")


def test_cache_is_written_then_used(
    fx: Fixture, sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = tmp_path / "cache"
    first = har_data.load_har(sources.inner, cache_dir=cache, expected_windows=None)
    files = list(cache.iterdir())
    assert [f.suffix for f in files] == [".npz"]
    har.clear_memo()
    monkeypatch.setattr(har_data.cache, "_read_source", _forbidden)
    second = har_data.load_har(sources.inner, cache_dir=cache, expected_windows=None)
    assert second is not first
    _assert_same(second, fx)


def test_memo_shares_one_copy(sources: Sources, tmp_path: Path) -> None:
    a = har_data.load_har(sources.outer, cache_dir=tmp_path, expected_windows=None)
    b = har_data.load_har(sources.outer, cache_dir=tmp_path, expected_windows=None)
    assert a is b
    t1 = har.HarTask(a, seed=0, device=CPU, val_subjects=1)
    t2 = har.HarTask(b, seed=0, device=CPU, val_subjects=1)
    assert t1.split("test")[0] is t2.split("test")[0]  # tensors shared, not copied per trial


def _garbage(file: Path, key: str) -> None:
    file.write_bytes(b"not an npz file" * 100)


def _truncated(file: Path, key: str) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _pickled(file: Path, key: str) -> None:
    np.savez(file, key=np.array(key), x_train=np.array([{"a": 1}], dtype=object))


@pytest.mark.parametrize("corrupt", [_garbage, _truncated, _pickled])
def test_corrupt_cache_is_rebuilt(
    fx: Fixture, sources: Sources, tmp_path: Path, corrupt: Any
) -> None:
    har_data.load_har(sources.inner, cache_dir=tmp_path, expected_windows=None)
    (file,) = tmp_path.glob("*.npz")
    corrupt(file, har_data.cache._fingerprint(sources.inner))
    har.clear_memo()
    _assert_same(har_data.load_har(sources.inner, cache_dir=tmp_path, expected_windows=None), fx)
    with np.load(file, allow_pickle=False) as npz:  # rewritten, valid again
        assert npz["x_train"].shape == fx.x["train"].shape


def test_unwritable_cache_is_not_fatal(
    fx: Fixture, sources: Sources, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _assert_same(har_data.load_har(sources.inner, cache_dir=blocker / "cache",
                              expected_windows=None), fx)
    assert "cannot write the HAR cache" in caplog.text


def test_cache_is_rebuilt_when_the_source_changes(fx: Fixture, tmp_path: Path) -> None:
    root = write_dir(fx.files, tmp_path / "data")
    har_data.load_har(root, cache_dir=tmp_path / "cache", expected_windows=None)
    rel = "train/Inertial Signals/total_acc_x_train.txt"
    path = root / rel
    path.write_text(_edit_line(fx.files[rel], 0, lambda ln: f"{'1.2500000e+000':>16}" + ln[16:]))
    later = path.stat().st_mtime + 10
    os.utime(path, (later, later))
    har.clear_memo()
    data = har_data.load_har(root, cache_dir=tmp_path / "cache", expected_windows=None)
    assert data.x_train[0, 0, 6] == np.float32(1.25)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # overwritten, not piled up


# --------------------------------------------------------------------------------------
# Broken data: one clear error naming the file
# --------------------------------------------------------------------------------------


def test_truncated_zip(sources: Sources, tmp_path: Path) -> None:
    bad = tmp_path / har_data.INNER_ZIP_NAME
    raw = sources.inner.read_bytes()
    bad.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(har_data.HarDataError, match="truncated or corrupt") as info:
        har_data.read_har(bad, expected_windows=None)
    assert str(bad) in str(info.value)


def test_corrupt_member_is_named(fx: Fixture, tmp_path: Path) -> None:
    rel = "test/Inertial Signals/body_gyro_z_test.txt"
    path = write_zip(fx.files, tmp_path / har_data.INNER_ZIP_NAME, compression=zipfile.ZIP_STORED)
    raw = bytearray(path.read_bytes())
    at = raw.find(fx.files[rel][:64].encode()) + 40
    raw[at] = ord("7") if raw[at] != ord("7") else ord("3")  # CRC no longer matches
    path.write_bytes(bytes(raw))
    with pytest.raises(har_data.HarDataError, match="CRC") as info:
        har_data.read_har(path, expected_windows=None)
    assert f"{har_data.ROOT_NAME}/{rel}" in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("as_zip", [False, True])
def test_missing_file_is_named(fx: Fixture, tmp_path: Path, as_zip: bool) -> None:
    files = _with(fx, "train/Inertial Signals/body_gyro_y_train.txt", None)
    source = (write_zip(files, tmp_path / har_data.INNER_ZIP_NAME) if as_zip
              else write_dir(files, tmp_path))
    with pytest.raises(har_data.HarDataError, match="missing file") as info:
        har_data.read_har(source, expected_windows=None)
    assert "train/Inertial Signals/body_gyro_y_train.txt" in str(info.value)


@pytest.mark.parametrize(("index", "delta"), [(2, -1), (0, -1), (5, 1)])
def test_row_of_the_wrong_length(fx: Fixture, tmp_path: Path, index: int, delta: int) -> None:
    rel = "test/Inertial Signals/body_acc_y_test.txt"

    def edit(line: str) -> str:
        return line[:-16] if delta < 0 else line + f"{'1.0000000e+000':>16}"

    root = write_dir(_with(fx, rel, _edit_line(fx.files[rel], index, edit)), tmp_path)
    with pytest.raises(har_data.HarDataError) as info:
        har_data.read_har(root, expected_windows=None)
    message = str(info.value)
    assert rel in message and f"line {index + 1} has {128 + delta} values, expected 128" in message


@pytest.mark.parametrize("token", ["abc", "nan", "1.0e+0x0"])
def test_non_numeric_value(fx: Fixture, tmp_path: Path, token: str) -> None:
    rel = "train/Inertial Signals/body_acc_z_train.txt"
    text = _edit_line(fx.files[rel], 1, lambda ln: ln[:-16] + f"{token:>16}")
    root = write_dir(_with(fx, rel, text), tmp_path)
    expected = re.escape(f"line 2: non-numeric value '{token}'")
    with pytest.raises(har_data.HarDataError, match=expected) as info:
        har_data.read_har(root, expected_windows=None)
    assert rel in str(info.value)


def test_bad_label(fx: Fixture, tmp_path: Path) -> None:
    text = _edit_line(fx.files["train/y_train.txt"], 3, lambda ln: "7")
    source = write_zip(_with(fx, "train/y_train.txt", text), tmp_path / "x.zip")
    with pytest.raises(har_data.HarDataError, match="line 4: label 7 outside 1..6") as info:
        har_data.read_har(source, expected_windows=None)
    assert "y_train.txt" in str(info.value)


def test_non_integer_subject(fx: Fixture, tmp_path: Path) -> None:
    text = _edit_line(fx.files["test/subject_test.txt"], 0, lambda ln: "2.5")
    root = write_dir(_with(fx, "test/subject_test.txt", text), tmp_path)
    expected = "subject_test.txt: line 1: expected one integer"
    with pytest.raises(har_data.HarDataError, match=expected):
        har_data.read_har(root, expected_windows=None)


def test_signal_rows_must_match_the_labels(fx: Fixture, tmp_path: Path) -> None:
    rel = "train/Inertial Signals/total_acc_z_train.txt"
    text = "".join(f"{ln}\n" for ln in fx.files[rel].splitlines()[:-1])
    root = write_dir(_with(fx, rel, text), tmp_path)
    with pytest.raises(har_data.HarDataError, match="rows, but train/y_train.txt has 48 labels"):
        har_data.read_har(root, expected_windows=None)


@pytest.mark.parametrize("name", ["../evil.txt", "UCI HAR Dataset/../../evil.txt",
                                  "/tmp/evil-har.txt", "C:/evil.txt", "a\\..\\..\\evil.txt"])
def test_extraction_rejects_path_traversal(tmp_path: Path, name: str) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("UCI HAR Dataset/README.txt", "fine")
        zf.writestr(zipfile.ZipInfo(name), "evil")
    dest = tmp_path / "dest" / "inner"
    dest.mkdir(parents=True)
    with pytest.raises(har_data.HarDataError, match="unsafe member"):
        har_data.safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # checked before anything is written
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "dest" / "evil.txt").exists()


def test_extraction_skips_macos_junk(sources: Sources, tmp_path: Path) -> None:
    written = har_data.safe_extract(sources.outer, tmp_path)
    expected = sorted([har_data.INNER_ZIP_NAME, "UCI HAR Dataset.names"])
    assert sorted(p.name for p in written) == expected
    assert not (tmp_path / "__MACOSX").exists()


# --------------------------------------------------------------------------------------
# Locating and downloading
# --------------------------------------------------------------------------------------


def _default_dir(tmp_path: Path) -> Path:
    return tmp_path / "default-data" / "uci-har"  # see the _isolated fixture


def test_offline_error_says_where_to_put_the_archive(tmp_path: Path) -> None:
    with pytest.raises(har.HarDataError) as info:
        har.build({"data_dir": None}, seed=0, device=CPU)
    message = str(info.value)
    assert str(_default_dir(tmp_path)) in message and "tasks.har.data_dir" in message
    assert har_data.INNER_ZIP_NAME in message and har_data.OUTER_ZIP_NAME in message
    assert "network disabled in tests" in message and "\n" not in message
    assert list(_default_dir(tmp_path).iterdir()) == []  # no partial download left


def test_download_off_and_explicit_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(har.HarDataError, match="tasks.har.download") as info:
        har.build({"download": False}, seed=0, device=CPU)
    assert str(_default_dir(tmp_path)) in str(info.value)
    missing = tmp_path / "nowhere"
    with pytest.raises(har.HarDataError, match="tasks.har.data_dir") as info:
        har.build({"data_dir": str(missing)}, seed=0, device=CPU)
    assert str(missing) in str(info.value)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A folder served over HTTP on 127.0.0.1 from a thread: (base URL, folder)."""
    folder = tmp_path / "www"
    folder.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serve = functools.partial(server.serve_forever, poll_interval=0.05)
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", folder
    server.shutdown()
    server.server_close()
    thread.join()


def test_download_with_a_wrong_checksum_is_rejected(
    sources: Sources, served: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, folder = served
    shutil.copy(sources.outer, folder / "har.zip")
    # HAR_SHA256 stays the official one
    monkeypatch.setattr(har_data.download, "HAR_URL", f"{base}/har.zip")
    with pytest.raises(har_data.HarDataError, match="checksum mismatch"):
        har_data.find_har(None)
    assert list(_default_dir(tmp_path).iterdir()) == []


def test_download_is_verified_and_extracted(
    fx: Fixture, sources: Sources, served: tuple[str, Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, folder = served
    shutil.copy(sources.outer, folder / "har.zip")
    monkeypatch.setattr(har_data.download, "HAR_URL", f"{base}/har.zip")
    digest = hashlib.sha256(sources.outer.read_bytes()).hexdigest()
    monkeypatch.setattr(har_data.download, "HAR_SHA256", digest)
    path = har_data.find_har(None)
    directory = _default_dir(tmp_path)
    assert path == directory / har_data.INNER_ZIP_NAME
    names = sorted(p.name for p in directory.iterdir())
    assert names == sorted([har_data.INNER_ZIP_NAME, "UCI HAR Dataset.names"])
    _assert_same(har_data.read_har(path, expected_windows=None), fx)
    shutil.rmtree(folder)  # a second lookup finds the local copy and downloads nothing
    assert har_data.find_har(None) == path


# --------------------------------------------------------------------------------------
# The task
# --------------------------------------------------------------------------------------


def test_validation_holds_out_whole_training_subjects(fx_data: har_data.HarData) -> None:
    task = har.HarTask(fx_data, seed=0, device=CPU, val_subjects=2)
    info = task.describe()
    assert len(info["val_subjects"]) == 2
    assert set(info["val_subjects"]).isdisjoint(info["train_subjects"])
    assert set(info["val_subjects"]) | set(info["train_subjects"]) == set(TRAIN_SUBJECTS)
    assert info["val_size"] == 2 * 6 * PER_LABEL and info["test_size"] == len(fx_data.y_test)
    assert info["train_size"] + info["val_size"] == len(fx_data.y_train)
    again = har.HarTask(fx_data, seed=0, device=CPU, val_subjects=2)
    assert again.val_subjects == task.val_subjects  # fixed by the seed
    draws = {har.HarTask(fx_data, seed=s, device=CPU, val_subjects=2).val_subjects
             for s in range(8)}
    assert len(draws) > 1


@pytest.mark.parametrize("bad", [0, 4, [2], [3, 3], [1, 3, 5, 6], [], True, "1"])
def test_bad_val_subjects(fx_data: har_data.HarData, bad: Any) -> None:
    with pytest.raises(ValueError, match="tasks.har.val_subjects"):
        har.HarTask(fx_data, seed=0, device=CPU, val_subjects=bad)


def test_zscore_uses_the_training_statistics(fx: Fixture, fx_data: har_data.HarData) -> None:
    task = har.HarTask(fx_data, seed=0, device=CPU, val_subjects=[6])
    fit = fx.x["train"][fx.subjects["train"] != 6].astype(np.float64)
    mean, std = fit.mean(axis=(0, 1)), fit.std(axis=(0, 1))
    np.testing.assert_allclose(task.channel_stats[0], mean, rtol=1e-6)
    np.testing.assert_allclose(task.channel_stats[1], std, rtol=1e-6)
    x_train = task.split("train")[0].double()
    np.testing.assert_allclose(x_train.mean(dim=(0, 1)).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(x_train.std(dim=(0, 1), correction=0).numpy(), 1.0, atol=1e-5)
    for name, raw in (("val", fx.x["train"][fx.subjects["train"] == 6]), ("test", fx.x["test"])):
        x = task.split(name)[0].numpy()
        np.testing.assert_allclose(x, (raw - mean) / std, rtol=1e-5, atol=1e-5)
    val_mean = task.split("val")[0].mean(dim=(0, 1))
    assert (val_mean.abs() > 0.02).all()  # its own statistics would give 0
    _assert_same(fx_data, fx)  # the shared raw arrays are untouched


@pytest.mark.parametrize("device", DEVICES)
def test_train_batches(fx_data: har_data.HarData, device: torch.device) -> None:
    task = har.HarTask(fx_data, seed=0, device=device, val_subjects=1)
    x, y = task.train_batch(16, task.train_generator(seed=3))
    assert x.shape == (16, 128, 9) and y.shape == (16,)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.device.type == device.type and y.device.type == device.type
    x2, y2 = task.train_batch(16, task.train_generator(seed=3))
    assert torch.equal(x, x2) and torch.equal(y, y2)
    for name in ("val", "test"):
        xs, ys = task.split(name)
        assert xs.device.type == device.type and ys.device.type == device.type
    with pytest.raises(ValueError, match="unknown split"):
        task.split("dev")


def test_metrics_recomputed_by_hand(fx_data: har_data.HarData) -> None:
    task = har.HarTask(fx_data, seed=0, device=CPU, val_subjects=1)
    target = torch.tensor([0, 0, 1, 1, 2, 5])
    pred = [0, 1, 1, 1, 2, 2]
    logits = torch.full((6, 6), -1.0)
    logits[range(6), pred] = 2.0
    assert task.confusion_matrix(logits, target) == [
        [1, 1, 0, 0, 0, 0], [0, 2, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0],
    ]
    # F1 = 2 TP / (2 TP + FP + FN): class 0: 2/3, 1: 4/5, 2: 2/3, 3 and 4 absent: 0, 5: 0
    f1 = [2 / 3, 4 / 5, 2 / 3, 0.0, 0.0, 0.0]
    assert task.per_class_f1(logits, target) == pytest.approx(f1)
    # Cross-entropy per row: -log softmax of the true class; 4 rows right, 2 wrong.
    norm = math.log(math.exp(2.0) + 5 * math.exp(-1.0))
    loss = (4 * (norm - 2.0) + 2 * (norm + 1.0)) / 6
    metrics = task.evaluate(logits, target)
    assert metrics == pytest.approx({"loss": loss, "acc": 4 / 6, "macro_f1": sum(f1) / 6})
    assert task.loss(logits, target).item() == pytest.approx(loss)
    assert task.solved({"acc": 0.9}) and not task.solved({"acc": 0.899})
    assert task.baseline == pytest.approx(math.log(6))  # balanced fixture: the prior is uniform


def test_the_trivial_predictor_is_the_training_prior(fx_data: har.HarData) -> None:
    from tasks import trivial_metrics

    task = har.HarTask(fx_data, seed=0, device=CPU, val_subjects=1)
    y_train = task.split("train")[1]
    prior = torch.bincount(y_train, minlength=6).double() / len(y_train)
    _, y_test = task.split("test")
    measured = trivial_metrics(task, "test")
    assert measured["loss"] == pytest.approx(float(-prior.log()[y_test].mean()), rel=1e-5)
    majority = int(prior.argmax())  # argmax of a constant output: the most frequent class
    assert measured["acc"] == pytest.approx(float((y_test == majority).double().mean()))
    assert set(trivial_metrics(task, "val")) == {"loss", "acc", "macro_f1"}


def test_task_definition(fx_data: har.HarData) -> None:
    task = har.HarTask(fx_data, seed=0, device=CPU, val_subjects=1)
    assert (task.name, task.seq_len, task.input_size, task.output_size) == ("har", 128, 9, 6)
    assert (task.per_step, task.metric, task.direction) == (False, "acc", "maximize")
    info = task.describe()
    assert info["channels"] == list(har.SIGNALS) and info["class_names"] == list(har.CLASS_NAMES)
    assert info["test_subjects"] == list(TEST_SUBJECTS) and info["source"] == fx_data.source
    assert issubclass(har.HarDataError, ValueError)


def test_task_module_reexports_the_loader_names() -> None:
    for name in ("HarDataError", "find_har", "load_har", "HarData", "CLASS_NAMES", "SIGNALS"):
        assert getattr(har, name) is getattr(har_data, name), name


def test_loader_modules_do_not_import_torch() -> None:
    files = sorted(Path(har_data.__file__).parent.glob("*.py"))
    assert len(files) > 1  # the package and its modules
    for file in files:
        tree = ast.parse(file.read_text())
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for alias in node.names]
        imported += [node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)]
        assert not [name for name in imported if name.split(".")[0] == "torch"], file.name


def test_clear_memo_forgets_data_and_prepared_tensors(sources: Sources, tmp_path: Path) -> None:
    data = har_data.load_har(sources.inner, cache_dir=tmp_path, expected_windows=None)
    first = har.HarTask(data, seed=0, device=CPU, val_subjects=1)
    har.clear_memo()
    again = har_data.load_har(sources.inner, cache_dir=tmp_path, expected_windows=None)
    assert again is not data  # reloaded (from the cache), not the memoised copy
    second = har.HarTask(data, seed=0, device=CPU, val_subjects=1)
    assert second.split("test")[0] is not first.split("test")[0]  # tensors rebuilt


@pytest.mark.parametrize(("params", "match"), [
    ({"foo": 1}, r"tasks\.har\.foo.*valid keys: data_dir, val_subjects, download, cache_dir"),
    ({"seq_len": 128}, r"tasks\.har\.seq_len: har sequences are fixed at 128"),
    ({"download": "yes"}, r"tasks\.har\.download"),
    ({"data_dir": 3}, r"tasks\.har\.data_dir"),
    ({"val_subjects": 2.5}, r"tasks\.har\.val_subjects"),
])
def test_bad_params(params: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        har.build(params, seed=0, device=CPU)


# --------------------------------------------------------------------------------------
# The real data
# --------------------------------------------------------------------------------------


@pytest.mark.skipif(not REAL_ZIP.is_file(), reason=f"no real UCI HAR copy at {REAL_ZIP}")
def test_real_data(tmp_path: Path) -> None:
    task = har.build({"data_dir": str(REAL_DIR), "cache_dir": str(tmp_path)}, seed=0, device=CPU)
    data = task.data
    assert data.x_train.shape == (7352, 128, 9) and data.x_test.shape == (2947, 128, 9)
    assert np.bincount(data.y_train).tolist() == [1226, 1073, 986, 1286, 1374, 1407]
    assert np.bincount(data.y_test).tolist() == [496, 471, 420, 491, 532, 537]
    assert data.x_train[0, 0, 6] == np.float32(1.0128170)
    train, test = set(data.subject_train.tolist()), set(data.subject_test.tolist())
    assert len(train) == 21 and len(test) == 9 and train.isdisjoint(test)
    info = task.describe()
    assert len(info["val_subjects"]) == 4 and info["train_size"] + info["val_size"] == 7352
    assert 1.7 < task.baseline < math.log(6)


def test_final_seeds_record_the_confusion_matrix_under_the_records_class_names(
    fx_data: har_data.HarData,
) -> None:
    from bench.models import ModelSizes, build_model
    from bench.registry import TASKS
    from bench.run.records import confusion_rows

    task = har.HarTask(fx_data, seed=0, device=CPU, val_subjects=1)
    torch.manual_seed(0)
    model = build_model("gru", ModelSizes(9, 6, False), hidden_size=4)
    classes = TASKS.get("har").classes
    assert classes == har.CLASS_NAMES
    rows = confusion_rows(task, model, classes)
    assert len(rows) == 36 and {r["true"] for r in rows} == set(har.CLASS_NAMES)
    assert sum(r["count"] for r in rows) == len(task.split("test")[1])


def test_a_local_archive_is_checked_against_the_official_digest_on_first_use(
    sources: Sources, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    digest = hashlib.sha256(sources.outer.read_bytes()).hexdigest()
    with caplog.at_level("WARNING", logger=har_data.download.log.name):
        har_data.load_har(sources.outer, cache_dir=tmp_path / "a", expected_windows=None)
    assert f"SHA-256 {digest} is not the official archive's ({har_data.HAR_SHA256})" \
        in caplog.text  # a repackaged copy: read, and said so
    caplog.clear()
    har.clear_memo()
    with caplog.at_level("WARNING", logger=har_data.download.log.name):  # cached: not hashed again
        har_data.load_har(sources.outer, cache_dir=tmp_path / "a", expected_windows=None)
    assert caplog.text == ""
    monkeypatch.setattr(har_data.download, "HAR_SHA256", digest)  # as if it were the official one
    har.clear_memo()
    with caplog.at_level("WARNING", logger=har_data.download.log.name):
        har_data.load_har(sources.outer, cache_dir=tmp_path / "b", expected_windows=None)
    assert caplog.text == ""
    assert har_data.check_digest(sources.outer) and not har_data.check_digest(sources.root)


def test_a_har_budget_is_not_taken_for_data() -> None:
    from bench import config
    from bench.run.inputs import available_configurations

    spec = config.load("smoke", {"set": ["tasks.har.data_dir=null", "tasks.har.steps=7"]})
    configurations, skipped = available_configurations(spec)  # no copy here, offline
    assert "har" in skipped and "steps" not in skipped["har"]
    assert configurations and all(c.task != "har" for c in configurations)
