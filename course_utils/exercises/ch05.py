"""Exercise checks of chapter 05 optimizers and momentum."""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch

from .. import optimizers, train
from .harness import answer, call, known_mistake, number, passed, require


def check_05_stable_lr(max_stable_lr, surface) -> None:
    """The largest learning rate for which plain gradient descent converges on the quadratic
    `surface` (optimizers.VALLEY): 2 / λ_max, λ_max the largest eigenvalue of its Hessian."""
    got = number(max_stable_lr, "max_stable_lr", "a learning rate")
    low, high = torch.linalg.eigvalsh(optimizers.hessian(surface, surface.start)).tolist()
    want = 2 / high
    if abs(got - want) > 1e-3 * want:
        smallest = ("you used the smallest curvature, of the flat direction. The steep direction overshoots "
                    "first: the limit comes from the largest eigenvalue.")
        mistakes = [
            (1 / high, "that is 1/λ_max, the rate that removes the steep direction in a single step. The "
                       "distance along it is multiplied by (1 - ηλ) per step: it still shrinks while "
                       "|1 - ηλ| < 1, so the limit is twice that."),
            (2 / low, smallest),
            (1 / low, smallest),
            (2 / (low + high), "that is the best constant rate for plain gradient descent (it balances the "
                               "flat and the steep direction), slightly below the largest stable one."),
        ]
        feedback = known_mistake(got, mistakes, same=lambda a, b: abs(a - b) <= 1e-3 * abs(b))
        require(not feedback, f"max_stable_lr = {got:.4g}: {feedback}")
        require(False, f"max_stable_lr = {got:.4g}, but the Hessian's eigenvalues are {low:g} and {high:g}. "
                            f"Along an eigen-direction with curvature λ, one step multiplies the distance to the "
                            f"minimum by (1 - ηλ): for which η does that shrink for every λ?")
    finals = {}
    for factor in (0.95, 1.05):
        points = optimizers.descend(surface, surface.start, factor * want, 200)
        finals[factor] = float(surface(points[-1]) - surface.min_loss)
    passed(f"2 / λ_max = 2 / {high:g} = {want:.4g}. Plain gradient descent for 200 steps: loss above the minimum "
           f"{finals[0.95]:.2g} at 0.95 x that rate, {finals[1.05]:.3g} at 1.05 x (it diverges). With momentum β "
           f"the limit becomes 2(1 + β) / λ_max: try it with the sliders of section 1.")


CHAPTER_LRS = (1e-4, 1e-3, 1e-2, 1e-1)   # the chapter's exercise 2, exactly
CHAPTER_LRS_05 = CHAPTER_LRS               # the old name, kept for one release (tests/test_exercises_ch05.py)


def _lowest_val_loss(history) -> float:
    """A run's lowest validation loss (NaN, a diverged run, counts as infinitely bad)."""
    losses = [v for v in history.column("val_loss") if v == v]
    return min(losses, default=float("inf"))


def _final_train_loss(history) -> float:
    value = history.epochs[-1]["train_loss"] if history.epochs else float("nan")
    return value if value == value else float("inf")


