"""`make measure`: run the course in full mode, one chapter at a time, and print how long each took,
its slowest cells, its headline numbers, and the claims ledger (chapter says / course measured).

    python tools/measure.py                      every chapter, full mode (COURSE_FAST=0)
    python tools/measure.py --chapters 01,03     some chapters
    python tools/measure.py --fast               fast mode (to try the command itself)

Each notebook is copied into a run folder (--out; default a new folder in the system's temp
folder) and executed there, one at a time, in its own process with a wall-clock limit
(--timeout, per chapter): nothing is written back into notebooks/. The seconds spent in exercise
solution cells are also printed apart: a student runs their own code there, in exercise time. Each chapter appends its
claims to its own ledger file (COURSE_LEDGER=<run>/NN.jsonl, see course_utils/ledger.py).
The rest of the environment (COURSE_DATA_MIRROR, COURSE_DATASET, COURSE_THREADS, ...) passes
through. A chapter that fails or runs out of time is reported with its cell and error, the
others still run, and the exit code is 1. Timings under other load are upper bounds: the
1-minute load average is printed before and after.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from course_utils import ledger, precision, settings  # noqa: E402


@dataclass
class Result:
    chapter: str                      # "03"
    notebook: str                     # file name
    seconds: float = 0.0
    exercises: float = 0.0            # of which the exercise solution cells (the runs a student writes)
    status: str = "ok"                # "ok", "failed", "timed out"
    error: str = ""                   # where and what, for a chapter that did not finish
    slowest: list = field(default_factory=list)   # (cell index, seconds, first source line)
    claims: list = field(default_factory=list)    # ledger.Claim records


# --- pure parts: what is printed ---------------------------------------------------------------

def select(notebooks: list[Path], chapters: str | None) -> list[Path]:
    """The notebooks whose two-digit prefix is in `chapters` ("01,03"), all when None; an unknown
    chapter is an error that lists the known ones."""
    if not chapters:
        return notebooks
    wanted = [c.strip().zfill(2) for c in chapters.split(",") if c.strip()]
    known = {p.name[:2]: p for p in notebooks}
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise SystemExit(f"--chapters: no notebook for {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return [known[c] for c in wanted]


def minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 60 else f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def machine() -> str:
    """The precision path and the CPU the chapters ran on, in one line (a timing means nothing without it)."""
    return f"precision: {precision.describe(settings.pick_device())}"


def report(results: list[Result], mode: str, ran_on: str = "") -> str:
    """The whole printout: the chapter table, each chapter's ledger, the totals."""
    out = [f"## Chapters, {mode} mode", "", *([ran_on, ""] if ran_on else []),
           "| chapter | seconds | of which exercise solutions | status | slowest cells (index: seconds) | headline numbers |",
           "|---|---|---|---|---|---|"]
    for r in results:
        cells = ", ".join(f"{i}: {s:.0f} s" for i, s, _ in r.slowest[:3]) or "–"
        headline = "; ".join(f"{c.claim} {c.measured}" for c in r.claims if c.holds is None) or "–"
        out.append(f"| {r.chapter} | {r.seconds:.0f} | {r.exercises:.0f} | {r.status} | {cells} | {headline} |")
    total, exercises = sum(r.seconds for r in results), sum(r.exercises for r in results)
    out += ["", f"total: {minutes(total)} for {len(results)} chapter(s), of which {minutes(exercises)} in exercise "
                f"solutions; {sum(r.status == 'ok' for r in results)} finished"]
    for r in results:
        if r.error:
            out.append(f"chapter {r.chapter} {r.status}: {r.error}")
    for r in results:
        out += ["", f"### Ledger, chapter {r.chapter} ({r.notebook})", ""]
        out.append(ledger.markdown(r.claims) if r.claims else "(no claims recorded)")
    claims = [c for r in results for c in r.claims]
    counts = {v: sum(c.holds is k for c in claims) for k, v in ledger.VERDICTS.items()}
    out += ["", f"ledger total: {len(claims)} record(s): {counts['holds']} hold, {counts['does not hold']} "
                f"do not hold, {counts['measured']} headline number(s)"]
    broken = [f"chapter {r.chapter}: {c.claim} (chapter {c.says}; measured {c.measured})"
              for r in results for c in r.claims if c.holds is False]
    out += [f"  does not hold: {line}" for line in broken]
    return "\n".join(out)


def slowest_cells(nb, n: int = 5) -> list[tuple[int, float, str]]:
    """The n slowest code cells of an executed notebook: (index, seconds, first line of source)."""
    from notebooks import cell_seconds  # tools/notebooks.py
    times = cell_seconds(nb)
    firsts = {i: (nb.cells[i].source.strip().splitlines() or [""])[0][:60] for i in times}
    return [(i, s, firsts[i]) for i, s in sorted(times.items(), key=lambda item: -item[1])[:n]]


