"""tools/book.py (the book of a run) and the pure parts of tools/book_check.py (its browser test).

The browser test itself is `make book-test`, after `make book`; here a two-chapter fake run is
built for real with Sphinx where the `book` extra is installed (make book installs it)."""
import base64
import importlib.util
import json
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import book  # noqa: E402
import book_check  # noqa: E402
from course_utils import ledger  # noqa: E402

# A 1x1 PNG: a figure output.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000 1f15c489"
    "0000000d49444154789c6360000002000100e221bc330000000049454e44ae426082".replace(" ", ""))).decode()
SECRET = "best_lr = 0.001  # the answer"


def figure_output():
    return nbformat.v4.new_output("display_data", data={"image/png": PNG, "text/plain": "<Figure>"})


def chapter(title: str = "# 01 · A chapter"):
    """A chapter as a run leaves it: a figure, a solution cell and its check, all with outputs."""
    md = nbformat.v4.new_markdown_cell
    code = nbformat.v4.new_code_cell
    solution = code(f"def answer():\n    ### BEGIN SOLUTION\n    {SECRET}\n    ### END SOLUTION\n    return best_lr\n"
                    f"plt.show()", outputs=[figure_output(), nbformat.v4.new_output("stream", text="0.001 wins\n")])
    check = code("exercises.check_answer(answer)", metadata={"nbgrader": {"grade": True, "solution": False,
                                                                         "locked": True, "points": 1}},
                 outputs=[nbformat.v4.new_output("stream", text="All 3 checks pass: 0.001\n")])
    return nbformat.v4.new_notebook(cells=[
        md(title), code("plt.plot([1, 2]); plt.show()", outputs=[figure_output()]),
        code("# NBVAL_CHECK_OUTPUT\nprint('accuracy 0.95')", outputs=[nbformat.v4.new_output("stream", text="accuracy 0.95\n")]),
        md("Your answer:\n### BEGIN SOLUTION\nThe small rate, because it is the answer.\n### END SOLUTION"),
        solution, check],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


def claims(n: int, chapter: str = "01") -> list[ledger.Record]:
    return [ledger.Record(f"claim {chapter}.{i}", "94.77%" if i else "", f"0.9{i}", i % 2 == 0 if i else None,
                         "efficientnet_lite0", "fast") for i in range(n)]


def fake_run(folder: Path) -> Path:
    """A measure run of two chapters: executed notebooks, ledger files, report.md."""
    for number, name, n in [("01", "01_first", 3), ("02", "02_second", 2)]:
        (folder / number).mkdir(parents=True)
        nbformat.write(chapter(f"# {number} · Chapter {number}"), folder / number / f"{name}.ipynb")
        (folder / f"{number}.jsonl").write_text(
            "".join(json.dumps(c.__dict__) + "\n" for c in claims(n, number)), encoding="utf-8")
    (folder / "report.md").write_text("## Chapters, fast mode\n\n| chapter | seconds |\n|---|---|\n| 01 | 3 |\n"
                                      "| 02 | 4 |\n\ntotal: 7 s\n", encoding="utf-8")
    return folder


# --- the student's view -----------------------------------------------------------------------------

def test_student_view_strips_solutions_as_the_student_copies_do_and_drops_their_outputs():
    nb = chapter()
    view = book.student_view(nb)
    text = "\n".join(c.source for c in view.cells)
    assert SECRET not in text and "because it is the answer" not in text
    assert "replace this line with your solution" in view.cells[4].source  # tools/student.py's placeholder
    assert "YOUR ANSWER HERE" in view.cells[3].source
    assert view.cells[4].outputs == [] and view.cells[5].outputs == []     # solution and its check
    assert len(view.cells[1].outputs) == 1 and view.cells[2].outputs[0]["text"] == "accuracy 0.95\n"
    assert view.cells[2].source == "print('accuracy 0.95')", "the tests' marker is not the reader's"
    assert SECRET in nb.cells[4].source and nb.cells[5].outputs, "the run's notebook is left unchanged"
    assert book.figures(nb) == 2 and book.figures(view) == 1


def test_instructor_view_keeps_everything():
    nb = chapter()
    view = book.student_view(nb, solutions=True)
    assert view == nb and view is not nb
    assert book.figures(view) == 2


def test_errors_are_listed_with_their_cell():
    nb = chapter()
    nb.cells[2].outputs = [nbformat.v4.new_output("error", ename="ValueError", evalue="bad input", traceback=[])]
    assert book.errors(nb) == ["cell 2: ValueError: bad input"]
    assert book.errors(chapter()) == []


def test_executed_chapters_in_order_and_a_clear_error_for_a_wrong_folder(tmp_path):
    run = fake_run(tmp_path / "run")
    assert [p.name for p in book.executed_chapters(run)] == ["01_first.ipynb", "02_second.ipynb"]
    with pytest.raises(SystemExit, match="holds no executed chapter.*make measure"):
        book.executed_chapters(tmp_path)


# --- the generated pages ----------------------------------------------------------------------------

INFO = {"commit": "abc1234567", "mode": "full", "date": "2026-12-04 02:00 UTC", "machine": "a 2-core CPU",
        "precision": "bfloat16 autocast on cpu", "view": "student's view, exercise solutions not shown"}


def test_stamp_names_commit_mode_run_and_view():
    line = book.stamp(INFO)
    for fact in ("abc1234567", "full mode", "2026-12-04 02:00 UTC", "a 2-core CPU", "solutions not shown"):
        assert fact in line


def test_ledger_page_lists_every_record_with_the_run_facts():
    records = {"01": claims(3), "02": claims(2, "02"), "03": []}
    page = book.ledger_page(records, INFO, "| chapter | seconds |\n|---|---|\n| 01 | 3 |")
    for c in records["01"] + records["02"]:
        assert any(c.claim in row and c.measured in row for row in page.splitlines() if row.startswith("|"))
    for fact in ("2026-12-04 02:00 UTC", "a 2-core CPU", "full", "bfloat16 autocast on cpu", "efficientnet_lite0",
                 "abc1234567", "## Seconds per chapter", "| 01 | 3 |", "(no claims recorded)"):
        assert fact in page
    assert "5 record(s): 1 hold, 2 do not hold, 2 headline number(s)" in page


def test_chapters_table_is_the_reports_first_table():
    report = "## Chapters\n\n| chapter | s |\n|---|---|\n| 01 | 3 |\n\ntotal\n\n| claim | x |\n|---|---|\n"
    assert book.chapters_table(report) == "| chapter | s |\n|---|---|\n| 01 | 3 |"
    assert book.chapters_table("no table") == ""


def test_a_chapter_the_run_did_not_finish_says_so():
    report = ("## Chapters, fast mode\n\n| chapter | seconds | of which exercise solutions | status | slowest | headline |\n"
              "|---|---|---|---|---|---|\n| 03 | 45 | 10 | ok | – | – |\n| 04 | 900 | 0 | timed out | – | – |\n")
    assert book.chapter_status(report) == {"03": "ok", "04": "timed out"}
    assert "warning" not in book.stamp_cell(INFO).source
    assert "This chapter timed out in this run" in book.stamp_cell(INFO, "timed out").source


def test_a_page_added_to_docs_joins_the_reference_contents():
    index = "# Course\n\n```{toctree}\n:caption: Run\n\nledger\n```\n\n```{toctree}\n:caption: Reference\n\nsettings\n```\n"
    added = book.with_every_page(index, ["index", "ledger", "settings", "scaling"])
    assert added.endswith("settings\nscaling\n```\n") and added.count("scaling") == 1
    assert book.with_every_page(index, ["index", "ledger", "settings"]) == index


def test_run_info_of_a_make_measure_folder_takes_the_mode_from_its_ledger(tmp_path):
    run = fake_run(tmp_path / "run")
    info = book.run_info(run, {"01": ledger.read(run / "01.jsonl")}, solutions=False)
    assert info["mode"] == "fast" and "described when the book was built" in info["machine"]
    assert info["commit"].endswith("(when the book was built)")
    assert info["precision"].endswith("(when the book was built)")
    (run / "report.md").write_text("## Chapters, full mode\n\nprecision: float32 on cpu (COURSE_PRECISION=float32)\n")
    assert book.run_info(run, {}, solutions=False)["precision"] == "float32 on cpu (COURSE_PRECISION=float32)"
    assert info["view"] == "student's view, exercise solutions not shown"
    (run / book.RUN_INFO).write_text(json.dumps(INFO))
    assert book.run_info(run, {}, solutions=True)["commit"] == "abc1234567"


# --- a real build -----------------------------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("myst_nb") is None, reason="the book extra: make book installs it")
def test_build_makes_a_site_of_the_run_with_the_student_view(tmp_path):
    run = fake_run(tmp_path / "run")
    (run / book.RUN_INFO).write_text(json.dumps(INFO))
    facts = book.build(run, tmp_path / "book")
    html = tmp_path / "book" / "html"
    page = (html / "chapters" / "01_first.html").read_text(encoding="utf-8")
    assert SECRET not in page and "All 3 checks pass" not in page and "accuracy 0.95" in page
    assert len(re.findall(r'<img[^>]+src="\.\./_images/', page)) == 1, "the figure, and not the solution's"
    assert book.stamp(facts["info"]) in page
    ledger_html = (html / "ledger.html").read_text(encoding="utf-8")
    assert all(c.claim in ledger_html for c in claims(3) + claims(2, "02"))
    for name in ("index", "settings", "instructors", "troubleshooting", "package", "measurements", "setup"):
        assert (html / f"{name}.html").exists(), name
    saved = json.loads((html / "book.json").read_text())
    assert saved["chapters"]["01_first"] == {"figures": 1, "figures_run": 2, "errors": [], "records": 3,
                                                "widgets": False, "status": "ok"}
    assert not [p for p in (html / "_sources").rglob("*") if p.is_file()], "no copy of the notebooks"


# --- book_check's pure parts ------------------------------------------------------------------------

def test_links_into_the_site_are_checked_and_others_ignored(tmp_path):
    site = tmp_path / "html"
    (site / "chapters").mkdir(parents=True)
    (site / "index.html").write_text("x")
    (site / "chapters" / "01.html").write_text("x")
    index, first = (site / "index.html").resolve(), (site / "chapters" / "01.html").resolve()
    pages = {index: {"links": [first.as_uri() + "#setup", first.as_uri() + "#gone", (site / "missing.html").as_uri(),
                               "https://example.org/x", (tmp_path / "outside.html").as_uri()],
                     "images": [(site / "_images" / "fig.png").as_uri()], "ids": []},
             first: {"links": [index.as_uri()], "images": [], "ids": ["setup"]}}
    assert book_check.link_problems(pages, site.resolve()) == [
        "index.html: broken link _images/fig.png", "index.html: broken link missing.html",
        "index.html: no #gone on chapters/01.html"]
    assert book_check.internal_target("https://example.org", site) is None


def test_ledger_rows_must_show_every_record():
    records = claims(3)
    rows = [f"{c.claim}\t{c.says}\t{c.measured}" for c in records]
    assert book_check.ledger_problems(rows, records) == []
    missing = book_check.ledger_problems(rows[:1] + rows[2:], records)
    assert missing == ["ledger page: no row for chapter record 'claim 01.1' (measured 0.91)"]


def test_only_the_known_console_messages_are_benign():
    cdn = "Failed to load resource: net::ERR_NAME_NOT_RESOLVED (https://cdn.jsdelivr.net/npm/@jupyter-widgets/html-manager@1.0.6/dist/embed-amd.js)"
    theme = "Got invalid theme mode: . Resetting to auto. (file:///x/html/_static/scripts/pydata-sphinx-theme.js?digest=9)"
    mathjax = "Failed to load resource: net::ERR_INTERNET_DISCONNECTED (https://cdn.jsdelivr.net/npm/mathjax@4/tex-mml-chtml.js)"
    assert book_check.benign_reason(cdn) and book_check.benign_reason(theme) and book_check.benign_reason(mathjax)
    for message in ("Failed to load resource: net::ERR_FILE_NOT_FOUND (file:///x/html/_images/fig.png)",
                    "Failed to load resource: net::ERR_NAME_NOT_RESOLVED (https://example.org/tracker.js)",
                    "Uncaught TypeError: x is undefined"):
        assert book_check.benign_reason(message) is None, message
