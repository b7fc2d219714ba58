"""Course-wide settings: fast/full mode, dataset location, device, seeds and threads.

Everything a notebook may want to change is read here, once, from environment
variables, so that CI, instructors and students can steer every chapter the same way:

    COURSE_FAST=1          quick run (CI): fewer images, fewer epochs, smaller inputs
    COURSE_DATASET=/path   any ImageFolder root with train/ and val/ (default: hymenoptera)
    COURSE_DATA_DIR=/path  where downloaded data is cached (default: <repo>/data)
    COURSE_DATA_MIRROR=/p  a local folder holding hymenoptera_data/ (offline labs, CI)
    COURSE_DEVICE=cpu      force a device (cuda, mps, cpu)
    COURSE_THREADS=N       CPU threads for PyTorch (default: all cores of this process)
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


def _flag(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}={raw!r} is not understood: use {name}=1 (on) or {name}=0 (off).")


def _path(name: str, default: Path | None = None) -> Path | None:
    raw = os.environ.get(name, "").strip()
    return Path(raw).expanduser() if raw else default


FAST: bool = _flag("COURSE_FAST")
"""Fast mode: small subsets, few epochs, small images. CI and `make test` use it."""

DATASET: Path | None = _path("COURSE_DATASET")
"""A student's own ImageFolder root, or None for the hymenoptera (ants vs bees) default."""

PROGRESS: bool = os.environ.get("CI", "").strip().lower() in _FALSE
"""Progress bars while training; CI gets one plain summary line per epoch instead."""

DATA_DIR: Path = _path("COURSE_DATA_DIR", REPO_ROOT / "data")
MIRROR: Path | None = _path("COURSE_DATA_MIRROR")

# What fast mode shrinks. Full mode uses every image at the model's own resolution.
FAST_IMAGES_PER_CLASS = 40
FAST_IMAGE_SIZE = 128


def images_per_class() -> int | None:
    """How many images per class and split to use: all in full mode."""
    return FAST_IMAGES_PER_CLASS if FAST else None


def epochs(full: int, fast: int = 2) -> int:
    """Number of epochs for this mode: `full` for students, `fast` for CI."""
    return fast if FAST else full


def pick_device(requested: str | None = None) -> torch.device:
    """The device to train on: CUDA if present, then Apple MPS, then CPU.

    `requested` (or COURSE_DEVICE) forces one; asking for one that is absent is an error,
    not a silent fall back to the CPU.
    """
    requested = (requested or os.environ.get("COURSE_DEVICE", "")).strip().lower() or None
    available = {
        "cuda": torch.cuda.is_available(),
        "mps": torch.backends.mps.is_available(),
        "cpu": True,
    }
    if requested is None:
        return torch.device(next(name for name, ok in available.items() if ok))
    kind = requested.split(":")[0]
    if kind not in available:
        raise ValueError(f"Unknown device {requested!r}: use one of cuda, mps, cpu.")
    if not available[kind]:
        found = ", ".join(name for name, ok in available.items() if ok)
        raise RuntimeError(
            f"Device {requested!r} was requested but is not available on this machine "
            f"(available: {found}). Unset COURSE_DEVICE or pass one of those."
        )
    return torch.device(requested)


def seed_everything(seed: int = 0) -> None:
    """Seed Python, NumPy and PyTorch so that a rerun on the same machine gives the same numbers."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def set_threads(n: int | None = None) -> int:
    """Give PyTorch a deliberate number of CPU threads and return it.

    Default: the cores this process may use (COURSE_THREADS overrides). One process that uses
    every core is fast; two that each do so fight (measured 6-10x slower on 2 cores), so tests
    run notebooks one at a time rather than in parallel.
    """
    if n is None:
        raw = os.environ.get("COURSE_THREADS", "").strip()
        if raw and not (raw.isdigit() and int(raw) > 0):
            raise ValueError(f"COURSE_THREADS={raw!r} must be a positive whole number.")
        n = int(raw) if raw else len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    torch.set_num_threads(n)
    return n


def describe() -> str:
    """One line saying how this run is configured."""
    data = DATASET or "hymenoptera (ants vs bees)"
    return (f"mode={'fast' if FAST else 'full'} dataset={data} device={pick_device()} "
            f"threads={torch.get_num_threads()} torch={torch.__version__}")
