"""Shared fixtures for the course_utils unit tests.

Everything here works offline and without a GPU. The real ants-vs-bees data is taken from a
local mirror (COURSE_DATA_MIRROR) and installed into a
temporary folder once per session; tests that need it are skipped when no mirror exists.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # before anything imports pyplot

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from course_utils import download, settings

CLASSES = ("alpha", "beta", "gamma")


# --- synthetic ImageFolder ---------------------------------------------------------------------

def noise_image(width: int, height: int, seed: int, mode: str = "RGB") -> Image.Image:
    """A random-noise colour image: every crop of it looks different."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB").convert(mode)


def make_imagefolder(root: Path, classes=CLASSES, train: int = 6, val: int = 4, seed: int = 0) -> Path:
    """root/{train,val}/<class>/img<i>.{jpg,png}: noise images of varied sizes (40-80 px)."""
    sizes = [(40, 60), (80, 48), (56, 56), (64, 44), (48, 72), (72, 40)]
    n = seed * 1000
    for split, count in (("train", train), ("val", val)):
        for c in classes:
            folder = root / split / c
            folder.mkdir(parents=True)
            for i in range(count):
                w, h = sizes[(n + i) % len(sizes)]
                n += 1
                suffix = ".jpg" if i % 2 == 0 else ".png"
                noise_image(w, h, seed=n).save(folder / f"img{i}{suffix}")
    return root


@pytest.fixture
def tiny_imagefolder(tmp_path) -> Path:
    """A small ImageFolder: 3 classes, 6 train and 4 val noise images each, 40-80 px."""
    return make_imagefolder(tmp_path / "tiny")


# --- the real dataset ----------------------------------------------------------------------------

def mirror_candidates() -> list[Path]:
    """The mirrors download.hymenoptera() itself would try, in the same order."""
    return [settings.mirror()] if settings.mirror() else []


@pytest.fixture(scope="session")
def data_mirror() -> Path:
    """A local folder holding hymenoptera_data/ (CI: COURSE_DATA_MIRROR), else skip."""
    for folder in mirror_candidates():
        if (folder / download.NAME / "train").is_dir():
            return folder
    pytest.skip("No local hymenoptera mirror: set COURSE_DATA_MIRROR to a folder that holds "
                "hymenoptera_data/ (CI lays one beside the clone at ../shared/data).")


@pytest.fixture(scope="session")
def mirror_source(data_mirror) -> Path:
    """The mirror's hymenoptera_data folder itself (read-only: never write under it)."""
    return data_mirror / download.NAME


@pytest.fixture(scope="session")
def hymenoptera_data_dir(data_mirror, tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("course-data")


@pytest.fixture(scope="session")
def hymenoptera(data_mirror, hymenoptera_data_dir) -> Path:
    """Root of a verified copy of ants vs bees, installed from the mirror once per session."""
    return download.hymenoptera(data_dir=hymenoptera_data_dir, mirror=data_mirror, verbose=False)


def link_tree(src: Path, dst: Path) -> Path:
    """Recreate src's folders under dst with symbolic links to its files: a cheap copy whose
    files can be replaced (unlink, then write) without ever touching the originals."""
    for folder, _, files in os.walk(src):
        out = dst / Path(folder).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for name in files:
            (out / name).symlink_to(Path(folder) / name)
    return dst


def replace_file(path: Path, data: bytes) -> None:
    """Replace a (possibly linked) file by a real one holding `data`."""
    path.unlink()
    path.write_bytes(data)


@pytest.fixture
def restore_threads():
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)


@pytest.fixture
def hub_dir(tmp_path):
    """An empty torch hub cache; the previous one is restored afterwards."""
    old = torch.hub.get_dir()
    hub = tmp_path / "hub"
    hub.mkdir()
    torch.hub.set_dir(str(hub))
    yield hub
    torch.hub.set_dir(old)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import sys
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


# --- a tiny training problem ------------------------------------------------------------------------

def separable(n: int, seed: int):
    """Two classes of 3x8x8 'images' told apart by the mean of channel 0 (+1 or -1): a training
    problem that any small model learns in a few steps on the CPU."""
    from torch.utils.data import TensorDataset
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 3, 8, 8, generator=g) * 0.5
    x[:, 0] += (y * 2 - 1).float().view(-1, 1, 1)
    return TensorDataset(x, y)


def tiny_model() -> nn.Module:
    """Three base stages (`features.0` .. `features.2`) and a Linear head, like the course's models."""
    torch.manual_seed(0)

    def block(cin, cout):
        return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())
    return nn.Sequential(OrderedDict(features=nn.Sequential(block(3, 4), block(4, 8), block(8, 8)),
                                     pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     classifier=nn.Linear(8, 2)))
