"""Optimizers: the course's SGD, and optimizers up close (2-D loss surfaces, momentum by hand,
the learning-rate range test).

- `sgd`: SGD with momentum on a model's trainable parameters (or given parameter groups), the
  optimizer every chapter uses;

- `Surface`, `VALLEY`, `ROSENBROCK`, `LOCAL_MINIMUM`: toy losses of a point (x, y), where
  every step of an optimizer can be drawn;
- `sgd_step`, `momentum_step`, `scaled_momentum_step`, `nesterov_step`: the update rules in a
  few lines each, and `descend`, which applies one from a start point;
- `descend_torch`: the same walk with `torch.optim.SGD`, to compare with the hand-written rules;
- `plot_runs`: trajectories on a contour plot beside the loss against the step;
- `lr_range_test`, `plot_range_test`: the learning-rate range test on a real model, one
  `train.step` per batch.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from . import data, settings, train, zoo


def sgd(params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> torch.optim.SGD:
    """`torch.optim.SGD` with momentum over `params`: a model (its trainable parameters), or
    parameters / parameter groups (e.g. `finetune.param_groups`)."""
    if isinstance(params, nn.Module):
        params = zoo.trainable(params)
    return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)


# --- 2-D loss surfaces ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Surface:
    """A loss of a point: `f(p)` for p of shape (..., 2), so a whole grid evaluates at once."""
    name: str
    f: Callable[[torch.Tensor], torch.Tensor]
    start: tuple[float, float]     # where the walks begin
    minimum: tuple[float, float]   # the global minimum
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    lr: float                      # a learning rate that shows the difference
    steps: int

    def __call__(self, p: torch.Tensor) -> torch.Tensor:
        return self.f(p)

    @property
    def min_loss(self) -> float:
        return float(self.f(torch.tensor(self.minimum, dtype=torch.float64)))


def _valley(p):
    return 0.05 * p[..., 0] ** 2 + 5 * p[..., 1] ** 2


def _rosenbrock(p):
    return (1 - p[..., 0]) ** 2 + 100 * (p[..., 1] - p[..., 0] ** 2) ** 2


def _local_minimum(p):
    x, y = p[..., 0], p[..., 1]
    return 0.1 * (x - 3) ** 2 - torch.exp(-2 * (x + 1) ** 2) + y**2


VALLEY = Surface("elongated valley", _valley, start=(-9.0, 1.0), minimum=(0.0, 0.0),
                 xlim=(-10, 4), ylim=(-1.6, 1.6), lr=0.15, steps=100)
"""0.05 x² + 5 y²: curvatures 0.1 and 10 (Hessian eigenvalues), a condition number of 100."""
ROSENBROCK = Surface("Rosenbrock", _rosenbrock, start=(-1.2, 1.0), minimum=(1.0, 1.0),
                     xlim=(-1.6, 1.6), ylim=(-0.4, 1.8), lr=1e-3, steps=500)
"""(1 - x)² + 100 (y - x²)²: a curved, flat-bottomed banana valley; the minimum is at (1, 1)."""
LOCAL_MINIMUM = Surface("shallow local minimum", _local_minimum, start=(-3.0, 1.0), minimum=(3.0, 0.0),
                        xlim=(-3.5, 4), ylim=(-1.5, 1.5), lr=0.05, steps=150)
"""A bowl centred at x = 3 with a dent near x = -0.8: a shallow local minimum on the way down."""
SURFACES = (VALLEY, ROSENBROCK, LOCAL_MINIMUM)


def gradient(f: Callable, theta: torch.Tensor) -> torch.Tensor:
    """∇f at the point `theta` (autograd on a detached copy)."""
    theta = theta.detach().requires_grad_(True)
    return torch.autograd.grad(f(theta), theta)[0]


def hessian(f: Callable, theta) -> torch.Tensor:
    """The 2x2 matrix of second derivatives of f at `theta`."""
    return torch.autograd.functional.hessian(f, torch.as_tensor(theta, dtype=torch.float64))


# --- update rules, by hand -----------------------------------------------------------------------
# Each takes the point, the velocity, the gradient at the point and the hyperparameters, and
# returns the new point and the new velocity.

def sgd_step(theta, v, grad, lr, beta=0.0):
    """Plain gradient descent: θ ← θ - η ∇L (no velocity)."""
    return theta - lr * grad, v


def momentum_step(theta, v, grad, lr, beta):
    """PyTorch's form: v ← βv + ∇L, θ ← θ - ηv. The velocity sums gradients; η scales it at each step."""
    v = beta * v + grad
    return theta - lr * v, v


