"""Feature extraction done once: run the frozen base over the images, then train only the head.

With a frozen base, every epoch of the usual loop recomputes the same base outputs for the
same images. Computing them once and training the head on the stored features gives the
same model in a fraction of the time. That is only exact without augmentation: a random
crop changes the input, hence the features, every epoch. `views=K` stores K augmented
passes over the training images, which recovers most of augmentation's benefit.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from . import settings, zoo
from .train import _to_device, autocast_dtype


@torch.inference_mode()
def extract_features(model: nn.Module, loader: DataLoader, device: torch.device | None = None,
                     views: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of the model's head for every sample of `loader`, `views` passes over it.

    The base runs in eval mode (BatchNorm uses ImageNet's statistics). Returns float32
    features (N * views, D) and labels (N * views,), on the CPU.
    """
    device = device or settings.pick_device()
    name, head = zoo.head(model)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"extract_features needs a Linear head; {type(model).__name__}'s is {type(head).__name__}.")
    dtype = autocast_dtype(device)
    model.set_submodule(name, nn.Identity())
    try:
        model.to(device, memory_format=torch.channels_last).eval()
        features, labels = [], []
        for _ in range(views):
            for inputs, targets in loader:
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    features.append(model(_to_device(inputs, device)).float().flatten(1).cpu())
                labels.append(torch.as_tensor(targets))
    finally:
        model.set_submodule(name, head)
    return torch.cat(features), torch.cat(labels)


def feature_loaders(model: nn.Module, loaders: dict, device: torch.device | None = None,
                    views: int = 1, batch_size: int = 32) -> dict[str, DataLoader]:
    """Loaders over stored features, ready for `train.fit(head, ...)`: train with `views` passes."""
    out = {}
    for split, loader in loaders.items():
        x, y = extract_features(model, loader, device, views if split == "train" else 1)
        out[split] = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=split == "train",
                                generator=torch.Generator().manual_seed(0))
    return out
