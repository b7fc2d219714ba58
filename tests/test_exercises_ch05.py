"""Chapter 05's exercise checks: right answers pass, a catalogue of wrong ones is rejected with specific feedback."""
import math

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from course_utils import optimizers, plots, train  # noqa: E402
from course_utils.exercises import ch05  # noqa: E402
from course_utils.exercises.harness import ExerciseError, NotDone  # noqa: E402


def rejects(match, check, *args):
    with pytest.raises(ExerciseError, match=match) as info:
        check(*args)
    return str(info.value)


# --- practice 05.a: the largest stable rate on the valley ------------------------------------------

def test_stable_lr_right_and_wrong(capsys):
    ch05.check_05_stable_lr(0.2, optimizers.VALLEY)
    assert "Correct: 2 / λ_max" in capsys.readouterr().out
    with pytest.raises(NotDone, match="Not done yet: `max_stable_lr`"):
        ch05.check_05_stable_lr(..., optimizers.VALLEY)
    assert rejects("twice", ch05.check_05_stable_lr, 0.1, optimizers.VALLEY).startswith("Not yet: max_stable_lr = 0.1")
    rejects("smallest curvature", ch05.check_05_stable_lr, 20, optimizers.VALLEY)
    rejects("smallest curvature", ch05.check_05_stable_lr, 10, optimizers.VALLEY)
    rejects("best constant rate", ch05.check_05_stable_lr, 2 / 10.1, optimizers.VALLEY)
    rejects("for which η does that shrink", ch05.check_05_stable_lr, 0.5, optimizers.VALLEY)
    rejects("should be one number", ch05.check_05_stable_lr, [0.2], optimizers.VALLEY)


# --- exercise 2 (the chapter's): learning-rate sensitivity -----------------------------------------

def history(lr, train_losses, val_losses, val_accs):
    h = train.History()
    for i, (t, v, a) in enumerate(zip(train_losses, val_losses, val_accs), start=1):
        h.epochs.append(dict(epoch=i, train_loss=t, train_acc=0.5, val_loss=v, val_acc=a, lr=lr, seconds=1.0))
    h.best_val_acc = max(val_accs)
    h.best_epoch = val_accs.index(h.best_val_acc) + 1
    return h


def sweep():
    """Like the notebook's fast-mode sweep: 1e-1 overshoots, 1e-4 barely moves, 1e-3 is slow too."""
    return {1e-4: history(1e-4, [0.706, 0.687], [0.745, 0.719], [0.50, 0.54]),
            1e-3: history(1e-3, [0.697, 0.621], [0.663, 0.504], [0.58, 0.81]),
            1e-2: history(1e-2, [0.628, 0.325], [0.286, 0.338], [0.90, 0.88]),
            1e-1: history(1e-1, [0.549, 0.092], [1.068, 1.305], [0.84, 0.92])}


def figure(histories):
    fig = plots.learning_curves({f"lr {lr:g}": h for lr, h in histories.items()})
    plt.close(fig)
    return fig


def test_exercise_2_right_answers(capsys):
    runs = sweep()
    ch05.check_exercise_2(1e-2, 1e-1, 1e-4, runs, figure(runs))
    out = capsys.readouterr().out
    assert out.startswith("Correct: the four rates") and "too large" in out and "too small" in out
    ch05.check_exercise_2(1e-2, 0.1, 1e-3, runs, figure(runs))   # 1e-3 ends half-way to chance: too small as well
    # the best rate at the top of the range: nothing is too large
    top = sweep()
    top[1e-1] = history(1e-1, [0.5, 0.2], [0.25, 0.2], [0.9, 0.93])
    ch05.check_exercise_2(1e-1, None, 1e-4, top, figure(top))
    # a diverged run (NaN losses) is the too-large one
    nan = sweep()
    nan[1e-1] = history(1e-1, [float("nan")] * 2, [float("nan")] * 2, [0.5, 0.5])
    ch05.check_exercise_2(1e-2, 1e-1, 1e-4, nan, figure(nan))


def test_exercise_2_placeholders_say_not_done():
    runs = sweep()
    for args in ((..., ..., ..., ..., ...), (..., ..., ..., runs, figure(runs)), (1e-2, 1e-1, 1e-4, runs, ...)):
        with pytest.raises(NotDone, match="Not done yet"):
            ch05.check_exercise_2(*args)