def scaled_momentum_step(theta, v, grad, lr, beta):
    """The other form (Sutskever et al. 2013, many papers): v ← βv + η∇L, θ ← θ - v.
    The velocity sums steps already scaled by the learning rates they were taken with."""
    v = beta * v + lr * grad
    return theta - v, v


def nesterov_step(theta, v, grad, lr, beta):
    """Nesterov momentum as `torch.optim.SGD(nesterov=True)` writes it: v ← βv + ∇L,
    θ ← θ - η(∇L + βv), a step that already includes where the velocity is heading."""
    v = beta * v + grad
    return theta - lr * (grad + beta * v), v


def _rates(lr, steps: int | None) -> list[float]:
    """A learning rate per step: `lr` repeated `steps` times, or `lr` itself if it is a sequence."""
    return [float(lr)] * steps if isinstance(lr, (int, float)) else [float(r) for r in lr]


def descend(f: Callable, start, lr: float | Sequence[float], steps: int | None = None, beta: float = 0.0,
            update: Callable = momentum_step) -> torch.Tensor:
    """Apply `update` from `start`: the visited points, (steps + 1, 2), in float64.

    `lr` is one learning rate (then give `steps`) or one per step (a list: a schedule).
    """
    theta = torch.as_tensor(start, dtype=torch.float64).clone()
    v = torch.zeros_like(theta)
    points = [theta]
    for rate in _rates(lr, steps):
        theta, v = update(theta, v, gradient(f, theta), rate, beta)
        points.append(theta)
    return torch.stack(points).detach()


def descend_torch(f: Callable, start, lr: float | Sequence[float], steps: int | None = None,
                  beta: float = 0.0, nesterov: bool = False) -> torch.Tensor:
    """The same walk with `torch.optim.SGD(momentum=beta, nesterov=nesterov)`: the points, (steps + 1, 2)."""
    theta = nn.Parameter(torch.as_tensor(start, dtype=torch.float64).clone())
    rates = _rates(lr, steps)
    optimizer = torch.optim.SGD([theta], lr=rates[0] if rates else 0.0, momentum=beta, nesterov=nesterov)
    points = [theta.detach().clone()]
    for rate in rates:
        optimizer.param_groups[0]["lr"] = rate   # what a scheduler does
        optimizer.zero_grad()
        f(theta).backward()
        optimizer.step()
        points.append(theta.detach().clone())
    return torch.stack(points)


# --- figures -------------------------------------------------------------------------------------

