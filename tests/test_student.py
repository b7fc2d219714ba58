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
            no_magics = "\n".join("#" + line if line.lstrip().startswith(("%", "!")) else line
                                  for line in stripped.source.splitlines())  # IPython's %magic / !shell lines
            compile(no_magics, path.name, "exec")
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


# --- the student copies' exercise cells, run: placeholders must read "not done yet" -----------

class _Unrelated(Exception):
    """A cell touched notebook state that this test does not build (data, models, tables)."""


class _State:
    """Stands for a variable of the notebook's earlier cells; any use of it raises _Unrelated."""

    def __init__(self, name):
        object.__setattr__(self, "_name", name)

    def _touch(self, *args, **kwargs):
        raise _Unrelated(object.__getattribute__(self, "_name"))

    def __getattr__(self, key):  # an argument like `table.loc` or `acc["noise"]` is not a use yet
        return _State(f"{object.__getattribute__(self, '_name')}.{key}")

    __getitem__ = __getattr__


for _dunder in ("setattr", "call", "setitem", "iter", "len", "bool", "float", "int",
                "index", "format", "add", "radd", "sub", "rsub", "mul", "rmul", "truediv", "rtruediv",
                "lt", "le", "gt", "ge", "neg", "contains"):
    setattr(_State, f"__{_dunder}__", _State._touch)


class _Names(dict):
    """A cell's namespace: builtins and earlier definitions are real, anything else is a _State."""

    def __init__(self, real):
        super().__init__()
        self.real = real

    def __missing__(self, name):
        if name.startswith("__"):  # tools (pytest's traceback filter) look up such names: not state
            raise KeyError(name)
        if name in self.real:
            return self.real[name]
        import builtins
        return getattr(builtins, name) if hasattr(builtins, name) else _State(name)


def _exercise_cells(nb):
    start = next((i for i, c in enumerate(nb.cells) if c.cell_type == "markdown"
                  and any(line.startswith("## Exercises") for line in c.source.splitlines())), None)
    return [] if start is None else [c for c in nb.cells[start:] if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_student_checks_say_not_done_yet(path):
    """Each check cell of a student copy, run after its placeholder, reports "Not done yet" (an
    ExerciseError) instead of crashing elsewhere; no other exercise cell trips on a placeholder."""
    from course_utils.exercises import ExerciseError
    nb = nbformat.read(path, as_version=4)
    cells = _exercise_cells(student.student_copy(nb))
    checks = [c for c in cells if "exercises.check_" in c.source]
    assert checks, f"{path.name} has no check cells after its '## Exercises' heading"
    imports = "\n".join(line for cell in nb.cells if cell.cell_type == "code"   # the set-up cell's, and any later
                        for line in cell.source.splitlines() if line.startswith(("import ", "from ")))
    real = {"__name__": "__main__", "display": print}
    exec(compile(imports, f"{path.name} imports", "exec"), real)
    for cell in cells:
        names = _Names(real)
        code = compile(cell.source, path.name, "exec")
        try:
            exec(code, real, names)
        except NotImplementedError as err:  # the placeholder itself, in its cell or where its function is used
            assert f'"{err}"' in student.PLACEHOLDER and cell not in checks, f"{cell.source}\n-> {err!r}"
        except ExerciseError as err:
            assert cell in checks and "Not done yet" in str(err), f"{cell.source}\n-> {err}"
            checks.remove(cell)
        except _Unrelated:
            assert cell not in checks, f"this check used {path.name}'s state before seeing the placeholder:\n{cell.source}"
        else:
            assert cell not in checks, f"this check passed a placeholder answer:\n{cell.source}"
        real.update(names)
    assert not checks
