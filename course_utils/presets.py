"""A model's preprocessing as one small record: input size, normalisation, and the training
augmentation built from it. The bottom of the package: the data, the model zoo and the plots
all speak of presets, and none of them needs the others for it (torchvision keeps its presets
apart from its loaders and models in the same way).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torchvision.transforms import v2


@dataclass(frozen=True)
class Preset:
    """A model's preprocessing: resize the shorter side, crop the centre, normalise."""
    crop: int = 224
    resize: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    colour_jitter: float = 0.0   # training: random brightness, contrast and saturation change up to +-this (0: none)
    rotation: float = 0.0        # training: random rotation up to +-this many degrees (0: none)

    def scaled(self, crop: int) -> "Preset":
        """The same preset at another input size (fast mode uses smaller inputs)."""
        return replace(self, crop=crop, resize=round(crop * self.resize / self.crop))

    def with_augmentation(self, colour_jitter: float = 0.0, rotation: float = 0.0) -> "Preset":
        """The same preset whose training transform also jitters colours and/or rotates (chapter tip 3)."""
        if colour_jitter < 0 or rotation < 0:
            raise ValueError(f"colour_jitter and rotation are amounts (>= 0); got {colour_jitter} and {rotation}.")
        return replace(self, colour_jitter=colour_jitter, rotation=rotation)

    def train_transform(self) -> v2.Compose:
        """Augmentation for training, applied to one decoded uint8 image at a time: a random
        resized crop and a flip, plus colour jitter and rotation where the preset asks for them."""
        extra = []
        if self.rotation:
            extra.append(v2.RandomRotation(self.rotation))
        if self.colour_jitter:
            extra.append(v2.ColorJitter(brightness=self.colour_jitter, contrast=self.colour_jitter,
                                        saturation=self.colour_jitter))
        return v2.Compose([
            v2.RandomResizedCrop(self.crop, antialias=True),
            v2.RandomHorizontalFlip(),
            *extra,
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