def exercise_seconds(nb) -> float:
    """Seconds spent in exercise solution cells (those with nbgrader's `### BEGIN SOLUTION`): in a
    student's copy these are the student's own code, run during exercise time."""
    from notebooks import BEGIN, cell_seconds  # tools/notebooks.py
    return sum(s for i, s in cell_seconds(nb).items() if BEGIN in nb.cells[i].source)


def first_error(nb) -> str:
    """'cell N: Error: message' for the first cell whose output is an error, else ''."""
    for index, cell in enumerate(nb.cells):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"cell {index}: {output.get('ename')}: {str(output.get('evalue'))[:300]}"
    return ""


# --- running one chapter -----------------------------------------------------------------------

def execute(source: Path, target: Path) -> int:
    """(In a child process) execute `target`, a copy of `source`, in its folder; save it as executed,
    also when a cell fails; write the index of each cell as it starts to <target>.progress."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    nb = nbformat.read(target, as_version=4)
    progress = target.with_suffix(".progress")

    def started(cell, cell_index, **_):
        progress.write_text(f"{cell_index}\n{(cell.source.strip().splitlines() or [''])[0][:60]}")

    client = NotebookClient(nb, timeout=None, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(target.parent)}}, on_cell_execute=started)
    try:
        client.execute()
        return 0
    except CellExecutionError:
        return 1
    finally:
        nbformat.write(nb, target)


def run_chapter(notebook: Path, run: Path, fast: bool, timeout: float) -> Result:
    import nbformat
    chapter = notebook.name[:2]
    folder = run / chapter
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    target = folder / notebook.name
    shutil.copy(notebook, target)
    ledger_file = run / f"{chapter}.jsonl"
    ledger_file.unlink(missing_ok=True)
    env = dict(os.environ, COURSE_FAST="1" if fast else "0", COURSE_LEDGER=str(ledger_file), COURSE_STRICT="1",
               MPLBACKEND=os.environ.get("MPLBACKEND", "Agg"))
    env.setdefault("JUPYTER_PATH", str(REPO / ".venv" / "share" / "jupyter"))  # the course's python3 kernel
    result = Result(chapter, notebook.name)
    start = time.perf_counter()
    with open(folder / "log.txt", "w") as log:
        child = subprocess.Popen([sys.executable, __file__, "--execute", str(notebook), str(target)],
                                 env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the executor and its kernel
            child.wait()
            code = None
    result.seconds = time.perf_counter() - start
    executed = nbformat.read(target, as_version=4)
    result.slowest = slowest_cells(executed)
    result.exercises = exercise_seconds(executed)
    result.claims = ledger.read(ledger_file)
    if code is None:
        progress = target.with_suffix(".progress")
        where = ("in cell " + progress.read_text().replace("\n", " (", 1) + ")" if progress.exists()
                 else "before its first cell ran (starting the kernel)")
        result.status, result.error = "timed out", f"stopped after {timeout:.0f} s {where}"
    elif code != 0:
        result.status = "failed"
        result.error = first_error(executed) or f"exit code {code}; see {folder / 'log.txt'}"
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chapters", help="comma-separated chapter numbers, e.g. 01,03 (default: all)")
    parser.add_argument("--fast", action="store_true", help="fast mode (COURSE_FAST=1), to try the command")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per chapter (default 900)")
    parser.add_argument("--out", type=Path, help="run folder (default: a new one in the temp folder)")
    parser.add_argument("--execute", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.execute:
        return execute(*args.execute)
    notebooks = select(sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")), args.chapters)
    run = (args.out or Path(tempfile.mkdtemp(prefix="course-measure-"))).resolve()  # the kernels run in the chapter folders
    run.mkdir(parents=True, exist_ok=True)
    mode = "fast" if args.fast else "full"
    print(f"{mode} mode, {len(notebooks)} chapter(s), executed copies and ledgers in {run}; "
          f"COURSE_DATA_MIRROR={os.environ.get('COURSE_DATA_MIRROR', '(unset)')}; "
          f"load {os.getloadavg()[0]:.2f} (1 min)\n{machine()}", flush=True)
    results = []
    for notebook in notebooks:
        result = run_chapter(notebook, run, args.fast, args.timeout)
        print(f"chapter {result.chapter}: {result.status} in {result.seconds:.0f} s"
              + (f": {result.error}" if result.error else ""), flush=True)
        results.append(result)
    print()
    text = report(results, mode, machine())
    print(text)
    print(f"\nload after: {os.getloadavg()[0]:.2f} (1 min); ledgers and executed notebooks: {run}")
    (run / "report.md").write_text(text + "\n")
    return 0 if all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
