"""One set-up call for a chapter: device, dataset, classes, a pretrained model, its preset
scaled for the mode, and loaders, as one small record with named fields.

    setup = chapter.setup("resnet18", batch_size=32)
    setup.model, setup.preset, setup.loaders["train"], setup.classes, setup.device ...

It seeds Python, NumPy and PyTorch once (the notebook's only global seed); runs below stay
repeatable through explicit seeds (`train.fit(..., seed=...)`, loaders' `seed=`).

`chapter.claim(holds, message)` states a teaching claim about the data, in the chapter's last cell
("The chapter against this run"): printed with its verdict; asserted only in the course's own runs
(COURSE_STRICT=1) on its case study, so that a student's own parameters or dataset never stop a chapter.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from . import data, precision, settings, zoo


@dataclass
class Chapter:
    device: torch.device
    dataset: Path                 # the ImageFolder root (COURSE_DATASET, or ants vs bees)
    classes: list[str]
    model: nn.Module              # pretrained, with a new head of len(classes) outputs
    name: str                     # the model actually loaded (the offline fallback's name if it differs)
    preset: data.Preset           # its preprocessing, at the mode's image size
    per_class: int | None         # images per class and split (None: all)
    batch_size: int
    loaders: dict[str, DataLoader]

    def image_loaders(self, augment: bool = True, per_class: int | None | str = "chapter",
                      seed: int = 0) -> dict[str, DataLoader]:
        """Loaders over the same dataset and preset: `augment=False` gives training images the
        validation preprocessing; `per_class` another subset size ("chapter": the chapter's own;
        None: every image)."""
        if isinstance(per_class, str) and per_class != "chapter":
            raise ValueError(f"per_class={per_class!r}: give a number of images, None (all) or \"chapter\".")
        return data.image_loaders(self.dataset, self.preset, self.batch_size,
                                  per_class=self.per_class if per_class == "chapter" else per_class,
                                  augment=augment, device=self.device, seed=seed)


def setup(model: str = "resnet18", batch_size: int = 32, augment: bool = True, seed: int = 0) -> Chapter:
    """Seed once, set the CPU threads, print the configuration, and load what a chapter needs."""
    settings.seed_everything(seed)
    settings.set_threads()
    device = settings.pick_device()
    print(settings.describe())
    print(f"precision: {precision.describe(device)}")
    root = data.course_dataset()
    classes = data.find_classes(root)
    pretrained, preset, name = zoo.load_pretrained(model, num_classes=len(classes))
    preset = preset.scaled(settings.image_size(preset.crop))
    chapter = Chapter(device, root, classes, pretrained, name, preset, settings.images_per_class(), batch_size, {})
    chapter.loaders = chapter.image_loaders(augment=augment)
    return chapter


def claim(holds: bool, message: str) -> None:
    """A teaching claim the chapter has measured, e.g. `claim(acc_a > acc_b, "a beats b")`.

    Prints `[holds] a beats b` or `[does not hold] a beats b`. The course's own runs (`make test`,
    CI, `make measure`: COURSE_STRICT=1) assert it on the case study, with the default parameters
    that the thresholds are set for. A student's run never stops on a claim: with other parameters
    or another dataset (COURSE_DATASET) a claim that does not hold is a finding, not an error.
    Returns nothing, so a cell ending in a claim shows only the printed line.
    """
    holds = bool(holds)
    own = settings.dataset()
    if settings.strict() and own is None:
        assert holds, message
    where = f" on your dataset, {own.name}" if own is not None and not holds else ""
    print(f"[{'holds' if holds else 'does not hold'}{where}] {message}")
