"""Figures the chapters share: learning curves, image grids with labels, confusion matrices."""
from __future__ import annotations

import matplotlib.pyplot as plt
import torch

from .presets import Preset


def learning_curves(histories: dict, title: str | None = None, marks: dict | None = None):
    """Loss and accuracy per epoch, train dashed and val solid, one colour per run.

    `histories` maps a run's name to its `train.History`; `marks` maps a run's name to an
    epoch to mark with a vertical line (e.g. where layers were unfrozen).
    """
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, (name, history) in enumerate(histories.items()):
        color = f"C{i}"
        epochs = history.column("epoch")
        for ax, key in ((ax_loss, "loss"), (ax_acc, "acc")):
            ax.plot(epochs, history.column(f"train_{key}"), "--", color=color, alpha=0.7)
            ax.plot(epochs, history.column(f"val_{key}"), "-o", color=color, ms=3, label=name)
            if marks and name in marks:
                ax.axvline(marks[name], color=color, lw=0.8, ls=":")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss (dashed: train, solid: val)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy (dashed: train, solid: val)")
    ax_acc.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_image(ax, image: torch.Tensor, preset: Preset | None = None, title: str = ""):
    """Draw one image tensor: uint8 (3, H, W) as it is, or a normalised float one un-normalised."""
    if image.dtype == torch.uint8:
        image = image.float() / 255
    elif preset is not None:
        mean = torch.tensor(preset.mean).view(3, 1, 1)
        std = torch.tensor(preset.std).view(3, 1, 1)
        image = image.float().cpu() * std + mean
    ax.imshow(image.clamp(0, 1).permute(1, 2, 0).numpy())
    ax.set_title(title, fontsize=8)
    ax.axis("off")


def image_grid(images, titles=None, preset: Preset | None = None, cols: int = 6, size: float = 1.8,
               colors=None):
    """A grid of images with a title each (e.g. 'pred: ant / true: bee'); returns the figure."""
    images = list(images)
    rows = max(1, -(-len(images) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(cols * size, rows * size * 1.1), squeeze=False,
                             layout="constrained")
    for i, ax in enumerate(axes.flat):
        if i < len(images):
            show_image(ax, images[i], preset, titles[i] if titles else "")
            if colors:
                ax.title.set_color(colors[i])
        else:
            ax.axis("off")
    return fig


def confusion_matrix(labels: torch.Tensor, predictions: torch.Tensor, classes: list[str]) -> torch.Tensor:
    """Counts[i, j]: images of true class i predicted as class j."""
    n = len(classes)
    return torch.bincount(labels * n + predictions, minlength=n * n).reshape(n, n)


def plot_confusion(labels: torch.Tensor, predictions: torch.Tensor, classes: list[str], title: str = ""):
    """The confusion matrix as a labelled heat map; returns the figure."""
    counts = confusion_matrix(labels, predictions, classes)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(classes), 1 + 0.6 * len(classes)))
    ax.imshow(counts.numpy(), cmap="Blues")
    for (i, j), value in zip(torch.cartesian_prod(torch.arange(len(classes)), torch.arange(len(classes))).tolist(),
                             counts.flatten().tolist()):
        ax.text(j, i, value, ha="center", va="center",
                color="white" if value > counts.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    fig.tight_layout()
    return fig