def test_exercise_2_wrong_answers():
    runs, fig = sweep(), figure(sweep())
    # any rate above the best is not "too large": 1e-2 is a neighbour of a best 1e-3
    close = sweep()
    close[1e-3] = history(1e-3, [0.69, 0.40], [0.40, 0.280], [0.85, 0.88])
    text = rejects("neighbour of the best rate", ch05.check_exercise_2, 1e-3, 1e-2, 1e-4, close, figure(close))
    assert "At 0.1 the validation loss reaches only 1.068" in text
    # swapped answers
    rejects(r"too_large_lr = 0.0001 is below the best rate \(0.01\).*swapped", ch05.check_exercise_2,
            1e-2, 1e-4, 1e-1, runs, fig)
    rejects(r"too_small_lr = 0.1 is above the best rate", ch05.check_exercise_2, 1e-2, 1e-1, 1e-1, runs, fig)
    # best by accuracy, best by training loss, a rate that was not run
    rejects("highest validation accuracy", ch05.check_exercise_2, 1e-1, None, 1e-2, runs, fig)
    lowest_train = sweep()
    lowest_train[1e-1].epochs[-1]["val_acc"] = 0.7
    lowest_train[1e-1].best_val_acc = 0.84
    rejects("lowest training loss", ch05.check_exercise_2, 1e-1, None, 1e-2, lowest_train, figure(lowest_train))
    rejects("not one of the rates you ran", ch05.check_exercise_2, 0.05, 1e-1, 1e-4, runs, fig)
    rejects("Not done yet: `best_lr`", ch05.check_exercise_2, None, 1e-1, 1e-4, runs, fig)
    # None where the sweep has a rate on that side
    rejects("too_large_lr is None, but 0.1", ch05.check_exercise_2, 1e-2, None, 1e-4, runs, fig)
    rejects("too_small_lr is None, but 0.0001", ch05.check_exercise_2, 1e-2, 1e-1, None, runs, fig)
    top = sweep()
    top[1e-1] = history(1e-1, [0.5, 0.2], [0.25, 0.2], [0.9, 0.93])
    rejects("none is too large", ch05.check_exercise_2, 1e-1, 1e-2, 1e-4, top, figure(top))
    bottom = {lr: history(lr, [0.3, 0.2 + lr], [0.2 + lr, 0.25 + lr], [0.9, 0.9]) for lr in ch05.CHAPTER_LRS_05}
    rejects("none is too small", ch05.check_exercise_2, 1e-4, 1e-1, 1e-3, bottom, figure(bottom))
    # a too-small rate that learns as fast as the best one
    fast = sweep()
    fast[1e-3] = history(1e-3, [0.6, 0.33], [0.40, 0.35], [0.85, 0.86])
    rejects("learns fast enough", ch05.check_exercise_2, 1e-2, 1e-1, 1e-3, fast, figure(fast))


def test_exercise_2_checks_the_set_up():
    runs = sweep()
    rejects("exactly 0.0001, 0.001, 0.01, 0.1", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4,
            {lr: runs[lr] for lr in (1e-3, 1e-2, 1e-1)}, figure(runs))
    shifted = dict(runs)
    shifted[3e-2] = shifted.pop(1e-1)
    rejects("exactly", ch05.check_exercise_2, 1e-2, 3e-2, 1e-4, shifted, figure(runs))
    late_binding = {lr: history(1e-1, h.column("train_loss"), h.column("val_loss"), h.column("val_acc"))
                    for lr, h in runs.items()}   # every optimizer built with the loop's last rate
    rejects("was trained at learning rate 0.1, not 0.0001.*loop variable", ch05.check_exercise_2,
            1e-2, 1e-1, 1e-4, late_binding, figure(late_binding))
    shorter = sweep()
    shorter[1e-4].epochs.pop()
    rejects("different numbers of epochs", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4, shorter, figure(shorter))
    shared = sweep()
    shared[1e-3] = shared[1e-4] = history(1e-4, [0.7, 0.69], [0.72, 0.71], [0.5, 0.5])
    shared[1e-3].epochs[0]["lr"] = 1e-4
    rejects("0.001", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4, shared, figure(shared))
    rejects("should be the History", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4, {**runs, 1e-3: [0.5]}, figure(runs))
    rejects("should be a dict", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4, list(runs.values()), figure(runs))


def test_exercise_2_checks_the_figure():
    runs = sweep()
    rejects("matplotlib figure", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4, runs, "a figure")
    only_val, ax = plt.subplots()
    for h in runs.values():
        ax.plot(h.column("epoch"), h.column("val_loss"))
    plt.close(only_val)
    rejects("does not draw the training loss curve of the run at 0.0001", ch05.check_exercise_2,
            1e-2, 1e-1, 1e-4, runs, only_val)
    three = figure({lr: h for lr, h in runs.items() if lr != 1e-1})
    rejects("validation loss curve of the run at 0.1|training loss curve of the run at 0.1", ch05.check_exercise_2,
            1e-2, 1e-1, 1e-4, runs, three)
    accuracy_only, ax = plt.subplots()
    for h in runs.values():
        ax.plot(h.column("epoch"), h.column("val_acc"))
    plt.close(accuracy_only)
    rejects("does not draw", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4, runs, accuracy_only)
    log_axis = figure(runs)
    log_axis.axes[0].set_yscale("log")   # the notebook's log scale changes no data
    ch05.check_exercise_2(1e-2, 1e-1, 1e-4, runs, log_axis)


