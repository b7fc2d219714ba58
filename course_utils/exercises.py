"""Checks students run on their exercise answers: specific feedback, not just pass/fail.

Each check prints what is right, or raises `ExerciseError` with what is wrong and a hint.
An answer left as the placeholder `...` (or a solution cell that still raises
NotImplementedError) is reported as "not done yet".
"""
from __future__ import annotations


class ExerciseError(AssertionError):
    """The answer is not right yet; the message says what to look at."""


def _require(condition: bool, feedback: str) -> None:
    if not condition:
        raise ExerciseError(feedback)


def _not_done(value, name: str) -> None:
    if value is ... or value is None:
        raise ExerciseError(f"Not done yet: `{name}` is still empty. Fill in the cell above and run it.")


def passed(message: str) -> None:
    print(f"Correct: {message}")


# --- 01 model zoo -----------------------------------------------------------------------------


# --- 02 preprocessing -------------------------------------------------------------------------
