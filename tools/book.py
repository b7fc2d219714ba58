"""`make book`: the course as a static HTML book, each chapter with every output of one run.

    python tools/book.py                  every chapter in full mode (tools/measure.py), then the book
    python tools/book.py --fast           the same in fast mode (minutes; what CI builds)
    python tools/book.py --run DIR        the book of a run `make measure` already made (its folder)
    python tools/book.py --solutions      the instructor's book: exercise solutions and their outputs shown

The run is tools/measure.py's: each chapter executed in a copy in the run folder, its claims in
<run>/NN.jsonl. The book is built from those executed copies by Sphinx with MyST-NB (nothing is
executed again) into --out (default build/book): open build/book/html/index.html, or serve the
html/ folder from any static host. The pages are docs/ (landing page, settings, instructors,
troubleshooting, ...), one page per chapter and a ledger page generated from the run. By default a
chapter shows the student's view: every exercise solution replaced as in the student copies
(tools/student.py) and the outputs of solution and check cells left out. Every page says which
commit, mode and run produced it.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
from course_utils import ledger  # noqa: E402
from student import BEGIN, strip_solutions  # noqa: E402  (tools/student.py)
from notebooks import MARK as NBVAL_MARK  # noqa: E402  (tools/notebooks.py)

DOCS = REPO / "docs"
RUN_INFO = "book-run.json"  # what tools/book.py records in a run folder it made
INLINE = "module://matplotlib_inline.backend_inline"  # what a kernel in JupyterLab uses
IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


# --- pure parts ------------------------------------------------------------------------------------

def executed_chapters(run: Path) -> list[Path]:
    """The executed notebooks of a measure run (<run>/NN/NN_name.ipynb), in chapter order; a folder
    that holds none is an error saying how to make one."""
    found = sorted(run.glob("[0-9][0-9]/[0-9][0-9]_*.ipynb"))
    if not found:
        raise SystemExit(f"{run} holds no executed chapter (NN/NN_name.ipynb): give the folder "
                         f"`make measure` printed, or run tools/book.py without --run.")
    return found


def is_solution(cell) -> bool:
    return any(line.lstrip().startswith(BEGIN) for line in cell.source.splitlines())


def is_check(cell) -> bool:
    """A check cell: the one nbgrader grades (tools/notebooks.py derives that from its source)."""
    return cell.cell_type == "code" and bool(cell.metadata.get("nbgrader", {}).get("grade"))


def student_view(nb, solutions: bool = False):
    """The chapter a student reads (a new object): each solution replaced by the student copies'
    placeholder (tools/student.py), the outputs of solution and check cells removed (a solution's
    numbers and figures are the exercise's answer). With `solutions`, the notebook as it ran."""
    nb = nbformat.from_dict(nb)
    if solutions:
        return nb
    for cell in nb.cells:
        if cell.cell_type == "code" and (is_solution(cell) or is_check(cell)):
            cell.outputs = []
        cell.source = strip_solutions(cell.source, markdown=cell.cell_type == "markdown")
        if cell.cell_type == "code":  # the tests' marker (tools/notebooks.py) says nothing to a reader
            cell.source = "\n".join(line for line in cell.source.split("\n") if line.strip() != f"# {NBVAL_MARK}")
    return nb


def figures(nb) -> int:
    """How many figures (image outputs) the notebook's cells hold."""
    return sum(any(t in out.get("data", {}) for t in IMAGE_TYPES)
               for cell in nb.cells if cell.cell_type == "code" for out in cell.get("outputs", []))


def errors(nb) -> list[str]:
    """'cell N: Name: value' for every error output."""
    return [f"cell {i}: {out.get('ename')}: {str(out.get('evalue'))[:200]}"
            for i, cell in enumerate(nb.cells) for out in cell.get("outputs", [])
            if out.get("output_type") == "error"]


def stamp(info: dict) -> str:
    """The one line every page carries: which commit, mode and run produced it."""
    return (f"Rendered from commit {info['commit']}, {info['mode']} mode, run of {info['date']} on "
            f"{info['machine']}; {info['view']}.")


def stamp_cell(info: dict, status: str = "ok"):
    """The note at the top of a chapter: its stamp, and a warning where the run did not finish it."""
    text = f"```{{note}}\n{stamp(info)}\n```"
    if status != "ok":
        text += (f"\n\n```{{warning}}\nThis chapter {status} in this run: the outputs below stop where it did "
                 f"(a chapter that timed out shows none). Rebuild the book to see it whole.\n```")
    return nbformat.v4.new_markdown_cell(text, metadata={"course_stamp": True})


def ledger_page(claims: dict[str, list[ledger.Record]], info: dict, chapters_table: str = "") -> str:
    """The chapter-against-measured ledger of a run as a Markdown page: the run's facts, then each
    chapter's records (claim, chapter says, measured, model, verdict), then the totals."""
    models = sorted({c.model for records in claims.values() for c in records})
    every = [c for records in claims.values() for c in records]
    counts = {v: sum(c.holds is k for c in every) for k, v in ledger.VERDICTS.items()}
    out = ["# The ledger of this run", "",
           "What the textbook chapter claims, next to what this run of the course measured. "
           "Generated from the run's ledger files (`COURSE_LEDGER=<run>/NN.jsonl`, see "
           "`course_utils/ledger.py`); the verdicts are computed in the run, not written by hand.", "",
           "| run | |", "|---|---|",
           f"| date | {info['date']} |",
           f"| machine | {info['machine']} |",
           f"| mode | {info['mode']} |",
           f"| precision path | {info['precision']} |",
           f"| model(s) | {'; '.join(models) or '–'} |",
           f"| commit | {info['commit']} |", "",
           f"{len(every)} record(s): {counts['holds']} hold, {counts['does not hold']} do not hold, "
           f"{counts['measured']} headline number(s).", ""]
    if chapters_table:
        out += ["## Seconds per chapter", "", chapters_table.strip(), ""]
    for chapter, records in claims.items():
        out += [f"## Chapter {chapter}", ""]
        out += [ledger.markdown(records) if records else "(no claims recorded)", ""]
    return "\n".join(out)


def chapters_table(report: str) -> str:
    """The per-chapter table of measure.py's report.md (its first table), or ''."""
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("| chapter")), None)
    if start is None:
        return ""
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def with_every_page(index: str, pages: list[str]) -> str:
    """The landing page with each page of docs/ that none of its tables of contents names added to
    the last one (Reference): a page someone adds to docs/ joins the book without an edit here."""
    named = {line.strip() for line in index.splitlines()}
    missing = [p for p in sorted(pages) if p not in named and p != "index"]
    head, close, tail = index.rpartition("```")
    if not missing or not close:
        return index
    return head + "".join(f"{p}\n" for p in missing) + close + tail