def test_exercise_2_chance_uses_the_number_of_classes():
    runs = sweep()
    assert math.log(2) < 0.706
    ch05.check_exercise_2(1e-2, 1e-1, 1e-4, runs, figure(runs), 10)
    ch05.check_exercise_2(1e-2, 1e-1, 1e-4, runs, figure(runs), ["ants", "bees"])


# --- practice 05.b: form B through a learning-rate change ------------------------------------------

def test_rescaled_momentum_right_and_wrong(capsys):
    def right(f, start, lrs, beta):
        return ch05._scaled_walk_05(f, start, lrs, beta, lambda new, old: new / old)

    ch05.check_05_rescaled_momentum(right)
    assert "Correct: with the velocity rescaled" in capsys.readouterr().out
    ch05.check_05_rescaled_momentum(lambda f, s, lrs, b: [p.tolist() for p in right(f, s, lrs, b)])   # a list
    with pytest.raises(NotDone, match="Not done yet"):
        ch05.check_05_rescaled_momentum(...)

    def placeholder(f, start, lrs, beta):
        raise NotImplementedError

    with pytest.raises(NotDone, match="still raises NotImplementedError"):
        ch05.check_05_rescaled_momentum(placeholder)
    rejects("not rescaled", ch05.check_05_rescaled_momentum,
            lambda f, start, lrs, beta: optimizers.descend(f, start, lrs, beta=beta, update=optimizers.scaled_momentum_step))
    rejects("wrong way round", ch05.check_05_rescaled_momentum,
            lambda f, start, lrs, beta: ch05._scaled_walk_05(f, start, lrs, beta, lambda new, old: old / new))
    rejects("shape", ch05.check_05_rescaled_momentum, lambda f, start, lrs, beta: right(f, start, lrs, beta)[1:])
    rejects("before the rate first changes", ch05.check_05_rescaled_momentum,
            lambda f, start, lrs, beta: optimizers.descend(f, start, lrs, beta=beta, update=optimizers.momentum_step) * 1.01)

    def late(f, start, lrs, beta):   # rescales one step late: right until the first change
        points = right(f, start, lrs, beta)
        changes = [i for i in range(1, len(lrs)) if lrs[i] != lrs[i - 1]]
        points = points.clone()
        points[changes[0] + 2:] += 1e-3
        return points

    rejects("rescale the velocity before the update", ch05.check_05_rescaled_momentum, late)
    rejects(r"`my_descend\(.*raised ZeroDivisionError", ch05.check_05_rescaled_momentum, lambda f, s, lrs, b: 1 / 0)
    rejects("should be a function", ch05.check_05_rescaled_momentum, 3)
    assert torch.is_tensor(right(optimizers.VALLEY, optimizers.VALLEY.start, [0.1, 0.1], 0.9))


# --- exercise 2: judged on what it asks (three wrong answers, one right answer written differently) ------

def test_exercise_2_wrong_answers_a_student_writes():
    runs = sweep()
    # the figure's labels as keys
    rejects(r"keyed by 'lr 0.0001'.*rate as a number", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4,
            {f"lr {lr:g}": h for lr, h in runs.items()}, figure(runs))
    # run() returns (history, seconds)
    rejects(r"is a tuple: run\(\) returns \(history, seconds\)", ch05.check_exercise_2, 1e-2, 1e-1, 1e-4,
            {lr: (h, 1.0) for lr, h in runs.items()}, figure(runs))
    # the lowest validation loss itself instead of its rate
    rejects("is a loss read from the histories, not a rate", ch05.check_exercise_2, 0.286, 1e-1, 1e-4, runs,
            figure(runs))


def test_exercise_2_right_answer_written_differently(capsys):
    import numpy as np
    runs = sweep()
    runs[1e-3] = history(1e-3, [0.69, 0.45], [0.30, 0.29], [0.85, 0.86])   # lowest at the end: 1e-3; over the run: 1e-2
    fig, ax = plt.subplots()   # plain matplotlib: points for the training loss, lines for the validation loss
    for lr, h in runs.items():
        ax.scatter(h.column("epoch"), h.column("train_loss"), label=f"train {lr}")
        ax.semilogy(h.column("epoch"), h.column("val_loss"), label=f"val {lr}")
    plt.close(fig)
    rates = {np.float32(lr): h for lr, h in runs.items()}   # NumPy numbers as keys and answers
    ch05.check_exercise_2(np.float32(1e-3), np.float32(1e-1), np.float32(1e-4), rates, fig)
    assert capsys.readouterr().out.startswith("Correct: the four rates")
