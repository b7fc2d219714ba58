"""Figures the chapters share: learning curves, image grids with labels, confusion matrices, and what
of a model is frozen and what trains."""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib import ticker
import torch

from . import zoo
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


def _short(n: int) -> str:
    return f"{n:,}" if n < 10_000 else f"{n / 1e3:.0f}K" if n < 1_000_000 else f"{n / 1e6:.2f}M"


def trainable_map(model, title: str | None = None, ax=None):
    """What trains and what is frozen, drawn from the model itself: one box per stage of the base
    (`zoo.stages`, input on the left) and one for the head, filled by the fraction of its parameters
    that train (blue: trains, grey: frozen), labelled with its parameter count."""
    head_name, head = zoo.head(model)
    parts = zoo.stages(model) + [(head_name, head)]
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(min(1.1 * len(parts) + 1, 14), 1.7))
    for i, (name, part) in enumerate(parts):
        count = zoo.count_parameters(part)
        share = count.trainable / count.total if count.total else 0.0
        ax.add_patch(plt.Rectangle((i, 0), 0.92, 1, facecolor="0.85", edgecolor="0.4"))
        ax.add_patch(plt.Rectangle((i, 0), 0.92, share, facecolor="C0", alpha=0.8))
        ax.text(i + 0.46, 0.5, f"{name}\n{_short(count.total)}", ha="center", va="center", fontsize=7)
    trainable, total = zoo.count_parameters(model)
    ax.set(xlim=(-0.1, len(parts)), ylim=(0, 1), xticks=[], yticks=[],
           title=title or f"{type(model).__name__}: {trainable:,} of {total:,} parameters train "
                          f"(blue: trains, grey: frozen; input on the left, head on the right)")
    ax.title.set_fontsize(9)
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def filters_and_maps(models: dict, image: torch.Tensor, early: str, late: str, n: int = 8, title: str | None = None):
    """Per model (e.g. pretrained and random weights): its first convolution's `n` strongest filters as RGB
    patches, then the `n` most active channels of the modules `early` and `late` for one normalised image."""
    rows = []
    for model_name, model in models.items():
        conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.in_channels == 3)
        weights = conv.weight.detach().float()
        filters = weights[weights.flatten(1).norm(dim=1).argsort(descending=True)[:n]]
        lo, hi = filters.amin((1, 2, 3), keepdim=True), filters.amax((1, 2, 3), keepdim=True)
        rows.append((f"{model_name}\nfirst-layer filters\n{tuple(weights.shape[2:])}",
                     [f.permute(1, 2, 0).numpy() for f in (filters - lo) / (hi - lo + 1e-12)], None))
        modules, outputs = dict(model.named_modules()), {}
        hooks = [modules[layer].register_forward_hook(lambda m, i, out, layer=layer: outputs.__setitem__(layer, out))
                 for layer in (early, late)]
        try:
            with torch.inference_mode():
                model.eval()(image[None].to(next(model.parameters()).device, torch.float32))
        finally:
            for hook in hooks:
                hook.remove()
        for layer in (early, late):
            maps = outputs[layer][0].float().cpu()
            top = maps.mean((1, 2)).argsort(descending=True)[:n]
            rows.append((f"{model_name}\n{layer}: {maps.shape[1]}x{maps.shape[2]}", [maps[c].numpy() for c in top], "viridis"))
    fig, axes = plt.subplots(len(rows), n, figsize=(1.4 * n + 1.6, 1.5 * len(rows)), squeeze=False)
    for row_axes, (label, pictures, cmap) in zip(axes, rows):
        for ax, picture in zip(row_axes, pictures):
            ax.imshow(picture, cmap=cmap)
        for ax in row_axes:
            ax.set(xticks=[], yticks=[])
        row_axes[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or f"first-layer filters and the most active feature maps for one image: {', '.join(models)}")
    fig.tight_layout()
    return fig


