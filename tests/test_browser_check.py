"""The browser test's judgement of a notebook's cells (tools/browser_check.py), without a browser."""
import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tools" / "browser_check.py")
bc = importlib.util.module_from_spec(spec)
sys.modules["browser_check"] = bc  # its dataclasses look their module up
spec.loader.exec_module(bc)

PLACEHOLDER = 'raise NotImplementedError("Exercise: replace this line with your solution, then run the check below.")'


def code(source, count=1, outputs=()):
    return {"cell_type": "code", "source": source, "execution_count": count, "outputs": list(outputs)}


def error(ename, evalue):
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": []}


FIGURE = {"output_type": "display_data", "data": {"image/png": "iVBOR..."}}
NOT_DONE = error("NotDone", "Not done yet: `my_fn` still raises NotImplementedError. Fill in the cell above ...")


def test_a_clean_run_has_no_problem():
    cells = [code("x = 1"), {"cell_type": "markdown", "source": "text"}, code("plt.show()", outputs=[FIGURE])]
    assert bc.cell_problems(cells, student=False) == []


def test_placeholder_errors_are_expected_only_in_a_student_copy():
    cells = [code(f"x = 1\n{PLACEHOLDER}", outputs=[error("NotImplementedError", PLACEHOLDER[27:-2])]),
             code("exercises.check_01_x(x)", outputs=[NOT_DONE])]
    assert bc.is_student_copy(cells)
    assert bc.cell_problems(cells, student=True) == []
    problems = bc.cell_problems(cells, student=False)  # the instructor version: both are errors
    assert [i for i, _ in problems] == [0, 1]


def test_other_errors_and_other_messages_fail_even_in_a_student_copy():
    cells = [code("import nothing", outputs=[error("ModuleNotFoundError", "No module named 'nothing'")]),
             code("raise NotImplementedError('something else')",
                  outputs=[error("NotImplementedError", "something else")])]
    assert [i for i, _ in bc.cell_problems(cells, student=True)] == [0, 1]


def test_a_check_that_passes_on_a_placeholder_is_a_failure():
    cells = [code(PLACEHOLDER, outputs=[error("NotImplementedError", PLACEHOLDER[27:-2])]),
             code("exercises.check_01_x(x)", outputs=[{"output_type": "stream", "name": "stdout",
                                                      "text": "Correct"}])]
    assert bc.cell_problems(cells, student=True) == [(1, 'an exercise check on the placeholder did not say "Not done yet"')]


def test_cells_left_unrun_below_an_error_make_one_entry():
    cells = [code("1/0", outputs=[error("ZeroDivisionError", "division by zero")]),
             code("a = 1", count=None), code("b = 2", count=None)]
    problems = bc.cell_problems(cells, student=False)
    assert problems[0][0] == 0 and "ZeroDivisionError" in problems[0][1]
    assert problems[1][0] == 1 and "1 more cell(s) below did not run" in problems[1][1]
    assert len(problems) == 2


def test_an_unrun_cell_and_a_missing_figure_are_named():
    cells = [code("a = 1", count=None), code("fig = draw()\nplt.show()"), code("# plt.show() in a comment")]
    assert bc.cell_problems(cells, student=False) == [(0, "did not run (no execution count)"),
                                                      (1, "calls plt.show() but shows no figure")]


def test_benign_console_messages_need_a_listed_reason():
    assert bc.benign_reason("Error: something nobody has looked at") is None
    for pattern, reason in bc.BENIGN:
        assert reason.strip(), pattern


def test_the_served_folder_is_read_from_the_server_log():
    log = "[I 2026-11-29 19:19:06.068 ServerApp] Serving notebooks from local directory: /work/main/student\n"
    assert bc.served_root(log) == Path("/work/main/student")
    assert bc.served_root("nothing here") is None
    assert bc.first_line("\n\n  # Parameters: edit here\nx = 1") == "# Parameters: edit here"
