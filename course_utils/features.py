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
from torch.utils.data import DataLoader

from . import data, train, zoo


def extract_features(model: nn.Module, loader: DataLoader, device: torch.device | None = None,
                     views: int = 1, mixed_precision: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """The inputs of the model's head for every sample of `loader`'s dataset, `views` passes over it.

    Samples come in dataset order (the loader's shuffling is not used), so row i is
    `loader.dataset[i]` (and row i + N its second view). The base runs in eval mode
    (BatchNorm keeps ImageNet's statistics), through `train.outputs`. Returns float32 features
    (N * views, D) and labels (N * views,), on the CPU. The model is left as it was, head included.
    """
    name, head = zoo.head(model)
    if not isinstance(head, nn.Linear):
        raise TypeError(f"extract_features needs a model whose head is a Linear layer; "
                        f"{type(model).__name__}'s head {name!r} is a {type(head).__name__}. Train this "
                        f"model's head through the frozen model instead: train.fit(model, image loaders, ...).")
    in_order = data.loader_like(loader, shuffle=False)
    was_training = model.training
    model.set_submodule(name, nn.Identity())  # the model now outputs what the head would receive
    try:
        passes = [train.outputs(model, in_order, device, mixed_precision) for _ in range(views)]
    finally:
        model.set_submodule(name, head)
        model.train(was_training)
    return torch.cat([x.flatten(1) for x, _ in passes]), torch.cat([y for _, y in passes])


def feature_loaders(model: nn.Module, loaders: dict, device: torch.device | None = None,
                    views: int = 1, batch_size: int = 32, mixed_precision: bool = True,
                    seed: int = 0) -> dict[str, DataLoader]:
    """Loaders over stored features, ready for `train.fit(zoo.head(model).layer, ...)`.

    The train split gets `views` passes (use augmenting loaders for views > 1); the train
    loader shuffles with `seed`, like `data.image_loaders`.
    """
    out = {}
    for split, loader in loaders.items():
        x, y = extract_features(model, loader, device, views if split == "train" else 1, mixed_precision)
        out[split] = data.tensor_loader((x, y), batch_size, shuffle=split == "train", seed=seed)
    return out