def grouped_bars(table, title: str, ylabel: str = "accuracy", reference: float | None = None,
                 reference_label: str = "", ax=None):
    """One group of bars per column of `table` (a DataFrame), one bar per row, coloured by row (NaN: no
    bar); `reference` draws a dotted horizontal line (e.g. the clean accuracy)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(max(6, 1.3 * len(table.columns) + 3), 3.8))
    width = 0.8 / len(table.index)
    for i, (row, values) in enumerate(table.iterrows()):
        shown = [(j, v) for j, v in enumerate(values) if v == v]   # v == v: not NaN
        ax.bar([j - 0.4 + (i + 0.5) * width for j, _ in shown], [v for _, v in shown], width, color=f"C{i % 10}",
               label=str(row))
    if reference is not None:
        ax.axhline(reference, color="k", ls=":", lw=1, label=reference_label or None)
    ax.set_xticks(range(len(table.columns)), [str(c) for c in table.columns])
    ax.set(ylabel=ylabel, title=title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.tight_layout()
    return fig


def fisher_values(fisher: dict, title: str, bins: int = 60, ax=None):
    """A histogram of the diagonal Fisher values of every parameter in `fisher` (`{name: tensor}`), on log
    scales, with the median and the largest value marked (zeros cannot be drawn: the legend counts them)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 3.5))
    values = torch.cat([f.detach().flatten().double().cpu() for f in fisher.values()])
    positive = values[values > 0]
    edges = torch.logspace(positive.min().log10().item(), positive.max().log10().item(), bins + 1)
    ax.hist(positive.numpy(), bins=edges.numpy(), color="C0", alpha=0.8,
            label=f"{len(values):,} weights in {len(fisher)} tensors ({len(values) - len(positive):,} exactly zero)")
    ax.axvline(values.median().item(), color="C3", label=f"median {values.median().item():.1e}")
    ax.axvline(values.max().item(), color="k", ls="--", label=f"largest {values.max().item():.1e}")
    ax.set(xscale="log", yscale="log", xlabel="Fisher value (log scale)", ylabel="weights (log scale)", title=title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def rate_tradeoff(rates, old, new, title: str, old_label: str = "old data", new_label: str = "new data",
                  ylabel: str = "accuracy", ax=None):
    """Two measures against the learning rate (log scale), one line each: what updates at that rate
    leave on the old data and reach on the new."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 3.5))
    ax.plot(list(rates), list(old), "o-", color="C3", label=old_label)
    ax.plot(list(rates), list(new), "s-", color="C2", label=new_label)
    ax.set_xscale("log")
    ax.set(xlabel="update learning rate (log scale)", ylabel=ylabel, title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def intervals(sizes, lows, highs, measured: float, title: str, ax=None):
    """One vertical bar per number of validation images (log scale): the interval [low, high] around an
    accuracy `measured` (a dotted line), to show it narrowing with the square root of the images."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6.5, 3.5))
    sizes, lows, highs = list(sizes), list(lows), list(highs)
    ax.vlines(sizes, lows, highs, color="C0", lw=4, label="95% Wilson interval")
    ax.axhline(measured, color="k", ls=":", lw=1, label=f"measured accuracy {measured:.3f}")
    ax.set_xscale("log")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.set(xlabel="validation images (log scale)", ylabel="accuracy", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def cost_accuracy(points: dict, title: str, xlabel: str = "training seconds", ylabel: str = "best val accuracy",
                  log_x: bool = False, ax=None):
    """One point per run, `{label: (cost, accuracy)}`, named in the legend with its numbers: what each way of
    training cost against what it reached (up and to the left is better)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(7.5, 3.8))
    markers = "osD^vP*X"
    for i, (label, (cost, accuracy)) in enumerate(points.items()):
        ax.scatter([cost], [accuracy], s=45, color=f"C{i % 10}", marker=markers[i % len(markers)],
                   label=f"{label}: {accuracy:.3f}, {cost:,.1f}")
    if log_x:
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1, 2, 5)))
        ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}"))
        ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set(xlabel=xlabel + (" (log scale)" if log_x else ""), ylabel=ylabel, title=title)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), title="run: accuracy, cost", title_fontsize=7)
    fig.tight_layout()
    return fig