def plot_runs(surface: Surface, runs: dict, title: str | None = None, grid: int = 200):
    """Trajectories on the surface's contour plot (left) and loss above the minimum against the
    step, log scale (right). `runs` maps a label to the points of `descend`; returns the figure."""
    fig, (ax_map, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    xs = torch.linspace(*surface.xlim, grid, dtype=torch.float64)
    ys = torch.linspace(*surface.ylim, grid, dtype=torch.float64)
    xx, yy = torch.meshgrid(xs, ys, indexing="xy")
    zz = surface(torch.stack([xx, yy], -1)) - surface.min_loss
    levels = np.geomspace(max(float(zz.min()), 1e-3), float(zz.max()), 25)
    ax_map.contour(xx.numpy(), yy.numpy(), zz.clamp(min=1e-3).numpy(), levels=levels, cmap="Greys_r",
                   linewidths=0.6, alpha=0.7)
    ax_map.plot(*surface.minimum, "*", color="gold", ms=14, mec="black", label="global minimum")
    for i, (label, points) in enumerate(runs.items()):
        p = points.numpy()
        ax_map.plot(p[:, 0], p[:, 1], ".-", color=f"C{i}", ms=3, lw=1, label=label)
        loss = (surface(points) - surface.min_loss).clamp(min=1e-12)
        ax_loss.semilogy(loss.numpy(), color=f"C{i}", label=label)
    ax_map.plot(*surface.start, "o", color="black", ms=5)
    ax_map.set(xlim=surface.xlim, ylim=surface.ylim, xlabel="x", ylabel="y", title=surface.name)
    ax_map.legend(fontsize=8, loc="upper right")
    ax_loss.set(xlabel="step", ylabel="loss - minimum (log scale)", title="loss against step")
    ax_loss.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# --- the learning-rate range test ----------------------------------------------------------------

@dataclass
class RangeTest:
    """The rates tried, one per batch, and the training loss of each batch (raw and smoothed)."""
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]

    @property
    def min_loss_lr(self) -> float:
        """The rate at which the smoothed loss was lowest."""
        return self.lrs[int(np.argmin(self.smoothed))]

    @property
    def suggestion(self) -> float:
        """The suggested learning rate: a tenth of the rate at the minimum loss."""
        return self.min_loss_lr / 10


def lr_range_test(model: nn.Module, loader, optimizer: torch.optim.Optimizer, start_lr: float = 1e-5,
                  end_lr: float = 1.0, steps: int = 100, smoothing: float = 0.9, diverge: float = 4.0,
                  device: torch.device | None = None, seed: int | None = None) -> RangeTest:
    """The learning-rate range test (L. Smith 2017, fastai's `lr_find`): one training step per
    batch, the rate growing exponentially from `start_lr` to `end_lr` over `steps` batches
    (cycling through `loader`), recording each batch's loss. Stops early once the smoothed loss
    exceeds `diverge` times its lowest value.

    A measurement, not a training loop: the model and the optimizer get their weights and state
    back afterwards. Train models with `train.fit`. Loss smoothing: an exponential moving
    average with factor `smoothing`, bias-corrected. `seed` (see `train.reseed`) makes it repeatable.
    """
    device = device or settings.pick_device()
    dtype = train.autocast_dtype(device)
    criterion = nn.CrossEntropyLoss()
    model.to(device, memory_format=torch.channels_last)
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    if seed is not None:
        train.reseed([loader], seed)
    result = RangeTest([], [], [])
    average, batches = 0.0, data.endless(loader)
    model.train()
    zoo.freeze_batchnorm_stats(model)
    try:
        for i in range(steps):
            lr = start_lr * (end_lr / start_lr) ** (i / max(steps - 1, 1))
            inputs, labels = next(batches)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss, _ = train.step(model, inputs, labels, criterion, device, dtype, optimizer)
            value = loss.item()
            average = smoothing * average + (1 - smoothing) * value
            result.lrs.append(lr)
            result.losses.append(value)
            result.smoothed.append(average / (1 - smoothing ** (i + 1)))
            if not math.isfinite(value) or result.smoothed[-1] > diverge * min(result.smoothed):
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
        model.eval()
    return result


def plot_range_test(tests: dict, title: str | None = None):
    """Loss against learning rate (log scale) for each `RangeTest` of `tests` (label -> test):
    raw losses faint, smoothed solid, the suggestion marked with a dotted line."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, (label, test) in enumerate(tests.items()):
        ax.plot(test.lrs, test.losses, color=f"C{i}", alpha=0.25, lw=0.8)
        ax.plot(test.lrs, test.smoothed, color=f"C{i}", label=f"{label} (suggests {test.suggestion:.1e})")
        ax.axvline(test.suggestion, color=f"C{i}", ls=":", lw=1)
        ax.plot(test.min_loss_lr, min(test.smoothed), "v", color=f"C{i}")
    finite = [v for t in tests.values() for v in t.smoothed if math.isfinite(v)]
    ax.set_xscale("log")
    ax.set_ylim(0.5 * min(finite) if finite else 0, 1.5 * finite[0] if finite else None)
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss of the batch",
           title=title or "learning-rate range test (faint: raw, solid: smoothed, ▼: minimum)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
