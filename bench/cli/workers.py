"""How many worker processes ``gradbench run`` starts when ``--workers`` is not given: one
per core, no more than free memory holds (about 1 GiB a worker: the default suite's workers
peak near 800 MiB, see docs/performance.md) and, on a GPU machine whose suite runs on CUDA,
one per device (``cuda:N``: one). Read without importing torch, so that the workers start at
once: the cores from the scheduler's affinity, the memory from ``/proc/meminfo`` (else
``os.sysconf``), the devices from the NVIDIA driver and ``CUDA_VISIBLE_DEVICES``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

WORKER_BYTES = 1 << 30  # memory a worker may take (peak ~800 MiB on the default suite)
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")


def cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def free_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable``), or None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, OSError, ValueError):
        return None


def cuda_devices() -> int:
    """CUDA devices this process would see (0 without the NVIDIA driver)."""
    found = len(list(NVIDIA_GPUS.iterdir())) if NVIDIA_GPUS.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        found = min(found, len([d for d in visible.split(",") if d.strip()]))
    return found


def default_workers(device: str) -> tuple[int, str]:
    """(workers, why): one per core, capped by free memory and, where the suite runs on
    CUDA (``device`` auto with a GPU, cuda, cuda:N), by the devices it uses."""
    n, why = cores(), f"{cores()} core(s)"
    memory = free_memory()
    if memory is not None and memory // WORKER_BYTES < n:
        n = max(1, memory // WORKER_BYTES)
        why += f", {memory / WORKER_BYTES:.1f} GiB free (about 1 GiB a worker)"
    devices = 1 if device.startswith("cuda:") else cuda_devices() if device != "cpu" else 0
    if devices and devices < n:
        n = devices
        why += f", {devices} CUDA device(s)"
    return n, why


def resolve_workers(args: argparse.Namespace, device: str) -> str:
    """``--workers``, checked, or where it is not given the default for this machine
    (``default_workers``), set on ``args``; the reason for the default, or ""."""
    if args.workers is not None:
        if args.workers < 1:
            raise ValueError(f"--workers: must be >= 1, got {args.workers}")
        return ""
    args.workers, why = default_workers(device)
    return f" ({why})"