def chapter_status(report: str) -> dict[str, str]:
    """Each chapter's status in measure.py's report.md table ('ok', 'failed', 'timed out')."""
    rows = [line.split("|") for line in chapters_table(report).splitlines()[2:]]
    return {cells[1].strip(): cells[4].strip() for cells in rows if len(cells) > 5}


# --- facts about the run ----------------------------------------------------------------------------

def commit() -> str:
    """The checkout's commit, with '+ local changes' when the course's files differ from it."""
    def git(*args):
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short=10", "HEAD") or "unknown (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "notebooks", "course_utils")
    return head + (" + local changes" if dirty else "")


def machine() -> str:
    """The CPU (model, cores, threads), the device and the Python/PyTorch versions."""
    import torch
    from course_utils import settings
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    device = settings.pick_device()
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else device.type.upper()
    threads = os.environ.get("COURSE_THREADS") or os.cpu_count()
    return (f"{cpu}, {os.cpu_count()} cores, {threads} threads, device {where}; "
            f"Python {platform.python_version()}, PyTorch {torch.__version__}")


def precision() -> str:
    """The training precision path on the run's device, and why: course_utils.precision's line
    (COURSE_PRECISION), or where the course has no such module, train.autocast_dtype's type."""
    from course_utils import settings
    device = settings.pick_device()
    try:
        from course_utils import precision as chosen
    except ImportError:
        from course_utils import train
        dtype = train.autocast_dtype(device)
        return f"{str(dtype).removeprefix('torch.')} autocast on {device.type}" if dtype else f"float32 on {device.type}"
    return chosen.describe(device)


