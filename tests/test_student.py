"""Student copies (`make student`): solutions out, everything else kept, valid notebooks."""
import importlib.util
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("student", ROOT / "tools" / "student.py")
student = importlib.util.module_from_spec(spec)
spec.loader.exec_module(student)
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_strip_keeps_the_rest_and_the_indentation():
    source = ("answer = ...\n"
              "if True:\n"
              "    ### BEGIN SOLUTION\n"
              "    answer = secret_formula(42)\n"
              "    ### END SOLUTION\n"
              "print(answer)")
    out = student.strip_solutions(source)
    assert "secret_formula" not in out and "SOLUTION" not in out
    assert out.startswith("answer = ...\nif True:\n    # YOUR CODE HERE\n    raise NotImplementedError(")
    assert out.endswith("\nprint(answer)")
    compile(out, "<cell>", "exec")  # still valid Python


def test_unbalanced_markers_are_an_error():
    with pytest.raises(ValueError, match="unbalanced"):
        student.strip_solutions("### BEGIN SOLUTION\nx = 1\n")


def test_there_are_chapters_with_exercises():
    assert NOTEBOOKS, "no chapter notebooks found"
    assert any(student.marker_lines(c.source, student.BEGIN) for nb in NOTEBOOKS for c in nbformat.read(nb, 4).cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_copy_has_no_solution(path):
    nb = nbformat.read(path, as_version=4)
    copy = student.student_copy(nb)
    nbformat.validate(copy)
    assert len(copy.cells) == len(nb.cells)
    for original, stripped in zip(nb.cells, copy.cells):
        assert student.marker_lines(stripped.source, student.BEGIN) == 0
        assert student.marker_lines(stripped.source, student.END) == 0
        if original.cell_type == "code":
            assert stripped.outputs == [] and stripped.execution_count is None
            compile(stripped.source.replace("%", "#"), path.name, "exec")
        inside, solution_lines = False, []
        for line in original.source.splitlines():
            if line.lstrip().startswith(student.BEGIN):
                inside = True
            elif line.lstrip().startswith(student.END):
                inside = False
            elif inside and line.strip() and not line.strip().startswith("#"):
                solution_lines.append(line)
        outside = [line for line in stripped.source.splitlines()]
        leaked = [line for line in solution_lines if line in outside
                  and line not in _outside_solution_lines(original.source)]
        assert not leaked, f"solution text left in the student copy of {path.name}: {leaked}"
        if solution_lines:
            assert "raise NotImplementedError" in stripped.source or "YOUR ANSWER HERE" in stripped.source


def _outside_solution_lines(source):
    inside, out = False, []
    for line in source.splitlines():
        if line.lstrip().startswith(student.BEGIN):
            inside = True
        elif line.lstrip().startswith(student.END):
            inside = False
        elif not inside:
            out.append(line)
    return out
