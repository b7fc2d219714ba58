"""Lay out a public dataset as the course's ImageFolder (train/<class>/, val/<class>/), by links.

    python tools/prepare_dataset.py food101 path/to/food-101 data/food101
    python tools/prepare_dataset.py dogs-vs-cats path/to/dogs-vs-cats data/dogs-vs-cats [--val-fraction 0.2 --seed 0]

food101: Food-101 as its archive unpacks (food-101/images/<class>/<id>.jpg with meta/train.txt and
meta/test.txt, one `<class>/<id>` per line): its own split is kept, train.txt -> train/, test.txt ->
val/ (750 and 250 images per class). dogs-vs-cats: Kaggle's single train/ folder of cat.N.jpg and
dog.N.jpg (the folder itself or the one holding it): a seeded split of each class, --val-fraction of
it to val/.

Every image is a link to the original (symbolic by default, `--link hard` for hard links, e.g. on
Windows without the right to make symbolic ones): no image is copied, so the layout costs a few MB.
The layout is made in a temporary folder beside OUT and renamed into place when complete; OUT must
not exist yet. Then: `COURSE_DATASET=OUT` for the notebooks, or `python tools/train.py --data OUT`.
"""
from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import sys
from pathlib import Path

DOG_OR_CAT = re.compile(r"^(cat|dog)\.(\d+)\.(jpe?g|png)$", re.IGNORECASE)


class LayoutError(ValueError):
    """The source folder is not in the layout the subcommand expects; the message says what was expected."""


def food101(source: Path) -> dict[str, list[tuple[str, Path]]]:
    """{'train': [(class, image path)], 'val': [...]} from Food-101's meta/train.txt and meta/test.txt."""
    source = Path(source)
    expected = (f"Food-101's layout was expected in {source}: images/<class>/<id>.jpg and meta/train.txt, "
                f"meta/test.txt (the food-101/ folder that food-101.tar.gz unpacks to).")
    if not (source / "images").is_dir():
        raise LayoutError(f"{source} has no images/ folder. {expected}")
    splits = {}
    for split, listing in (("train", "train.txt"), ("val", "test.txt")):
        meta = source / "meta" / listing
        if not meta.is_file():
            raise LayoutError(f"{source} has no meta/{listing}. {expected}")
        entries, missing = [], []
        for number, line in enumerate(meta.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            if line.count("/") != 1:
                raise LayoutError(f"meta/{listing} line {number} is {line!r}, not `<class>/<id>`. {expected}")
            name, image = line.split("/")
            path = source / "images" / name / f"{image}.jpg"
            (entries if path.is_file() else missing).append((name, path))
        if missing:
            shown = ", ".join(str(p.relative_to(source)) for _, p in missing[:3])
            raise LayoutError(f"meta/{listing} lists {len(missing)} image(s) that are not in images/ ({shown}"
                              f"{', ...' if len(missing) > 3 else ''}): the archive was not fully unpacked?")
        if not entries:
            raise LayoutError(f"meta/{listing} lists no image. {expected}")
        splits[split] = entries
    only = {c for c, _ in splits["train"]} ^ {c for c, _ in splits["val"]}
    if only:
        raise LayoutError(f"Classes {sorted(only)} appear in only one of meta/train.txt and meta/test.txt.")
    return splits


def dogs_vs_cats(source: Path, val_fraction: float = 0.2, seed: int = 0) -> dict[str, list[tuple[str, Path]]]:
    """A seeded split of Kaggle's train/ folder: each class shuffled with `seed`, `val_fraction` of it to val."""
    source = Path(source)
    folder = source / "train" if (source / "train").is_dir() else source
    if not 0 < val_fraction < 1:
        raise LayoutError(f"--val-fraction must be between 0 and 1 (got {val_fraction}), e.g. 0.2.")
    if not folder.is_dir():
        raise LayoutError(f"{source} does not exist: give the folder that train.zip unpacks to (train/).")
    files = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    labelled = [(m.group(1).lower(), int(m.group(2)), p) for p in files if (m := DOG_OR_CAT.match(p.name))]
    others = [p.name for p in files if not DOG_OR_CAT.match(p.name)]
    if others:
        hint = " (test1/ holds unlabelled images: only train/ can be used)" if all(
            re.match(r"^\d+\.jpe?g$", n, re.IGNORECASE) for n in others[:20]) else ""
        raise LayoutError(f"{folder} holds {len(others)} file(s) not named cat.N.jpg or dog.N.jpg "
                          f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}){hint}. Dogs vs Cats' "
                          f"layout was expected: one train/ folder of cat.N.jpg and dog.N.jpg.")
    splits = {"train": [], "val": []}
    for name in ("cat", "dog"):
        group = sorted((n, p) for c, n, p in labelled if c == name)
        if len(group) < 2:
            raise LayoutError(f"{folder} holds {len(group)} {name}.N.jpg image(s): at least 2 of each class are "
                              f"needed (one for train/, one for val/).")
        paths = [p for _, p in group]
        random.Random(f"{seed}-{name}").shuffle(paths)
        n_val = min(len(paths) - 1, max(1, round(val_fraction * len(paths))))
        splits["val"] += [(name, p) for p in paths[:n_val]]
        splits["train"] += [(name, p) for p in paths[n_val:]]
    return splits


def write_layout(splits: dict[str, list[tuple[str, Path]]], out: Path, link: str = "symlink") -> dict[str, int]:
    """Make out/<split>/<class>/<file name> links to the images; atomic (a temporary folder renamed)."""
    out = Path(out)
    if out.exists():
        raise LayoutError(f"{out} exists already: remove it, or choose another output folder.")
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        for split, entries in splits.items():
            for name, path in entries:
                target = temporary / split / name / path.name
                target.parent.mkdir(parents=True, exist_ok=True)
                try:
                    if link == "hard":
                        os.link(path, target)
                    else:
                        target.symlink_to(path.resolve())
                except OSError as err:
                    other = "--link hard (same file system only)" if link != "hard" else "the default symbolic links"
                    raise LayoutError(f"Could not link {target} to {path} ({err}); try {other}.") from err
        os.replace(temporary, out)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    return {split: len(entries) for split, entries in splits.items()}


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="dataset", required=True)
    for name, what in (("food101", "Food-101 (images/ and meta/), its own train/test split"),
                       ("dogs-vs-cats", "Kaggle's Dogs vs Cats train/ folder, a seeded split")):
        command = commands.add_parser(name, help=what)
        command.add_argument("source", type=Path)
        command.add_argument("out", type=Path)
        command.add_argument("--link", choices=("symlink", "hard"), default="symlink")
        if name == "dogs-vs-cats":
            command.add_argument("--val-fraction", type=float, default=0.2)
            command.add_argument("--seed", type=int, default=0)
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        if args.dataset == "food101":
            splits = food101(args.source)
        else:
            splits = dogs_vs_cats(args.source, args.val_fraction, args.seed)
        counts = write_layout(splits, args.out, args.link)
    except LayoutError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    classes = len({c for c, _ in splits["train"]})
    print(f"{args.out}: {counts['train']:,} training and {counts['val']:,} validation images of {classes} classes, "
          f"as {'hard' if args.link == 'hard' else 'symbolic'} links. Use it with COURSE_DATASET={args.out} or "
          f"`python tools/train.py --data {args.out}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
