"""Course-wide settings: fast/full mode, dataset location, device, seeds and threads.

Everything a notebook may want to change comes from environment variables, read each time a
function here is called (not at import), so `%env COURSE_FAST=1` in a notebook takes effect on
the next call. CI, instructors and students steer every chapter the same way:

    COURSE_FAST=1          quick run (CI): fewer images, fewer epochs, smaller inputs, fewer domains
    COURSE_DATASET=/path   any ImageFolder root with train/ and val/ (default: hymenoptera)
    COURSE_DATA_DIR=/path  where downloaded data and checkpoints go (default: see `data_dir`)
    COURSE_DATA_MIRROR=/p  a local folder holding hymenoptera_data/ (offline labs, CI)
    COURSE_DEVICE=cpu      force a device (cuda, mps, cpu)
    COURSE_THREADS=N       CPU threads for PyTorch (default: all cores of this process)
    COURSE_MEMORY_GB=G     memory for decoded images (default: see `memory_budget`); larger splits
                           are cached on disk (`data.load_split`)
    COURSE_WORKERS=N       DataLoader worker processes per loader (default: see `data.default_workers`)
    COURSE_PRECISION=P     auto (default), float32 or bfloat16: the number format models run in
                           (`precision`; what `auto` picks on which hardware: `course_utils.precision`)
    COURSE_LEDGER=file     append every ledger record to this JSON-lines file (`make measure` sets it)
    COURSE_STRICT=1        a teaching claim that does not hold stops the chapter (`make test`, CI and
                           `make measure` set it); unset, it prints one line and the chapter goes on
    CI=true                no progress bars: one plain line per epoch (CI services set it)

Fast mode shrinks sizes only (`images_per_class`, `image_size`, `epochs`, `count`): the
experiment a fast run checks is the one a student runs.
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}

# What fast mode shrinks. Full mode uses every image at the model's own resolution.
FAST_IMAGES_PER_CLASS = 40
FAST_IMAGE_SIZE = 128


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


def fast() -> bool:
    """Fast mode (COURSE_FAST=1): small subsets, few epochs, small images. CI and `make test` use it."""
    return _flag("COURSE_FAST")


def dataset() -> Path | None:
    """A student's own ImageFolder root (COURSE_DATASET), or None for the hymenoptera default."""
    return _path("COURSE_DATASET")


def mirror() -> Path | None:
    """A local folder holding hymenoptera_data/ (COURSE_DATA_MIRROR), or None: download it."""
    return _path("COURSE_DATA_MIRROR")


def data_dir() -> Path:
    """Where downloaded data and checkpoints go.

    COURSE_DATA_DIR if set; else `<repo>/data` when the course runs from a writable source
    checkout (`make lab`); else a per-user cache folder, `$XDG_CACHE_HOME` or `~/.cache` (on
    Windows `%LOCALAPPDATA%`) + `/transfer-learning-course`, so that a `pip install` (Colab,
    JupyterHub) never writes into site-packages.
    """
    chosen = _path("COURSE_DATA_DIR")
    if chosen is not None:
        return chosen
    if (REPO_ROOT / "pyproject.toml").is_file() and os.access(REPO_ROOT, os.W_OK):
        return REPO_ROOT / "data"
    if os.name == "nt" and os.environ.get("LOCALAPPDATA"):
        cache = Path(os.environ["LOCALAPPDATA"])
    else:
        cache = _path("XDG_CACHE_HOME") or Path.home() / ".cache"
    return cache / "transfer-learning-course"


def memory_budget() -> int:
    """Bytes of decoded images the course may hold in memory (COURSE_MEMORY_GB, in GB).

    Default: an eighth of this machine's physical memory, between 0.5 and 4 GB (2 GB on a
    16 GB laptop). A split whose decoded images would take more than half of it (train and val
    are held together) is cached on disk instead, see `data.load_split`.
    """
    raw = os.environ.get("COURSE_MEMORY_GB", "").strip()
    if raw:
        try:
            gb = float(raw)
        except ValueError:
            gb = -1.0
        if not gb > 0:
            raise ValueError(f"COURSE_MEMORY_GB={raw!r} must be a positive number of gigabytes, e.g. 2 or 0.5.")
        return int(gb * 2**30)
    try:
        physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # Windows: no sysconf
        physical = 16 * 2**30
    return int(min(4 * 2**30, max(2**29, physical // 8)))


def ledger_file() -> Path | None:
    """COURSE_LEDGER: the file every `ledger.record` appends to (`make measure` sets one per chapter), or None."""
    return _path("COURSE_LEDGER")


def strict() -> bool:
    """COURSE_STRICT=1: `chapter.claim` asserts on the course's case study (the course's own runs).
    Unset (a student in JupyterLab), a claim that does not hold is printed and the chapter goes on."""
    return _flag("COURSE_STRICT")


def workers() -> int | None:
    """COURSE_WORKERS: DataLoader worker processes per loader (0: load in the training process);
    None when unset, for `data.default_workers`' rule."""
    raw = os.environ.get("COURSE_WORKERS", "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise ValueError(f"COURSE_WORKERS={raw!r} must be a whole number of worker processes (0 or more), e.g. 8.")
    return int(raw)


def progress() -> bool:
    """Progress bars while training; CI (CI=true) gets one plain summary line per epoch instead."""
    return os.environ.get("CI", "").strip().lower() in _FALSE


PRECISIONS = ("auto", "float32", "bfloat16")


def precision() -> str:
    """COURSE_PRECISION: 'auto' (default: bfloat16 autocast where the hardware computes it natively,
    else float32), 'float32' or 'bfloat16', forced. `course_utils.precision` applies it."""
    raw = os.environ.get("COURSE_PRECISION", "")
    value = raw.strip().lower() or "auto"
    if value not in PRECISIONS:
        raise ValueError(f"COURSE_PRECISION={raw!r} is not understood: use one of {', '.join(PRECISIONS)} "
                         f"(auto is the default).")
    return value


def images_per_class() -> int | None:
    """How many images per class and split to use: all (None) in full mode."""
    return FAST_IMAGES_PER_CLASS if fast() else None


def image_size(native: int) -> int:
    """The input size to use for a model whose own size is `native`: smaller in fast mode."""
    return min(native, FAST_IMAGE_SIZE) if fast() else native


def epochs(full: int, fast: int = 2) -> int:
    """Number of epochs for this mode: `full` for students, `fast` for CI."""
    return count(full, fast)


def count(full: int, fast: int) -> int:
    """Any size that fast mode shrinks (images, epochs, domains, steps): `full` or `fast`."""
    return fast if _flag("COURSE_FAST") else full  # (the argument `fast` hides the function here)


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

    Default: the cores this process may use (COURSE_THREADS overrides). Two processes that each
    use every core slow each other down several times: run one heavy notebook at a time.
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
    data = dataset() or "hymenoptera (ants vs bees)"
    return (f"mode={'fast' if fast() else 'full'} dataset={data} device={pick_device()} "
            f"threads={torch.get_num_threads()} torch={torch.__version__}")