def _is_rate(value) -> bool:
    """A number (Python's or NumPy's), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _plotted(figure) -> list:
    """The y-values of every line drawn on `figure`'s axes, and of every scatter plot's points."""
    lines = [np.asarray(line.get_ydata(), dtype=float) for ax in figure.axes for line in ax.get_lines()]
    points = [np.asarray(c.get_offsets(), dtype=float) for ax in figure.axes for c in ax.collections
              if hasattr(c, "get_offsets")]
    return lines + [p[:, 1] for p in points if p.ndim == 2 and len(p)]


def _drawn(curve, lines) -> bool:
    curve = np.asarray(curve, dtype=float)
    return any(len(y) == len(curve) and np.allclose(y, curve, rtol=1e-6, atol=1e-9, equal_nan=True) for y in lines)


def _ex2_runs(histories) -> list:
    """Set-up: one History per chapter rate, each trained at its rate, all on the same budget."""
    require(isinstance(histories, dict), f"`ex2_histories` should be a dict rate -> History, not a "
                                         f"{type(histories).__name__}.")
    want = ", ".join(f"{lr:g}" for lr in CHAPTER_LRS)
    named = [key for key in histories if not _is_rate(key)]
    require(not named, f"`ex2_histories` is keyed by {', '.join(repr(k) for k in named[:4])}: key each run by its "
                       f"rate as a number ({want}), e.g. {{lr: history for lr in LRS}}, not by a label.")
    rates = sorted(histories)
    require(len(rates) == len(CHAPTER_LRS)
            and all(abs(lr - w) <= 1e-9 * w for lr, w in zip(rates, CHAPTER_LRS)),
            f"`ex2_histories` has the rates {', '.join(repr(lr) for lr in rates) or 'none'}; the exercise asks for "
            f"exactly {want}.", hint="one run per rate, keyed by the rate itself.")
    for lr in rates:
        h = histories[lr]
        answer(h, f"ex2_histories[{lr:g}]")
        require(not (isinstance(h, tuple) and h and isinstance(h[0], train.History)),
                f"ex2_histories[{lr:g}] is a tuple: run() returns (history, seconds); keep its History, run(...)[0].")
        require(isinstance(h, train.History) and h.epochs, f"ex2_histories[{lr:g}] should be the History that "
                                                           f"train.fit returned, not a {type(h).__name__}.")
        ran = h.epochs[0].get("lr")
        require(ran is not None and abs(ran - lr) <= 1e-6 * lr,
                f"ex2_histories[{lr:g}] was trained at learning rate {ran:g}, not {lr:g}.",
                hint="build each run's optimizer with its own rate (beware a lambda that reads the loop variable "
                     "later), and key the dict by the rate the run used.")
    lengths = {lr: len(histories[lr].epochs) for lr in rates}
    require(len(set(lengths.values())) == 1, "the runs have different numbers of epochs ("
            + ", ".join(f"{lr:g}: {n}" for lr, n in lengths.items()) + "): compare the rates on the same budget.")
    require(len({id(h) for h in histories.values()}) == len(rates), "two rates share the same History: train "
                                                                      "one run per rate.")
    return rates


def _ex2_figure(figure, histories: dict, rates: list) -> None:
    """Set-up: the figure draws both loss curves of every run."""
    require(hasattr(figure, "axes"), f"`ex2_figure` should be the matplotlib figure of your curves "
                                     f"(plots.learning_curves returns it), not a {type(figure).__name__}.")
    lines = _plotted(figure)
    for lr in rates:
        for curve in ("train_loss", "val_loss"):
            require(_drawn(histories[lr].column(curve), lines),
                    f"`ex2_figure` does not draw the {curve.replace('_', 'ing ' if curve[0] == 't' else 'idation ')} "
                    f"curve of the run at {lr:g}.",
                    hint="plot the training AND the validation loss of every rate, e.g. "
                         "plots.learning_curves({f'lr {lr:g}': h for lr, h in ex2_histories.items()}).")


def _ex2_picks(answers: dict, rates: list, histories: dict) -> list:
    """Set-up: each answer is one of the rates run (None allowed except for the best); the rates picked."""
    want = ", ".join(f"{lr:g}" for lr in CHAPTER_LRS)
    losses = [v for h in histories.values() for key in ("train_loss", "val_loss") for v in h.column(key)]
    for name, value in answers.items():
        ran = _is_rate(value) and any(abs(value - lr) <= 1e-9 * lr for lr in rates)
        require(ran or not _is_rate(value) or not any(abs(value - v) <= 1e-9 * abs(v) for v in losses),
                f"`{name}` = {value!r} is a loss read from the histories, not a rate: `{name}` should be the "
                f"learning rate of that run (one of {want}).", hint="min(d, key=d.get) gives the key of the "
                                                                   "smallest value of a dict d.")
        require(value is None or (_is_rate(value) and any(abs(value - lr) <= 1e-9 * lr for lr in rates)),
                f"`{name}` = {value!r} is not one of the rates you ran: {want}"
                + (" (or None)." if name != "best_lr" else "."))
    return [None if value is None else min(rates, key=lambda lr: abs(lr - value)) for value in answers.values()]


def _ex2_best(best_lr, rates: list, val: dict, final: dict, acc: dict, last_val: dict):
    """Numbers: the best rate is the one with the lowest validation loss, over the epochs or at the last
    epoch (both read "the lowest validation loss"); returns it."""
    best = min(rates, key=val.get)
    if best_lr != best and best_lr == min(rates, key=last_val.get):
        return best_lr   # the lowest validation loss at the end of the run: another fair reading
    if best_lr != best:
        by_acc = max(rates, key=lambda lr: (acc[lr], -val[lr]))
        by_train = min(rates, key=final.get)
        why = (" That is the rate with the highest validation accuracy; on a few dozen validation images one image "
               "moves it by whole points and ties are common. The loss also counts how confident each prediction "
               "is, so it tells close runs apart." if best_lr == by_acc else
               " That is the rate with the lowest training loss: the question is how well the model does on images "
               "it did not train on." if best_lr == by_train else "")
        require(False, f"best_lr = {best_lr:g} reaches a validation loss of {val[best_lr]:.3f}, but {best:g} reaches "
                       f"{val[best]:.3f}.{why}")
    return best


def _ex2_too_large(too_large_lr, best, rates: list, val: dict, chance: float) -> None:
    """Numbers: too large is a rate above the best whose validation loss is far worse (twice the best's
    lowest, at or above chance, or diverged); the worst of the larger rates always qualifies."""
    larger = [lr for lr in rates if lr > best]
    worst_above = max(larger, key=val.get, default=None)
    too_large_ok = {lr for lr in larger if lr == worst_above or val[lr] >= max(2 * val[best], chance)}
    if not larger:
        require(too_large_lr is None, f"{best:g} is the largest rate you ran and the best: none is too large "
                                      f"here, set too_large_lr = None.")
    elif too_large_lr is None:
        require(False, f"too_large_lr is None, but {worst_above:g} lies above the best rate ({best:g}) and its "
                       f"lowest validation loss is {val[worst_above]:.3f} against {val[best]:.3f}.",
                hint="look at the validation loss of the rates above the best one.")
    elif too_large_lr < best:
        require(False, f"too_large_lr = {too_large_lr:g} is below the best rate ({best:g}): a rate that is too large "
                       f"lies above it ({', '.join(f'{lr:g}' for lr in larger)}).", hint="are the two answers swapped?")
    elif too_large_lr not in too_large_ok:
        require(False, f"too_large_lr = {too_large_lr:g}: its lowest validation loss ({val[too_large_lr]:.3f}) is "
                       f"close to the best rate's ({val[best]:.3f}); it is a neighbour of the best rate, not one that "
                       f"overshoots. At {worst_above:g} the validation loss reaches only {val[worst_above]:.3f}.",
                hint="too large shows as a validation loss far above the best run's (or one that diverges).")


def _ex2_too_small(too_small_lr, best, rates: list, final: dict, chance: float) -> None:
    """Numbers: too small is a rate below the best whose training loss ends at least half-way from the
    best rate's towards chance; the slowest of the smaller rates always qualifies."""
    smaller = [lr for lr in rates if lr < best]
    slowest_below = max(smaller, key=final.get, default=None)
    too_small_ok = {lr for lr in smaller if final[lr] > final[best]
                    and (lr == slowest_below or final[lr] >= (final[best] + chance) / 2)}
    if not smaller:
        require(too_small_lr is None, f"{best:g} is the smallest rate you ran and the best: none is too small "
                                      f"here, set too_small_lr = None.")
    elif too_small_lr is None:
        require(False, f"too_small_lr is None, but {slowest_below:g} lies below the best rate ({best:g}) and its "
                       f"training loss ends at {final[slowest_below]:.3f} against {final[best]:.3f}.",
                hint="look at the training loss of the rates below the best one.")
    elif too_small_lr > best:
        require(False, f"too_small_lr = {too_small_lr:g} is above the best rate ({best:g}): a rate that is too small "
                       f"lies below it ({', '.join(f'{lr:g}' for lr in smaller)}).", hint="are the two answers swapped?")
    elif too_small_lr not in too_small_ok:
        require(False, f"too_small_lr = {too_small_lr:g}: its training loss ends at {final[too_small_lr]:.3f}, close "
                       f"to the best rate's ({final[best]:.3f}; chance is {chance:.3f}): it learns fast enough, so "
                       f"'too small' is not what holds it back. At {slowest_below:g} it ends at "
                       f"{final[slowest_below]:.3f}.", hint="too small shows as a training loss that barely moves.")


