"""The exercise harness: placeholders read as "not done yet", errors name the call, feedback has one shape."""
import pytest

from course_utils.exercises import harness
from course_utils.exercises.harness import ExerciseError, NotDone


@pytest.mark.parametrize("placeholder", [..., None])
def test_answer_placeholder_is_not_done(placeholder):
    with pytest.raises(NotDone, match=r"Not done yet: `x` is still empty"):
        harness.answer(placeholder, "x")


def test_answer_passes_values_through():
    assert harness.answer(0, "x") == 0 and harness.answer([], "x") == []


@pytest.mark.parametrize("value, message", [("abc", "not a str"), ([1, 2], "not a list"), (True, "not True/False")])
def test_number_rejects_non_numbers(value, message):
    with pytest.raises(ExerciseError, match=message):
        harness.number(value, "acc", "a fraction")


def test_number_accepts_numbers_and_numeric_strings():
    assert harness.number("0.5", "acc") == 0.5 and harness.number(3, "n") == 3.0


def test_call_placeholder_function_is_not_done():
    def placeholder(x):
        raise NotImplementedError("Exercise: replace this line")
    with pytest.raises(NotDone, match="still raises NotImplementedError"):
        harness.call(placeholder, "my_fn", 1)


def test_call_names_the_failing_call_and_gives_the_hint():
    def broken(x, scale=1):
        return x / 0
    with pytest.raises(ExerciseError, match=r"`my_fn\(3, scale=2\)` raised ZeroDivisionError.*Hint: divide later"):
        harness.call(broken, "my_fn", 3, scale=2, hint="divide later")


def test_call_rejects_a_non_function():
    with pytest.raises(ExerciseError, match="should be a function"):
        harness.call(42, "my_fn")


def test_call_lets_a_check_error_through():
    def raises_check(x):
        raise ExerciseError("Not yet: inner")
    with pytest.raises(ExerciseError, match="^Not yet: inner$"):
        harness.call(raises_check, "my_fn", 1)


def test_require_formats_feedback_and_hint():
    harness.require(True, "never shown")
    with pytest.raises(ExerciseError, match=r"^Not yet: 3 is odd\. Hint: use 4$"):
        harness.require(False, "3 is odd.", hint="use 4")


def test_passed_prints_correct(capsys):
    harness.passed("all good")
    assert capsys.readouterr().out == "Correct: all good\n"


def test_errors_are_assertion_errors_for_nbgrader():
    assert issubclass(ExerciseError, AssertionError) and issubclass(NotDone, ExerciseError)


def test_known_mistake_gives_the_first_matching_feedback():
    mistakes = [(0.5, "half"), (2.0, "double"), (0.5000001, "also half")]
    assert harness.known_mistake(0.5, mistakes) == "half"
    assert harness.known_mistake(2.0 + 1e-7, mistakes) == "double"
    assert harness.known_mistake(1.0, mistakes) == ""


def test_known_mistake_uses_the_given_comparison():
    relative = lambda got, wrong: abs(got - wrong) <= 1e-3 * abs(wrong)  # noqa: E731
    assert harness.known_mistake(1000.5, [(1000.0, "close enough")], same=relative) == "close enough"
    assert harness.known_mistake(1000.5, [(1000.0, "close enough")]) == ""
    assert harness.known_mistake(3, [(3.5, "near")], tolerance=0.5) == "near"


@pytest.mark.parametrize("a, b, n, images, same", [
    (0.80, 0.81, 100, 1.5, True),     # one image apart
    (0.80, 0.82, 100, 1.5, False),    # two images apart
    (0.80, 0.82, 100, 2.5, True),
    (0.5, 0.5 + 1.5 / 40, 40, 1.5, True),
])
def test_same_accuracy_counts_images(a, b, n, images, same):
    assert harness.same_accuracy(a, b, n, images) is same and harness.same_accuracy(b, a, n, images) is same
