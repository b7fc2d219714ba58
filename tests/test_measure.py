"""tools/measure.py (`make measure`): choosing chapters, reading executed notebooks and ledgers, the printout."""
import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import ledger

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))  # measure imports tools/notebooks.py
spec = importlib.util.spec_from_file_location("measure", ROOT / "tools" / "measure.py")
measure = sys.modules["measure"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(measure)

NOTEBOOKS = [Path(f"notebooks/{n}") for n in ("01_zoo.ipynb", "03_features.ipynb", "07_shift.ipynb")]


def test_select_chapters():
    assert measure.select(NOTEBOOKS, None) == NOTEBOOKS
    assert measure.select(NOTEBOOKS, "07,1") == [NOTEBOOKS[2], NOTEBOOKS[0]]
    with pytest.raises(SystemExit, match="no notebook for 05; known: 01, 03, 07"):
        measure.select(NOTEBOOKS, "01,05")


def executed_notebook():
    def cell(source, start, end, outputs=()):
        c = nbformat.v4.new_code_cell(source)
        c.metadata["execution"] = {"iopub.execute_input": f"2026-11-29T10:00:{start:02d}.000000Z",
                                   "shell.execute_reply": f"2026-11-29T10:00:{end:02d}.500000Z"}
        c.outputs = list(outputs)
        return c
    error = nbformat.v4.new_output("error", ename="ValueError", evalue="bad threshold", traceback=[])
    return nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title"),
        cell("setup = chapter.setup()\nmore", 0, 2),
        cell("history = train.fit(...)", 2, 40),
        cell("assert acc > 0.9", 40, 41, [error]),
    ])


def test_slowest_cells_and_first_error():
    nb = executed_notebook()
    assert [(i, round(s, 1), line) for i, s, line in measure.slowest_cells(nb, 2)] == [
        (2, 38.5, "history = train.fit(...)"), (1, 2.5, "setup = chapter.setup()")]
    assert measure.first_error(nb) == "cell 3: ValueError: bad threshold"
    assert measure.exercise_seconds(nb) == 0
    nb.cells[2].source = "### BEGIN SOLUTION\n" + nb.cells[2].source + "\n### END SOLUTION"
    assert round(measure.exercise_seconds(nb), 1) == 38.5
    nb.cells[3].outputs = []
    assert measure.first_error(nb) == ""


def fake_ledger(path, monkeypatch, records):
    monkeypatch.setenv("COURSE_LEDGER", str(path))
    monkeypatch.setenv("COURSE_FAST", "0")
    for claim, says, measured, holds in records:
        ledger.record(claim, says=says, measured=measured, holds=holds, model="resnet18")
    return ledger.read(path)


def test_report_tables_from_ledger_files(tmp_path, monkeypatch):
    first = fake_ledger(tmp_path / "01.jsonl", monkeypatch, [
        ("top-5 error below 5%", "often below 5%", "0.104", False),
        ("val accuracy", "", "0.941", None)])
    third = fake_ledger(tmp_path / "03.jsonl", monkeypatch, [("scratch reaches 60-70%", "60-70%", "0.65", True)])
    results = [
        measure.Result("01", "01_zoo.ipynb", 12.4, 3.2, slowest=[(4, 8.0, "x"), (2, 1.2, "y")], claims=first),
        measure.Result("03", "03_features.ipynb", 95.0, 40.0, "failed", "cell 7: ValueError: bad", claims=third),
        measure.Result("07", "07_shift.ipynb", 900.2, 0.0, "timed out", "stopped after 900 s in cell 12 (dann_fit)"),
    ]
    text = measure.report(results, "full")
    lines = text.splitlines()
    assert lines[0] == "## Chapters, full mode"
    assert "| 01 | 12 | 3 | ok | 4: 8 s, 2: 1 s | val accuracy 0.941 |" in lines
    assert "| 03 | 95 | 40 | failed | – | – |" in lines
    assert "| 07 | 900 | 0 | timed out | – | – |" in lines
    assert "total: 1008 s (16.8 min) for 3 chapter(s), of which 43 s in exercise solutions; 1 finished" in lines
    assert "chapter 03 failed: cell 7: ValueError: bad" in lines
    assert "chapter 07 timed out: stopped after 900 s in cell 12 (dann_fit)" in lines
    assert "| top-5 error below 5% | often below 5% | 0.104 | resnet18 | does not hold |" in lines
    assert "| scratch reaches 60-70% | 60-70% | 0.65 | resnet18 | holds |" in lines
    assert lines[lines.index("### Ledger, chapter 07 (07_shift.ipynb)") + 2] == "(no claims recorded)"
    assert "ledger total: 3 record(s): 1 hold, 1 do not hold, 1 headline number(s)" in lines
    assert "  does not hold: chapter 01: top-5 error below 5% (chapter often below 5%; measured 0.104)" in lines
    assert all(c.mode == "full" for c in first + third)


def test_report_names_the_precision_path(monkeypatch):
    for value, path in (("float32", "float32 on cpu"), ("bfloat16", "bfloat16 autocast on cpu")):
        monkeypatch.setenv("COURSE_PRECISION", value)
        monkeypatch.setenv("COURSE_DEVICE", "cpu")
        line = measure.machine()
        assert line.startswith(f"precision: {path} (COURSE_PRECISION={value}; CPU: ") and "AMX " in line
        text = measure.report([measure.Result("01", "01_zoo.ipynb", 1.0, 0.0)], "fast", line)
        assert text.splitlines()[2] == line
