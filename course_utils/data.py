"""Images in: scan an ImageFolder root, decode each image once, augment per sample, batch.

The layout is torchvision's ImageFolder: `root/train/<class>/*.jpg` and `root/val/<class>/*.jpg`;
class names come from the folder names. Each image is decoded and resized once into a
compact uint8 tensor kept in memory (`load_split`); every epoch then only crops, flips and
normalises those tensors, which is what the model's preprocessing preset asks for, without
paying for JPEG decoding again (the tutorial's loop decodes every image every epoch).
"""
from __future__ import annotations

import functools
import os
import random
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms import functional as F

from . import download, settings

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
IGNORED = {"Thumbs.db", "desktop.ini", "__MACOSX"}
# Files that decode fine but show no object of any class: skipped wherever they appear.
PLACEHOLDERS = {
    "6b4966252973c581b521f804453c6a0649ea6a2ce7e3e5c7deeb7d80623de231":
        "an 'image not found' placeholder saved from a dead link, not a photo",
}


class DatasetError(ValueError):
    """The dataset folder is not usable; the message says what to change."""


class SkippedFilesWarning(UserWarning):
    """Some files of a dataset were skipped (not images, unreadable, or placeholders)."""


def course_dataset() -> Path:
    """The dataset every chapter uses: COURSE_DATASET if set, else ants vs bees (fetched once)."""
    own = settings.dataset()
    return own if own is not None else download.hymenoptera()


@dataclass(frozen=True)
class Preset:
    """A model's preprocessing: resize the shorter side, crop the centre, normalise."""
    crop: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def scaled(self, crop: int) -> "Preset":
        """The same preset at another input size (fast mode uses smaller inputs)."""
        return replace(self, crop=crop, resize=round(crop * self.resize / self.crop))

    def train_transform(self) -> v2.Compose:
        """Augmentation for training, applied to one decoded uint8 image at a time."""
        return v2.Compose([
            v2.RandomResizedCrop(self.crop, antialias=True),
            v2.RandomHorizontalFlip(),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(self.mean, self.std),
        ])

    def eval_transform(self) -> v2.Compose:
        """Deterministic preprocessing for validation: centre crop and normalise."""
        return v2.Compose([
            v2.CenterCrop(self.crop),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(self.mean, self.std),
        ])


def find_classes(root: Path) -> list[str]:
    """Class names of an ImageFolder root: the folders in root/train, checked against root/val."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"The dataset folder {root} does not exist. Check COURSE_DATASET "
                           f"(or the path you passed); it must hold train/ and val/ folders.")
    for split in ("train", "val"):
        if not (root / split).is_dir():
            raise DatasetError(f"{root} has no {split}/ folder. The course expects "
                               f"{root}/train/<class>/... and {root}/val/<class>/...")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and _visible(p))
    if len(classes) < 2:
        raise DatasetError(f"{root}/train holds {len(classes)} class folder(s); a classifier "
                           f"needs at least two (one subfolder per class).")
    missing = [c for c in classes if not (root / "val" / c).is_dir()]
    extra = sorted(p.name for p in (root / "val").iterdir()
                   if p.is_dir() and _visible(p) and p.name not in classes)
    if missing or extra:
        raise DatasetError(f"train/ and val/ of {root} must have the same class folders; "
                           f"missing in val/: {missing or 'none'}, only in val/: {extra or 'none'}.")
    return classes


def _visible(path: Path | str) -> bool:
    name = Path(path).name
    return not name.startswith(".") and name not in IGNORED


def scan_split(root: Path, split: str, classes: list[str]) -> tuple[list[tuple[Path, int]], list[tuple[Path, str]]]:
    """List (path, label) of the image files of one split, and (path, reason) of files skipped."""
    items, skipped = [], []
    for label, name in enumerate(classes):
        folder = Path(root) / split / name
        for path in sorted(folder.rglob("*")):
            if not path.is_file() or not all(_visible(p) for p in path.relative_to(folder).parts):
                continue
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                skipped.append((path, f"not an image file type ({path.suffix or 'no suffix'})"))
            else:
                items.append((path, label))
    return items, skipped


def decode(path: Path, short_side: int) -> torch.Tensor:
    """Decode an image file into a uint8 RGB tensor (3, H, W) whose shorter side is `short_side`.

    Any mode (palette, grayscale, RGBA, CMYK) is converted to RGB; the resize is the same
    PIL bilinear resize that torchvision's presets apply, so validation tensors match theirs.
    """
    with Image.open(path) as img:
        img = img.convert("RGB")
        img = F.resize(img, short_side, InterpolationMode.BILINEAR)
        return F.pil_to_tensor(img)


class DecodedImages(Dataset):
    """Decoded uint8 images in memory with their labels; `transform` runs per sample.

    Each instance has its own lists (changing one never changes another); the image tensors
    themselves are shared and must not be modified in place.
    """

    def __init__(self, images, labels, classes, paths, transform=None):
        self.images, self.labels, self.classes, self.paths = list(images), list(labels), list(classes), list(paths)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        image = self.images[i]
        return (self.transform(image) if self.transform else image), self.labels[i]

    def with_transform(self, transform) -> "DecodedImages":
        """The same decoded images (not copied) with another transform."""
        return DecodedImages(self.images, self.labels, self.classes, self.paths, transform)

    def subset(self, indices) -> "DecodedImages":
        """The images at `indices` (in that order), with this dataset's transform."""
        pick = lambda values: [values[i] for i in indices]  # noqa: E731
        return DecodedImages(pick(self.images), pick(self.labels), self.classes, pick(self.paths), self.transform)


