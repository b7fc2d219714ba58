"""The PyTorch tutorial's training loop, as the tutorial writes it: the one reference copy.

"Transfer learning for computer vision" (pytorch.org/tutorials) decodes and transforms every
image with PIL in every epoch, in batches of 4, float32, and runs a training phase then a
validation phase per epoch. No chapter runs it (chapter 03 writes its own plain loop out);
`make bench` and the GPU check (tools/) time it against the course's loop.
"""
from __future__ import annotations

import torch
from torchvision import datasets, transforms


def loaders(root, preset, batch_size: int = 4, num_workers: int = 2) -> dict:
    """torchvision ImageFolder + PIL transforms, as in the tutorial: {'train': ..., 'val': ...}."""
    tf = {
        "train": transforms.Compose([transforms.RandomResizedCrop(preset.crop), transforms.RandomHorizontalFlip(),
                                     transforms.ToTensor(), transforms.Normalize(preset.mean, preset.std)]),
        "val": transforms.Compose([transforms.Resize(preset.resize), transforms.CenterCrop(preset.crop),
                                   transforms.ToTensor(), transforms.Normalize(preset.mean, preset.std)]),
    }
    return {split: torch.utils.data.DataLoader(datasets.ImageFolder(f"{root}/{split}", tf[split]),
                                               batch_size=batch_size, shuffle=split == "train",
                                               num_workers=num_workers)
            for split in ("train", "val")}


def train_epoch(model, loaders, criterion, optimizer, device) -> float:
    """One epoch of the tutorial's loop: a training phase, then a validation phase; returns the val accuracy."""
    for phase in ("train", "val"):
        model.train() if phase == "train" else model.eval()
        correct = 0
        for inputs, labels in loaders[phase]:
            inputs, labels = inputs.to(device), labels.to(device)
            optimizer.zero_grad()
            with torch.set_grad_enabled(phase == "train"):
                outputs = model(inputs)
                loss = criterion(outputs, labels)
                if phase == "train":
                    loss.backward()
                    optimizer.step()
            correct += (outputs.argmax(1) == labels).sum().item()
    return correct / len(loaders["val"].dataset)