def check_exercise_2(best_lr, too_large_lr, too_small_lr, histories: dict, figure, classes=2) -> None:
    """The chapter's exercise 2. `histories` maps each of the rates 0.0001, 0.001, 0.01, 0.1 to the
    `train.History` of its run (same model, optimizer and budget), `figure` is the figure that draws
    their training and validation loss curves. The best rate has the lowest validation loss; the
    too-large one is a rate above it whose validation loss is far worse (it overshoots, or diverges);
    the too-small one a rate below it whose training loss barely moves (it ends far above the best
    rate's, near chance, ln(number of classes)). `classes`: the class names, or their number."""
    histories = answer(histories, "ex2_histories")
    answers = {"best_lr": best_lr, "too_large_lr": too_large_lr, "too_small_lr": too_small_lr}
    for name, value in answers.items():
        if value is ...:
            answer(value, name)
    answer(best_lr, "best_lr")
    answer(figure, "ex2_figure")
    rates = _ex2_runs(histories)
    _ex2_figure(figure, histories, rates)
    best_lr, too_large_lr, too_small_lr = _ex2_picks(answers, rates, histories)
    val = {lr: _lowest_val_loss(h) for lr, h in histories.items()}
    final = {lr: _final_train_loss(h) for lr, h in histories.items()}
    last_val = {lr: (lambda v: v if v == v else float("inf"))(h.epochs[-1]["val_loss"]) for lr, h in histories.items()}
    acc = {lr: histories[lr].best_val_acc for lr in rates}
    chance = math.log(classes if isinstance(classes, int) else len(classes))
    best = _ex2_best(best_lr, rates, val, final, acc, last_val)
    _ex2_too_large(too_large_lr, best, rates, val, chance)
    _ex2_too_small(too_small_lr, best, rates, final, chance)
    lines_out = [f"  {'lr':>8}  final train loss  lowest val loss  best val acc"]
    for lr in rates:
        verdict = {best: "best", too_large_lr: "too large", too_small_lr: "too small"}.get(lr, "")
        lines_out.append(f"  {lr:8g}  {final[lr]:16.3f}  {val[lr]:15.3f}  {acc[lr]:12.3f}  {verdict}")
    passed(f"the four rates, both loss curves of each drawn. Too small ({too_small_lr}): the training loss barely "
           f"falls in the budget (chance is {chance:.3f}); too large ({too_large_lr}): the validation loss jumps "
           f"far above the best run's (the updates overshoot).\n" + "\n".join(lines_out))