def load_split(root: Path, split: str, short_side: int, per_class: int | None = None,
               seed: int = 0) -> DecodedImages:
    """Decode one split once per session; skip and report bad files.

    `per_class` keeps a seeded random subset of that many images per class (fast mode).
    Every call returns a new `DecodedImages` (its own lists, shared image tensors), so no
    caller sees another's changes.
    """
    images, labels, classes, paths = _decoded(Path(root), split, short_side, per_class, seed)
    return DecodedImages(images, labels, classes, paths)


def clear_decoded_cache() -> None:
    """Forget every decoded split (frees its memory); the next `load_split` decodes again."""
    _decoded.cache_clear()


@functools.lru_cache(maxsize=8)
def _decoded(root: Path, split: str, short_side: int, per_class: int | None, seed: int) -> tuple[tuple, ...]:
    """The decoded split as immutable tuples (images, labels, classes, paths): what `load_split` caches."""
    classes = find_classes(root)
    items, skipped = scan_split(root, split, classes)
    rng = random.Random(seed)
    kept = []  # (path, label, image)
    for c in range(len(classes)):
        group = [path for path, label in items if label == c]
        if per_class is not None:
            rng.shuffle(group)  # a seeded random subset: decode in this order until enough are kept
        count = 0
        for path in group:
            if per_class is not None and count == per_class:
                break
            placeholder = PLACEHOLDERS.get(download.sha256(path))
            if placeholder:
                skipped.append((path, placeholder))
                continue
            try:
                kept.append((path, c, decode(path, short_side)))
                count += 1
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                skipped.append((path, f"unreadable image ({type(err).__name__}: {err})"))
    kept.sort(key=lambda item: (item[1], item[0]))
    paths, labels, images = (list(column) for column in zip(*kept)) if kept else ([], [], [])
    if skipped:
        lines = "\n".join(f"  {p.relative_to(root)}: {why}" for p, why in skipped)
        warnings.warn(f"{split}: skipped {len(skipped)} file(s) of {root}:\n{lines}",
                      SkippedFilesWarning, stacklevel=4)  # the caller of image_loaders
    empty = [c for i, c in enumerate(classes) if i not in set(labels)]
    if empty:
        raise DatasetError(f"{root}/{split} has no readable image for class(es) {empty}; "
                           f"add images there or remove the class folder from train/ and val/.")
    return tuple(images), tuple(labels), tuple(classes), tuple(paths)


def default_workers(device: torch.device) -> int:
    """DataLoader workers: a few only on a GPU machine whose processes start by fork (Linux).

    The images are decoded in memory already, so a worker only crops, flips and normalises:
    measured on 2 CPU cores, 244 training images at 224 px take 0.17 s per epoch in the main
    process and 0.22 s with 2 forked workers. A spawned worker (macOS, so every MPS run, and
    Windows) must import torch and receive the whole decoded list (66 MB pickled): 2 spawned
    workers took 4.7 s to start, for each loader, i.e. more than 25 epochs of the work they
    would take over. On the CPU they would also compete with the model for the same cores.
    """
    import multiprocessing
    method = multiprocessing.get_start_method(allow_none=True) or multiprocessing.get_all_start_methods()[0]
    if device.type == "cpu" or method != "fork":
        return 0
    return min(4, max(1, (os.cpu_count() or 2) - 1))


def image_loaders(root: Path, preset: Preset, batch_size: int = 32, per_class: int | None = None,
                  augment: bool = True, device: torch.device | None = None,
                  num_workers: int | None = None, seed: int = 0) -> dict[str, DataLoader]:
    """The course's one way to load data: {'train': loader, 'val': loader} for an ImageFolder root.

    Training images are randomly cropped and flipped (unless `augment=False`, which gives
    them the validation preprocessing); validation images are centre-cropped.
    """
    device = device or settings.pick_device()
    workers = default_workers(device) if num_workers is None else num_workers
    loaders = {}
    for split in ("train", "val"):
        decoded = load_split(Path(root), split, preset.resize, per_class, seed)
        transform = preset.train_transform() if split == "train" and augment else preset.eval_transform()
        loaders[split] = DataLoader(
            decoded.with_transform(transform), batch_size=batch_size, shuffle=split == "train",
            num_workers=workers, persistent_workers=workers > 0,
            pin_memory=device.type == "cuda",
            generator=torch.Generator().manual_seed(seed))
    return loaders


def loader_like(loader: DataLoader, dataset=None, shuffle: bool | None = None, sampler=None,
                seed: int = 0) -> DataLoader:
    """A new loader with `loader`'s batch size, workers and memory pinning, over `dataset` (default:
    the same one). `shuffle` defaults to whether `loader` shuffles; a `sampler` replaces shuffling."""
    if shuffle is None:
        shuffle = isinstance(loader.sampler, RandomSampler) and sampler is None
    return DataLoader(loader.dataset if dataset is None else dataset, batch_size=loader.batch_size,
                      shuffle=shuffle and sampler is None, sampler=sampler,
                      num_workers=loader.num_workers, pin_memory=loader.pin_memory,
                      persistent_workers=loader.num_workers > 0,
                      generator=torch.Generator().manual_seed(seed) if shuffle and sampler is None else None)


def tensor_loader(samples: tuple[torch.Tensor, torch.Tensor], batch_size: int = 32, shuffle: bool = False,
                  seed: int = 0) -> DataLoader:
    """A loader over stored (inputs, labels) tensors, e.g. cached features; shuffles with `seed`."""
    x, y = samples
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"Inputs and labels must be non-empty and of the same length (got {len(x)} and {len(y)}).")
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))
