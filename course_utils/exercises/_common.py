"""What every chapter's checks share: the error, the "not done yet" test, the pass message."""
from __future__ import annotations


class ExerciseError(AssertionError):
    """The answer is not right yet; the message says what to look at."""


def _require(condition: bool, feedback: str) -> None:
    if not condition:
        raise ExerciseError(feedback)


def _not_done(value, name: str) -> None:
    if value is ... or value is None:
        raise ExerciseError(f"Not done yet: `{name}` is still empty. Fill in the cell above and run it.")


def _number(value, name: str, meaning: str = "") -> float:
    """The answer `value` as a float, or "Not done yet" / "should be one number" feedback."""
    _not_done(value, name)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ExerciseError(f"`{name}` should be one number{f' ({meaning})' if meaning else ''}, "
                            f"not a {type(value).__name__}.") from None


def passed(message: str) -> None:
    print(f"Correct: {message}")