def describe_run(fast: bool) -> dict:
    """The facts a run folder records about itself when tools/book.py makes it."""
    return {"commit": commit(), "mode": "fast" if fast else "full", "machine": machine(),
            "precision": precision(), "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def run_info(run: Path, claims: dict[str, list[ledger.Record]], solutions: bool) -> dict:
    """What the book says about its run: recorded in the run folder if tools/book.py made it; for a
    folder `make measure` made, the mode comes from its ledger and the rest is described now."""
    recorded = run / RUN_INFO
    if recorded.exists():
        info = json.loads(recorded.read_text(encoding="utf-8"))
    else:
        modes = sorted({c.mode for records in claims.values() for c in records})
        info = describe_run(fast=modes == ["fast"])
        info["mode"] = "/".join(modes) or "unknown"
        report = run / "report.md"
        when = dt.datetime.fromtimestamp((report if report.exists() else run).stat().st_mtime, dt.timezone.utc)
        info["date"] = when.strftime("%Y-%m-%d %H:%M UTC")
        info["machine"] += " (described when the book was built)"
        info["commit"] += " (when the book was built)"
        lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
        info["precision"] = next((line.removeprefix("precision: ") for line in lines if line.startswith("precision: ")),
                                 info["precision"] + " (when the book was built)")
    info["view"] = "instructor's view, solutions shown" if solutions else "student's view, exercise solutions not shown"
    return info


# --- building --------------------------------------------------------------------------------------

def assemble(run: Path, src: Path, solutions: bool) -> dict:
    """The Sphinx source folder: docs/, the chapters (student's view, stamped), the ledger page,
    _book.json. Returns the facts of the build (figures per chapter, errors, ledger records)."""
    chapters = executed_chapters(run)
    claims = {p.name[:2]: ledger.read(run / f"{p.name[:2]}.jsonl") for p in chapters}
    info = run_info(run, claims, solutions)
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns("__pycache__", "_build"))
    (src / "chapters").mkdir()
    index = src / "index.md"
    index.write_text(with_every_page(index.read_text(encoding="utf-8"), [p.stem for p in src.glob("*.md")]),
                     encoding="utf-8")
    facts = {"info": info, "stamp": stamp(info), "run": str(run), "chapters": {}}
    report = run / "report.md"
    report = report.read_text(encoding="utf-8") if report.exists() else ""
    statuses = chapter_status(report)
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        view = student_view(nb, solutions)
        status = statuses.get(path.name[:2], "ok")
        view.cells.insert(1 if view.cells and view.cells[0].cell_type == "markdown" else 0, stamp_cell(info, status))
        nbformat.write(view, src / "chapters" / path.name)
        facts["chapters"][path.stem] = {"figures": figures(view), "figures_run": figures(nb),
                                        "errors": errors(nb), "records": len(claims[path.name[:2]]),
                                        "widgets": bool(view.metadata.get("widgets")), "status": status}
    (src / "ledger.md").write_text(ledger_page(claims, info, chapters_table(report)), encoding="utf-8")
    (src / "_book.json").write_text(json.dumps({"stamp": stamp(info)}), encoding="utf-8")
    return facts


def build(run: Path, out: Path, solutions: bool = False) -> dict:
    """Assemble and run Sphinx; the site goes to <out>/html, its facts to <out>/html/book.json
    (for the browser test). A Sphinx warning fails the build: a broken link is a warning."""
    src, html = out / "src", out / "html"
    facts = assemble(run, src, solutions)
    shutil.rmtree(html, ignore_errors=True)
    result = subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-q", "-W", "--keep-going",
                             "-d", str(out / "doctrees"), str(src), str(html)])
    if result.returncode != 0:
        raise SystemExit(f"Sphinx failed (exit {result.returncode}): see its messages above.")
    (html / "book.json").write_text(json.dumps(facts, indent=1), encoding="utf-8")
    return facts


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="run the chapters in fast mode (COURSE_FAST=1)")
    parser.add_argument("--run", type=Path, help="a run folder of tools/measure.py: build from it, run nothing")
    parser.add_argument("--out", type=Path, default=REPO / "build" / "book", help="default build/book")
    parser.add_argument("--solutions", action="store_true", help="the instructor's book, solutions shown")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per chapter for the run")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    start = time.perf_counter()
    code = 0
    if args.run:
        run = args.run.resolve()
        if not run.is_dir():
            raise SystemExit(f"--run {args.run}: no such folder; give the run folder `make measure` printed.")
    else:
        run = out / ("run-fast" if args.fast else "run-full")
        shutil.rmtree(run, ignore_errors=True)
        run.mkdir(parents=True)
        (run / RUN_INFO).write_text(json.dumps(describe_run(args.fast)), encoding="utf-8")
        command = [sys.executable, str(REPO / "tools" / "measure.py"), "--out", str(run),
                   "--timeout", str(args.timeout)] + (["--fast"] if args.fast else [])
        # The inline backend: plt.show() puts each figure into the notebook, as in JupyterLab (Agg would not).
        code = subprocess.run(command, env=dict(os.environ, MPLBACKEND=INLINE)).returncode
        if code != 0:
            print("Some chapter failed or timed out (see above): the book shows what ran, errors included.")
    ran = time.perf_counter() - start
    facts = build(run, out, args.solutions)
    html = out / "html"
    shown = sum(c["figures"] for c in facts["chapters"].values())
    print(f"Book of {len(facts['chapters'])} chapter(s), {shown} figure(s), {size(html) / 1e6:.1f} MB: "
          f"{html / 'index.html'} ({'run ' + f'{ran:.0f} s, ' if not args.run else ''}"
          f"build {time.perf_counter() - start - ran:.0f} s). {stamp(facts['info'])}")
    broken = [f"{name}: {e}" for name, c in facts["chapters"].items() for e in c["errors"]]
    for line in broken:
        print(f"  error output in {line}")
    return 1 if broken or code else 0


if __name__ == "__main__":
    sys.exit(main())
