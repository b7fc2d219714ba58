"""What every exercise check shares: reading an answer, calling a student's function, feedback.

A check is a short list of conditions. Each one that fails raises `ExerciseError` (an
AssertionError, so nbgrader's autograder counts the check cell as failed) with one message
in the same shape everywhere:

    Not done yet: `name` is still empty. ...           the placeholder was not replaced
    Not yet: <what is wrong, with the numbers>. Hint: <what to look at>
    Correct: <what was verified, with the numbers>      printed when every condition holds

A check reads its answers (`answer`, `number`, `call`), states its conditions (`require`), names the
usual wrong answers once (`known_mistake`: a catalogue of (wrong answer, feedback) pairs) and compares
accuracies in images (`same_accuracy`). A long check is split into named sub-checks: set-up (what the
student ran), numbers (what it gives), verdict (`passed`).

    from .harness import call, number, passed, require

    def check_01_example(my_fn, my_acc):
        acc = number(my_acc, "my_acc", "a fraction between 0 and 1")
        result = call(my_fn, "my_fn", 3)
        require(result == 9, f"my_fn(3) returned {result!r}", hint="square the input")
        passed(f"my_fn(3) = 9 and my_acc = {acc:.3f}")
"""
from __future__ import annotations


class ExerciseError(AssertionError):
    """The answer is not right yet; the message says what to look at."""


class NotDone(ExerciseError):
    """The exercise still holds its placeholder."""


def not_done(name: str, how: str = "is still empty") -> NotDone:
    return NotDone(f"Not done yet: `{name}` {how}. Fill in the cell above (replace the placeholder line "
                   f"with your code), run it, then run this check again.")


def answer(value, name: str):
    """`value` itself, or "not done yet" if it is still the placeholder (`...` or None)."""
    if value is ... or value is None:
        raise not_done(name)
    return value


def number(value, name: str, meaning: str = "") -> float:
    """The answer `value` as a float, or "not done yet" / "should be one number" feedback."""
    answer(value, name)
    if isinstance(value, bool):
        raise ExerciseError(f"Not yet: `{name}` should be one number{f' ({meaning})' if meaning else ''}, "
                            f"not True/False.")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ExerciseError(f"Not yet: `{name}` should be one number{f' ({meaning})' if meaning else ''}, "
                            f"not a {type(value).__name__}.") from None


def call(function, name: str, *args, hint: str = "", **kwargs):
    """Call a student's function: its result, "not done yet" if it still raises the placeholder's
    NotImplementedError, or its own error with `hint`, named so the student knows which call failed."""
    answer(function, name)
    if not callable(function):
        raise ExerciseError(f"Not yet: `{name}` should be a function (def {name}(...): ...), "
                            f"not a {type(function).__name__}.")
    try:
        return function(*args, **kwargs)
    except NotImplementedError:
        raise not_done(name, "still raises NotImplementedError") from None
    except ExerciseError:
        raise
    except Exception as err:
        shown = ", ".join([*(_short(a) for a in args), *(f"{k}={_short(v)}" for k, v in kwargs.items())])
        raise ExerciseError(f"Not yet: `{name}({shown})` raised {type(err).__name__}: {err}."
                            + (f" Hint: {hint}" if hint else "")) from err


def require(condition: bool, feedback: str, hint: str = "") -> None:
    """Fail with `feedback` (what is wrong, with numbers) and an optional `hint` unless `condition`."""
    if not condition:
        text = feedback if feedback.startswith("Not yet") else f"Not yet: {feedback}"
        raise ExerciseError(text + (f" Hint: {hint}" if hint else ""))


def known_mistake(got, mistakes, same=None, tolerance: float = 1e-6) -> str:
    """The feedback of the first known wrong answer that `got` matches, else ''.

    `mistakes`: (wrong answer, feedback) pairs, most telling first; `same(got, wrong)` says whether
    two answers match (default: numbers within `tolerance` of each other)."""
    if same is None:
        same = lambda a, b: abs(a - b) <= tolerance  # noqa: E731
    return next((feedback for wrong, feedback in mistakes if same(got, wrong)), "")


def same_accuracy(a: float, b: float, n: int, images: float = 1.5) -> bool:
    """Whether two accuracies over the same `n` images differ by at most `images` images: one model
    measured twice (a reported number against a recomputed one) may flip one image (batching, autocast
    rounding); the half image absorbs rounding of the fractions."""
    return abs(a - b) <= images / n


def passed(message: str) -> None:
    """Every condition held: say what was verified."""
    print(f"Correct: {message}")


def _short(value, width: int = 40) -> str:
    text = type(value).__name__ if hasattr(value, "parameters") or hasattr(value, "shape") else repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."
