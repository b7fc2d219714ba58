"""Images in: scan an ImageFolder root, decode each image once, augment per sample, batch.

The layout is torchvision's ImageFolder: `root/train/<class>/*.jpg` and `root/val/<class>/*.jpg`;
class names come from the folder names. Each image is decoded and resized once into a
compact uint8 tensor kept in memory (`load_split`); every epoch then only crops, flips and
normalises those tensors, which is what the model's preprocessing preset asks for, without
paying for JPEG decoding again (the tutorial's loop decodes every image every epoch).

A split too large for the memory budget (`settings.memory_budget`, COURSE_MEMORY_GB) is decoded
once into a uint8 file on disk instead (`DiskImages`), from which each sample is read when the
loader asks for it; the tensors are the same on both paths. `load_split` prints which path it took.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, RandomSampler, TensorDataset
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F

from . import download, settings
from .presets import Preset  # noqa: F401  (data.Preset: the name notebooks use)

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


class DiskImages(Sequence):
    """Decoded uint8 images (3, H, W) stored one after another in a file; `images[i]` reads one.

    What `DecodedImages.images` holds for a split cached on disk: a read-only sequence that
    keeps only each image's offset and shape in memory. Each process opens the file itself, so
    it travels to DataLoader workers as a few numbers.
    """

    def __init__(self, file: Path, offsets, shapes):
        self.file, self.offsets, self.shapes = Path(file), tuple(offsets), tuple(tuple(s) for s in shapes)
        self._handle = None

    def __len__(self) -> int:
        return len(self.offsets)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        shape = self.shapes[i]
        if self._handle is None or self._handle[0] != os.getpid():
            self._handle = (os.getpid(), open(self.file, "rb"))
        file = self._handle[1]
        file.seek(self.offsets[i])
        buffer = bytearray(shape[0] * shape[1] * shape[2])
        if file.readinto(buffer) != len(buffer):
            raise DatasetError(f"The decoded-image cache {self.file} is shorter than its index says; delete "
                               f"it (and its .json) and load the data again.")
        return torch.from_numpy(np.frombuffer(buffer, np.uint8).reshape(shape))

    def subset(self, indices) -> "DiskImages":
        return DiskImages(self.file, [self.offsets[i] for i in indices], [self.shapes[i] for i in indices])

    def __getstate__(self):
        return {**self.__dict__, "_handle": None}

    def __repr__(self) -> str:
        return f"DiskImages({len(self)} images in {self.file})"


class DecodedImages(Dataset):
    """Decoded uint8 images with their labels; `transform` runs per sample.

    `images` is a list of tensors in memory, or a `DiskImages` for a split cached on disk.
    Each instance has its own lists (changing one never changes another); the image tensors
    themselves are shared and must not be modified in place.
    """

    def __init__(self, images, labels, classes, paths, transform=None):
        self.images = images if isinstance(images, DiskImages) else list(images)
        self.labels, self.classes, self.paths = list(labels), list(classes), list(paths)
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
        indices = list(indices)
        pick = lambda values: [values[i] for i in indices]  # noqa: E731
        images = self.images.subset(indices) if isinstance(self.images, DiskImages) else pick(self.images)
        return DecodedImages(images, pick(self.labels), self.classes, pick(self.paths), self.transform)


CACHE_FORMAT = 1  # the disk cache's layout; a change makes every older cache file stale
_CACHE: OrderedDict = OrderedDict()  # key -> (images, labels, paths, bytes held in memory)
_CACHE_SPLITS = 8


def load_split(root: Path, split: str, short_side: int, per_class: int | None = None,
               seed: int = 0) -> DecodedImages:
    """Decode one split once per session; skip and report bad files.

    `per_class` keeps a seeded random subset of that many images per class (fast mode).
    Where the decoded images fit in half of the memory budget (`settings.memory_budget()`,
    COURSE_MEMORY_GB: train and val are held together) they stay in memory; else they are
    written once, as uint8, to a file under `settings.data_dir()/decoded` and read one at a
    time (`DiskImages`), and later sessions reuse that file while the split's files, the size
    and the subset are unchanged. One printed line says which path was taken and why.
    Every call returns a new `DecodedImages` (its own lists, shared image tensors), so no
    caller sees another's changes.
    """
    root = Path(root)
    classes = find_classes(root)
    items, skipped = scan_split(root, split, classes)
    budget = settings.memory_budget()
    on_disk = _estimate_bytes(items, len(classes), short_side, per_class) > budget // 2
    key = (_fingerprint(root, split, classes, items, short_side, per_class, seed), on_disk)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        images, labels, paths, _ = _CACHE[key]
        return DecodedImages(images, labels, classes, paths)
    if on_disk:
        images, labels, paths, skipped, line = _disk_split(root, split, classes, items, skipped, short_side,
                                                           per_class, seed, key[0], budget)
        held = 0
    else:
        kept, skipped = _decode_usable(root, classes, items, skipped, short_side, per_class, seed, keep=lambda image: image)
        paths, labels, images = kept
        held = sum(image.numel() for image in images)
        line = (f"{split}: {len(images):,} images decoded into memory, {_size(held)} (within half of the "
                f"{_size(budget)} memory budget, COURSE_MEMORY_GB)")
    if skipped:
        lines = "\n".join(f"  {p.relative_to(root)}: {why}" for p, why in skipped)
        warnings.warn(f"{split}: skipped {len(skipped)} file(s) of {root}:\n{lines}",
                      SkippedFilesWarning, stacklevel=3)  # names image_loaders' caller (the notebook cell)
    empty = [name for i, name in enumerate(classes) if i not in set(labels)]
    if empty:
        raise DatasetError(f"{root}/{split} has no readable image for class(es) {empty}; "
                           f"add images there or remove the class folder from train/ and val/.")
    print(line)
    _CACHE[key] = (images if on_disk else tuple(images), tuple(labels), tuple(paths), held)
    while len(_CACHE) > _CACHE_SPLITS or (len(_CACHE) > 1 and sum(e[3] for e in _CACHE.values()) > budget):
        _CACHE.popitem(last=False)  # the least recently used split goes first
    return DecodedImages(images, labels, classes, paths)


def clear_decoded_cache() -> None:
    """Forget every decoded split held by this process (frees its memory; disk caches stay);
    the next `load_split` decodes again, or reads its disk cache."""
    _CACHE.clear()


def _decode_usable(root, classes, items, skipped, short_side, per_class, seed, keep):
    """Decode the split's usable images (a seeded subset with `per_class`), passing each to `keep`:
    placeholders (by hash) and unreadable files are skipped and listed instead. Returns
    ((paths, labels, kept values) sorted by class then path, skipped files)."""
    skipped = list(skipped)
    rng = random.Random(seed)
    kept = []  # (path, label, keep(image))
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
                image = decode(path, short_side)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
                skipped.append((path, f"unreadable image ({type(err).__name__}: {err})"))
                continue
            kept.append((path, c, keep(image)))
            count += 1
    kept.sort(key=lambda item: (item[1], item[0]))
    paths, labels, values = (list(column) for column in zip(*kept)) if kept else ([], [], [])
    return (paths, labels, values), skipped


def _fingerprint(root, split, classes, items, short_side, per_class, seed) -> str:
    """A digest of everything a decoded split depends on: the files (names, sizes, times), the
    size, the subset. Any change gives another key, so no cache is ever reused stale."""
    files = []
    for path, label in items:
        stat = path.stat()
        files.append((str(path.relative_to(root)), label, stat.st_size, stat.st_mtime_ns))
    what = [CACHE_FORMAT, str(root.resolve()), split, classes, short_side, per_class, seed, files]
    return hashlib.sha256(json.dumps(what).encode()).hexdigest()


def _estimate_bytes(items, n_classes, short_side, per_class) -> int:
    """The decoded size of a split, from the headers of up to 64 of its files (nothing decoded)."""
    counts = [sum(label == c for _, label in items) for c in range(n_classes)]
    n = sum(counts if per_class is None else (min(k, per_class) for k in counts))
    sizes = []
    for path, _ in items[::max(1, len(items) // 64)][:64]:
        try:
            with Image.open(path) as img:
                small, large = sorted(img.size)
        except Exception:  # an unreadable file: load_split reports it
            continue
        sizes.append(3 * short_side * round(large * short_side / max(small, 1)))
    return int(n * sum(sizes) / len(sizes)) if sizes else 0


def _disk_split(root, split, classes, items, skipped, short_side, per_class, seed, fingerprint, budget):
    """The split's decoded images in a file under data_dir()/decoded: read if there, else written
    (atomically: a temporary file renamed into place, the index last). Stale files of the same
    root, split, size and subset are removed."""
    folder = settings.data_dir() / "decoded"
    same = hashlib.sha256(json.dumps([str(root.resolve()), split, short_side, per_class, seed]).encode())
    stem = f"{_safe(root.name)}-{split}-{short_side}px-{same.hexdigest()[:12]}-"
    data_file, index_file = folder / f"{stem}{fingerprint[:16]}.u8", folder / f"{stem}{fingerprint[:16]}.json"
    index = _read_index(index_file, data_file)
    if index is not None:
        skipped = list(skipped) + [(root / p, why) for p, why in index["skipped"]]
        how = "read from its disk cache"
    else:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = data_file.with_name(f"{data_file.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as out:
                def keep(image):
                    offset = out.tell()
                    out.write(image.contiguous().numpy().tobytes())
                    return offset, tuple(image.shape)
                (paths, labels, stored), new_skipped = _decode_usable(root, classes, items, [], short_side, per_class,
                                                               seed, keep)
            index = dict(format=CACHE_FORMAT, classes=classes, paths=[str(p.relative_to(root)) for p in paths],
                         labels=labels, offsets=[o for o, _ in stored], shapes=[s for _, s in stored],
                         skipped=[(str(p.relative_to(root)), why) for p, why in new_skipped])
            os.replace(tmp, data_file)
            tmp_index = index_file.with_name(f"{index_file.name}.tmp{os.getpid()}")
            tmp_index.write_text(json.dumps(index))
            os.replace(tmp_index, index_file)
        finally:
            tmp.unlink(missing_ok=True)
        for old in folder.glob(f"{stem}*"):
            if old not in (data_file, index_file) and ".tmp" not in old.name:
                old.unlink(missing_ok=True)  # an older cache of the same split: its files changed
        skipped = list(skipped) + new_skipped
        how = "decoded once into a disk cache"
    images = DiskImages(data_file, index["offsets"], index["shapes"])
    size = sum(3 * h * w for _, h, w in images.shapes)
    line = (f"{split}: {len(images):,} images {how}, {data_file} ({_size(size)} decoded: more than half of the "
            f"{_size(budget)} memory budget, COURSE_MEMORY_GB), read one image at a time")
    return images, index["labels"], [root / p for p in index["paths"]], skipped, line


def _read_index(index_file: Path, data_file: Path) -> dict | None:
    """A complete disk cache's index, or None (missing, another format, or a data file of the wrong size)."""
    try:
        index = json.loads(index_file.read_text())
        complete = index["format"] == CACHE_FORMAT and data_file.stat().st_size == sum(
            3 * h * w for _, h, w in index["shapes"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return index if complete else None


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)[:40] or "dataset"


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GB" if n >= 2**30 else f"{n / 2**20:.0f} MB"


def default_workers(device: torch.device) -> int:
    """DataLoader workers: COURSE_WORKERS if set; else a few only on a GPU machine whose processes
    start by fork (Linux): one per core but one, at most 4.

    The images are decoded in memory already, so a worker only crops, flips and normalises, which
    the main process does as fast. A spawned worker (macOS, so every MPS run, and Windows) must
    import torch and receive the whole decoded list, seconds per loader; on the CPU, workers would
    also compete with the model for the same cores (figures: docs/measurements.md).
    """
    chosen = settings.workers()
    if chosen is not None:
        return chosen
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


def endless(loader):
    """The batches of `loader` without end: a new pass (a new shuffle) starts when one runs out.
    The first pass starts now, as `iter(loader)` would."""
    if len(loader) == 0:
        raise ValueError("The loader is empty: it has no batch to repeat.")
    return _passes(loader, iter(loader))


def _passes(loader, first):
    yield from first
    while True:
        yield from iter(loader)


def tensor_loader(samples: tuple[torch.Tensor, torch.Tensor], batch_size: int = 32, shuffle: bool = False,
                  seed: int = 0) -> DataLoader:
    """A loader over stored (inputs, labels) tensors, e.g. cached features; shuffles with `seed`."""
    x, y = samples
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(f"Inputs and labels must be non-empty and of the same length (got {len(x)} and {len(y)}).")
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))
