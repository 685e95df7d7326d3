"""A tiny UCI HAR data set in the exact original layout, for the tests of the loader and of
the command line.

4 train subjects, 2 test subjects, 2 windows per subject and label, values formatted like the
original ``1.0128170e+000``; written as a folder, as ``UCI HAR Dataset.zip`` and nested in an
outer zip as the official download is.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tasks import har_data

TRAIN_SUBJECTS = (1, 3, 5, 6)
TEST_SUBJECTS = (2, 4)
PER_LABEL = 2  # windows per subject and label


def _fmt(value: float) -> str:
    """MATLAB-style ``%.7e`` with a three-digit exponent, as in the original files."""
    mantissa, exponent = f"{value:.7e}".split("e")
    return f"{mantissa}e{int(exponent):+04d}"


@dataclass
class Fixture:
    files: dict[str, str]  # path under "UCI HAR Dataset/" -> text
    x: dict[str, np.ndarray]  # split -> (N, 128, 9) float32, the values written
    y: dict[str, np.ndarray]  # split -> labels 0..5
    subjects: dict[str, np.ndarray]


def _make_split(split: str, subjects: tuple[int, ...], rng: np.random.Generator,
                files: dict[str, str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = [(s, label) for s in subjects for label in range(1, 7) for _ in range(PER_LABEL)]
    subj = np.array([s for s, _ in rows], dtype=np.int64)
    labels = np.array([label for _, label in rows], dtype=np.int64)
    # Channel c centred on 10 c (to check the channel order), shifted per subject (so that
    # held-out subjects have statistics of their own).
    noise = rng.normal(size=(len(rows), har_data.WINDOW, 9))
    raw = noise + 10.0 * np.arange(9) + 0.5 * subj[:, None, None]
    text = np.vectorize(_fmt)(raw)
    files[f"{split}/y_{split}.txt"] = "".join(f"{v}\n" for v in labels)
    files[f"{split}/subject_{split}.txt"] = "".join(f"{v}\n" for v in subj)
    for c, name in enumerate(har_data.SIGNALS):
        lines = ("".join(f"{v:>16}" for v in row) for row in text[:, :, c])
        files[f"{split}/Inertial Signals/{name}_{split}.txt"] = "".join(f"{ln}\n" for ln in lines)
    x = text.astype(np.float64).astype(np.float32)  # what a parser of the text must return
    return x, labels - 1, subj


def make_fixture() -> Fixture:
    rng = np.random.default_rng(0)
    files = {"README.txt": "tiny fixture\n", "activity_labels.txt": "1 WALKING\n"}
    x, y, s = {}, {}, {}
    for split, subjects in (("train", TRAIN_SUBJECTS), ("test", TEST_SUBJECTS)):
        x[split], y[split], s[split] = _make_split(split, subjects, rng, files)
    return Fixture(files, x, y, s)


def write_dir(files: dict[str, str], parent: Path) -> Path:
    root = parent / har_data.ROOT_NAME
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def write_zip(files: dict[str, str], path: Path,
              compression: int = zipfile.ZIP_DEFLATED) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for folder in ("", "train/", "test/", "train/Inertial Signals/", "test/Inertial Signals/"):
            zf.writestr(f"{har_data.ROOT_NAME}/{folder}", "")
        for rel, text in files.items():
            zf.writestr(f"{har_data.ROOT_NAME}/{rel}", text)
    return path


def write_outer(inner: Path, path: Path) -> Path:
    """The official download's shape: the inner zip nested, plus macOS junk."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("__MACOSX/._UCI HAR Dataset.zip", b"\x00\x05\x16\x07junk")
        zf.write(inner, har_data.INNER_ZIP_NAME)
        zf.writestr("UCI HAR Dataset.names", "description\n")
    return path
