"""`make lab`: student copies that are created once and never overwritten, solutions one step away."""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


student, lab = _load("student"), _load("lab")


def _chapter(text="Try it."):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(f"# 01 Example\n{text}"),
                nbformat.v4.new_code_cell("# Parameters\nx = 1"),
                nbformat.v4.new_markdown_cell("## Exercises"),
                nbformat.v4.new_code_cell("answer = ...\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"),
                nbformat.v4.new_code_cell("exercises.check_01_answer(answer)")]
    nb.cells[4].metadata["nbgrader"] = {"grade": True, "locked": True, "solution": False,
                                        "points": 1, "grade_id": "check-1", "schema_version": 3}
    return nb


def test_copies_are_made_once_then_kept(tmp_path, capsys):
    src, dst = tmp_path / "notebooks", tmp_path / "student"
    src.mkdir()
    nbformat.write(_chapter(), src / "01_example.ipynb")
    student.main(src, dst)
    assert "student/01_example.ipynb: created, 1 solution(s) removed" in capsys.readouterr().out
    copy = nbformat.read(dst / "01_example.ipynb", as_version=4)
    assert "answer = 42" not in nbformat.writes(copy)
    assert copy.cells[4].metadata["editable"] is False  # the check cell is read-only in JupyterLab

    copy.cells[3].source = "answer = 41   # the student's own try"
    nbformat.write(copy, dst / "01_example.ipynb")
    edited = (dst / "01_example.ipynb").read_bytes()
    student.main(src, dst)  # nothing changed upstream: no notice, the work is kept
    assert capsys.readouterr().out.strip() == f"{dst}: 1 existing copy kept as they are"
    assert (dst / "01_example.ipynb").read_bytes() == edited

    nbformat.write(_chapter("Try it; the instructor added a hint."), src / "01_example.ipynb")
    student.main(src, dst)  # changed upstream: one line saying so and how to get a fresh copy
    out = capsys.readouterr().out
    assert "has changed since your copy was made; your copy is kept" in out and "move yours away" in out
    assert (dst / "01_example.ipynb").read_bytes() == edited

    shutil.move(dst / "01_example.ipynb", dst / "01_example.old.ipynb")
    student.main(src, dst)  # moved away: a fresh copy, with the hint
    assert "created" in capsys.readouterr().out
    assert "instructor added a hint" in nbformat.read(dst / "01_example.ipynb", as_version=4).cells[0].source


def test_a_solution_change_alone_is_no_notice(tmp_path, capsys):
    src, dst = tmp_path / "notebooks", tmp_path / "student"
    src.mkdir()
    nbformat.write(_chapter(), src / "01_example.ipynb")
    student.main(src, dst)
    better = _chapter()
    better.cells[3].source = better.cells[3].source.replace("answer = 42", "answer = 6 * 7")
    nbformat.write(better, src / "01_example.ipynb")
    capsys.readouterr()
    student.main(src, dst)  # the student copy would be identical: nothing to say
    assert "changed" not in capsys.readouterr().out


def test_student_copies_need_no_nbgrader(tmp_path):
    code = ("import runpy, sys; sys.modules['nbgrader'] = None; "  # any `import nbgrader` now fails
            f"sys.argv = ['student.py', {str(ROOT / 'notebooks')!r}, {str(tmp_path / 'student')!r}]; "
            f"runpy.run_path({str(ROOT / 'tools' / 'student.py')!r}, run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "student").iterdir()) == \
        sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_lab_serves_student_copies_and_solutions_one_step_away():
    cmd, folder = lab.command(["--no-browser", "--port=8899"])
    assert folder == ROOT / "student"
    assert cmd[:3] == [sys.executable, "-m", "jupyterlab"] and f"--notebook-dir={folder}" in cmd
    assert cmd[4:6] == ["--no-browser", "--port=8899"]
    cmd, folder = lab.command(["--solutions"])
    assert folder == ROOT / "notebooks" and "--solutions" not in cmd


def test_kernel_is_this_environment():
    env = lab.kernel_environment()
    first = Path(env["JUPYTER_PATH"].split(os.pathsep)[0])
    assert first == Path(sys.prefix) / "share" / "jupyter"
    assert (first / "kernels" / "python3" / "kernel.json").is_file()


def test_a_student_copy_finds_the_package_and_the_data_from_its_folder(tmp_path):
    """Notebooks run with their folder as the working directory: from student/ (or anywhere),
    `from course_utils import ...` and the default data folder must be the course's."""
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_DATA_DIR", "PYTHONPATH")}
    code = "from course_utils import settings, data; print(settings.data_dir())"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == ROOT / "data"