def _scaled_walk(f, start, lrs, beta, rescale):
    """The scaled momentum form with v multiplied by rescale(new_lr, old_lr) whenever the rate changes."""
    theta = torch.as_tensor(start, dtype=torch.float64)
    v, points, previous = torch.zeros_like(theta), [theta], lrs[0]
    for lr in lrs:
        v = v * rescale(lr, previous)
        theta, v = optimizers.scaled_momentum_step(theta, v, optimizers.gradient(f, theta), lr, beta)
        points.append(theta)
        previous = lr
    return torch.stack(points)


_scaled_walk_05 = _scaled_walk   # the old name, kept for one release (tests/test_exercises_ch05.py, test_optimizers.py)


def check_05_rescaled_momentum(my_descend) -> None:
    """`my_descend(f, start, lrs, beta)`: the points (len(lrs) + 1, 2) of the scaled momentum form
    (v ← βv + η∇L, θ ← θ - v) with the velocity rescaled when the rate changes, so that it follows
    torch.optim.SGD(momentum=beta) exactly. Tried on a step decay and on a warm-up."""
    answer(my_descend, "my_descend")
    schedules = {
        "the valley, rate divided by 10 after 30 steps": (optimizers.VALLEY, [0.15] * 30 + [0.015] * 30),
        "Rosenbrock, a 20-step warm-up then a decay": (optimizers.ROSENBROCK, [1e-3 * (i + 1) / 20 for i in range(20)]
                                                      + [1e-3] * 60 + [1e-4] * 20),
    }
    beta = 0.9
    for case, (surface, lrs) in schedules.items():
        got = call(my_descend, "my_descend", surface, surface.start, list(lrs), beta,
                   hint="follow form B: v <- beta v + lr grad, theta <- theta - v, one rate per step.")
        try:
            got = torch.as_tensor(got, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            got = torch.stack([torch.as_tensor(p, dtype=torch.float64) for p in got])
        want = optimizers.descend_torch(surface, surface.start, lrs, beta=beta)
        require(tuple(got.shape) == tuple(want.shape),
                 f"On {case}: you return shape {tuple(got.shape)}; expected {tuple(want.shape)}: the start point "
                 f"and the point after each of the {len(lrs)} steps.")
        if torch.allclose(got, want, rtol=1e-9, atol=1e-12):
            continue
        variants = [
            (lambda new, old: 1.0, "the velocity was not rescaled: after a change it still holds steps taken at "
                                   "the old rate. Multiply v by new_lr / old_lr whenever the rate changes."),
            (lambda new, old: old / new, "the velocity was rescaled the wrong way round: it holds η_old x "
                                         "(PyTorch's velocity), so multiply it by new_lr / old_lr, not "
                                         "old_lr / new_lr."),
        ]
        walks = [(_scaled_walk(surface, surface.start, lrs, beta, rescale), feedback) for rescale, feedback in variants]
        feedback = known_mistake(got, walks, same=lambda a, b: torch.allclose(a, b, rtol=1e-9, atol=1e-12))
        require(not feedback, f"On {case}: {feedback}")
        first = int((got - want).abs().amax(1).gt(1e-9 * (1 + want.abs().amax(1))).nonzero()[0])
        changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
        hint = (" That is before the rate first changes: check the update itself, v ← βv + η∇L then θ ← θ - v "
                "(optimizers.scaled_momentum_step), with the gradient taken at the current point."
                if not changes or first <= changes[0] else
                f" The rate changes at steps {changes[:3]}{'...' if len(changes) > 3 else ''}: rescale the velocity "
                f"before the update that uses the new rate.")
        require(False, f"On {case}: your walk leaves torch.optim.SGD's at point {first} "
                            f"({got[first].tolist()} instead of {want[first].tolist()}).{hint}")
    passed("with the velocity rescaled by new_lr / old_lr at every change, the scaled form follows "
           "torch.optim.SGD(momentum=0.9) step for step, through a step decay and a warm-up.")
