"""Validation error as a measurement: intervals, paired comparisons, and what a run's curves say.

An accuracy measured on n validation images is an estimate of the accuracy on all the images
the model will ever see: `wilson_interval` says how far off it may be. Two models measured on
the same images are compared with `paired_bootstrap`, which resamples the images. `diagnose`
reads a `train.History` the way the chapter's table does: underfitting, overfitting or a good fit.
"""
from __future__ import annotations

import math
from statistics import NormalDist
from typing import NamedTuple

import numpy as np

DIAGNOSES = {
    "underfitting": "high train and val loss, low accuracy on both: the model does not even fit its "
                    "training images (more capacity, less regularisation, a higher lr, longer training)",
    "overfitting": "train much better than val, val loss rising: the model learns its training images "
                   "rather than the task (more data, augmentation, regularisation, early stopping)",
    "good fit": "both good and close",
}


def z_value(confidence: float = 0.95) -> float:
    """The normal quantile of a two-sided interval: 1.96 for 95%, 2.58 for 99%."""
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def normal_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The textbook interval p +- z * sqrt(p (1 - p) / n) for `correct` right out of `n`, clipped to
    [0, 1]. Too narrow for small n or p near 0 or 1 (at p = 1 it has width 0)."""
    p = correct / n
    half = z_value(confidence) * math.sqrt(p * (1 - p) / n)
    return max(0.0, p - half), min(1.0, p + half)


def wilson_interval(correct: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval for an accuracy of `correct` out of `n`: the true accuracies p for which
    the measured one lies within z standard errors sqrt(p (1 - p) / n). Good for any n and p."""
    z, p = z_value(confidence), correct / n
    centre = (p + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z / (1 + z**2 / n) * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return max(0.0, centre - half), min(1.0, centre + half)


class Comparison(NamedTuple):
    difference: float         # accuracy of A minus accuracy of B, on the images given
    low: float                # the bootstrap interval of that difference
    high: float
    samples: np.ndarray       # the difference on each resampled set of images


def paired_bootstrap(correct_a, correct_b, samples: int = 10_000, confidence: float = 0.95,
                     seed: int = 0) -> Comparison:
    """How sure is "A beats B" when both were measured on the same images?

    `correct_a`, `correct_b`: per image, 1 where the model is right (same images, same order).
    Each bootstrap sample draws n images with replacement and takes the difference of the two
    accuracies on them; the interval holds the middle `confidence` of those differences.
    Pairing matters: an image both models get right (or wrong) shifts both accuracies alike.
    """
    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"correct_a and correct_b need one value per image, the same images: "
                         f"got shapes {a.shape} and {b.shape}.")
    rows = np.random.default_rng(seed).integers(0, len(a), size=(samples, len(a)))
    diffs = (a - b)[rows].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return Comparison(float((a - b).mean()), float(low), float(high), diffs)


def curve_summary(history, last: int = 3) -> dict:
    """What the diagnosis reads from a run's history, averaged over its `last` epochs (less noise):
    train/val accuracy and loss, the `gap` (train minus val accuracy), and the `rise` of the val
    loss above its lowest value (0.5: half as large again)."""
    rows = history.epochs[-last:]
    if not rows:
        raise ValueError("The history has no epochs: train first.")
    mean = {key: sum(row[key] for row in rows) / len(rows)
            for key in ("train_acc", "val_acc", "train_loss", "val_loss")}
    lowest = min(row["val_loss"] for row in history.epochs)
    return dict(mean, gap=mean["train_acc"] - mean["val_acc"], rise=mean["val_loss"] / lowest - 1)


def diagnose(history, min_acc: float = 0.8, max_gap: float = 0.1, max_rise: float = 1.0,
             last: int = 3) -> str:
    """The row of the diagnosis table a run lands in, from `curve_summary(history, last)`:

    - "underfitting": train accuracy below `min_acc` (then val accuracy is low too);
    - "overfitting": train accuracy more than `max_gap` above val, or the val loss risen by more
      than `max_rise` (1.0: doubled) above its lowest;
    - "good fit": otherwise.
    """
    s = curve_summary(history, last)
    if s["train_acc"] < min_acc:
        return "underfitting"
    if s["gap"] > max_gap or s["rise"] > max_rise:
        return "overfitting"
    return "good fit"
