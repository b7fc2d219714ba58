"""nbgrader: the cell metadata tools/notebooks.py derives, and a real release-and-autograde round trip.

`make test` runs the round trip on one cheap chapter (01, about 15 s per execution in fast mode);
`make nbgrader` runs it on every chapter (COURSE_NBGRADER_ALL=1).
"""
import copy
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("course_tools_notebooks", ROOT / "tools" / "notebooks.py")
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ROUND_TRIP = CHAPTERS if os.environ.get("COURSE_NBGRADER_ALL") == "1" else \
    [ROOT / "notebooks" / "01_model_zoo.ipynb"]
code, markdown = nbformat.v4.new_code_cell, nbformat.v4.new_markdown_cell


def _example():
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        markdown("# 09 Example"),
        code("# Parameters: edit here\nEPOCHS = 3"),
        code("# Parameters are not set twice\nx = 1"),
        markdown("## Exercises\n\n### Exercise 1"),
        code("answer = ...\n### BEGIN SOLUTION\nanswer = 42\n### END SOLUTION"),
        code("exercises.check_09_answer(answer)"),
        markdown("Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION"),
        code("exercises.check_09_a(answer); exercises.check_09_b(answer)"),
        code("print(answer)"),
    ]
    return nb


def test_metadata_is_derived_from_the_source():
    nb = _example()
    tool.exam_metadata(nb)
    meta = [c.metadata.get("nbgrader") for c in nb.cells]
    assert [c.metadata.get("tags") for c in nb.cells] == [None, ["parameters"]] + [None] * 7
    assert meta[0] is meta[1] is meta[2] is meta[8] is None  # teaching cells: free to edit
    assert meta[3] == {"solution": False, "grade": False, "locked": True, "grade_id": "task-1", "schema_version": 3}
    assert meta[4] == {"solution": True, "grade": False, "locked": False, "grade_id": "answer-1", "schema_version": 3}
    assert meta[5] == {"solution": False, "grade": True, "locked": True, "points": 1,
                       "grade_id": "check-1", "schema_version": 3}
    assert meta[6]["solution"] and meta[6]["grade"] and meta[6]["points"] == 1  # written answer: graded by hand
    assert meta[7]["points"] == 2 and meta[7]["grade_id"] == "check-2"
    from nbgrader.nbgraderformat import MetadataValidator
    MetadataValidator().validate_nb(nb)  # nbgrader's own schema check


def test_metadata_is_idempotent_and_replaces_stale_values():
    once = _example()
    tool.exam_metadata(once)
    twice = copy.deepcopy(once)
    twice.cells[8].metadata["nbgrader"] = {"grade": True, "points": 5}  # stale: no check there any more
    twice.cells[2].metadata["tags"] = ["parameters", "keep-me"]
    tool.exam_metadata(twice)
    tool.exam_metadata(twice)
    assert twice.cells[8].metadata.get("nbgrader") is None
    assert twice.cells[2].metadata["tags"] == ["keep-me"]
    twice.cells[2].metadata.pop("tags")
    assert twice == once


def test_a_marker_mentioned_in_prose_is_reported():
    """nbgrader cuts any line containing BEGIN SOLUTION as a marker, even in a sentence."""
    nb = _example()
    nb.cells[3].source += "\nThe lines between `### BEGIN SOLUTION` and `### END SOLUTION` are removed."
    with pytest.raises(ValueError, match=r"cell 3: .*mentions a solution marker.*rephrase"):
        tool.exam_metadata(nb)


def test_clean_sets_the_metadata_too():
    nb = _example()
    tool.clean(nb)
    assert nb.cells[5].metadata["nbgrader"]["grade"]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_exercise_of_a_chapter_is_graded(path):
    """On a copy of each chapter: every solution cell is one, every check is autograded and locked."""
    nb = nbformat.read(path, as_version=4)
    tool.exam_metadata(nb)
    meta = [c.metadata.get("nbgrader", {}) for c in nb.cells]
    solutions = [i for i, c in enumerate(nb.cells) if tool._is_solution(c)]
    checks = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and tool.CHECK.search(c.source)]
    assert solutions and checks
    assert all(meta[i]["solution"] for i in solutions)
    assert all(meta[i]["grade"] and meta[i]["locked"] and meta[i]["points"] >= 1 for i in checks)
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    from nbgrader.nbgraderformat import MetadataValidator
    MetadataValidator().validate_nb(nb)


# --- the round trip: release, submit, autograde ------------------------------------------------

def nbgrader(*args, cwd: Path, env: dict) -> None:
    # nbgrader starts alembic and jupyter by name: this environment's bin/ must come first on PATH
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{result.stdout[-3000:]}{result.stderr[-6000:]}"


@pytest.mark.parametrize("path", ROUND_TRIP, ids=lambda p: p.name)
def test_nbgrader_round_trip(path, tmp_path, data_mirror):
    """generate_assignment releases a student version; autograde gives the solved notebook full
    marks and the untouched student version zero."""
    from nbgrader.api import Gradebook
    course, assignment, stem = tmp_path / "course", "ps1", path.stem
    source = course / "source" / assignment / path.name
    source.parent.mkdir(parents=True)
    nb = nbformat.read(path, as_version=4)
    tool.exam_metadata(nb)
    nbformat.write(nb, source)
    points = sum(c.metadata["nbgrader"]["points"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade"))

    env = dict(os.environ, COURSE_FAST="1", MPLBACKEND="Agg", COURSE_DATA_MIRROR=str(data_mirror),
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    root = f"--CourseDirectory.root={course}"
    nbgrader("generate_assignment", assignment, root, "--force", cwd=course, env=env)
    release = course / "release" / assignment / path.name
    released = nbformat.read(release, as_version=4)
    assert not any(tool._is_solution(c) for c in released.cells), "the release still holds solutions"

    for student, notebook in (("solved", source), ("untouched", release)):
        folder = course / "submitted" / student / assignment
        folder.mkdir(parents=True)
        (folder / path.name).write_bytes(notebook.read_bytes())
    nbgrader("autograde", assignment, root, "--Execute.timeout=900", cwd=course, env=env)

    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gradebook:
        solved = gradebook.find_submission_notebook(stem, assignment, "solved")
        untouched = gradebook.find_submission_notebook(stem, assignment, "untouched")
        assert solved.max_score == points > 0
        assert solved.score == points, [(g.name, g.score) for g in solved.grades]
        assert untouched.score == 0, [(g.name, g.score) for g in untouched.grades if g.score]
