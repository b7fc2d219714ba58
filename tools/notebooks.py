"""Keep committed notebooks clean: execute them in fast mode, store only checked outputs, and
derive the cell metadata that nbgrader and papermill read.

    python tools/notebooks.py notebooks/01_model_zoo.ipynb [...]
    python tools/notebooks.py --no-execute notebooks/*.ipynb    (metadata and clearing only)

Every code cell runs (as CI does). Afterwards only the cells marked `# NBVAL_CHECK_OUTPUT`
keep their outputs, which become the reference that `make test` (nbval --nbval-lax)
compares; every other cell is cleared, so diffs stay small. Checked cells must print
deterministic text (no timings, no memory addresses).

The metadata is derived from the cells' source, never edited by hand (`exam_metadata`):
a cell with a line starting `### BEGIN SOLUTION` is an nbgrader solution cell; a code cell
calling `exercises.check_...` is an autograded test cell (one point per check, locked);
the markdown cells after `## Exercises` (the tasks) are read-only; the first code cell
starting with `# Parameters` gets the tag `parameters`, so papermill can run a chapter with
other values.
"""
import os
import re
import sys
from pathlib import Path

import nbformat

MARK = "NBVAL_CHECK_OUTPUT"
BEGIN = "### BEGIN SOLUTION"
CHECK = re.compile(r"\bexercises\.check_\w+\s*\(")
EXERCISES = re.compile(r"^## Exercises\b", re.M)
PARAMETERS = "parameters"


def clean(nb) -> None:
    """Drop outputs of unchecked cells and volatile metadata; keep checked cells' text outputs."""
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code":
            continue
        if MARK in cell.source:
            cell.outputs = [o for o in cell.outputs if o.output_type in ("stream", "execute_result", "error")
                            and not (o.output_type == "stream" and o.name == "stderr")]
        else:
            cell.outputs, cell.execution_count = [], None
    exam_metadata(nb)


def _is_solution(cell) -> bool:
    return any(line.lstrip().startswith(BEGIN) for line in cell.source.splitlines())


def marker_problems(nb) -> list[str]:
    """Lines nbgrader would misread: it takes any line containing BEGIN/END SOLUTION as a marker,
    so prose that mentions them (or a marker not at the start of its line) breaks a release."""
    problems = []
    for index, cell in enumerate(nb.cells):
        for line in cell.source.splitlines():
            if ("BEGIN SOLUTION" in line or "END SOLUTION" in line) and not \
                    line.lstrip().startswith(("### BEGIN SOLUTION", "### END SOLUTION")):
                problems.append(f"cell {index}: {line.strip()!r} mentions a solution marker; nbgrader would "
                                f"cut it as a solution region: rephrase it (e.g. 'the solution lines')")
    return problems


def exam_metadata(nb) -> None:
    """Set each cell's nbgrader metadata and the `parameters` tag from its source (idempotent)."""
    problems = marker_problems(nb)
    if problems:
        raise ValueError("; ".join(problems))
    counts, in_exercises, params_found = {}, False, False
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        tags = [t for t in cell.metadata.get("tags", []) if t != PARAMETERS]
        if cell.cell_type == "code" and not params_found and cell.source.lstrip().startswith("# Parameters"):
            tags.append(PARAMETERS)
            params_found = True
        if tags:
            cell.metadata["tags"] = tags
        else:
            cell.metadata.pop("tags", None)
        if cell.cell_type == "markdown" and EXERCISES.search(cell.source):
            in_exercises = True
        if _is_solution(cell):
            kind, meta = "answer", {"solution": True, "grade": False, "locked": False}
            if cell.cell_type == "markdown":  # nbgrader grades written answers by hand
                meta.update(grade=True, points=1)
        elif cell.cell_type == "code" and CHECK.search(cell.source):
            kind, meta = "check", {"solution": False, "grade": True, "locked": True,
                                   "points": len(CHECK.findall(cell.source))}
        elif cell.cell_type == "markdown" and in_exercises:
            kind, meta = "task", {"solution": False, "grade": False, "locked": True}
        else:
            continue
        counts[kind] = counts.get(kind, 0) + 1
        cell.metadata["nbgrader"] = {**meta, "grade_id": f"{kind}-{counts[kind]}", "schema_version": 3}


def main(args: list[str]) -> None:
    execute = "--no-execute" not in args
    os.environ["COURSE_FAST"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    failed = []
    for path in (Path(a) for a in args if a != "--no-execute"):
        nb = nbformat.read(path, as_version=4)
        times = run(nb, path) if execute else {}
        try:
            clean(nb)
        except ValueError as err:  # a notebook nbgrader would misread: left as it was, the others go on
            print(f"{path}: not written: {err}")
            failed.append(path)
            continue
        nbformat.validate(nb)
        nbformat.write(nb, path)
        graded = [c.metadata["nbgrader"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
        print(f"{path}: {'executed in %.0f s; ' % sum(times.values()) if execute else ''}kept outputs of "
              f"{sum(MARK in c.source for c in nb.cells)} checked cell(s); "
              f"{len(graded)} autograded cell(s), {sum(m['points'] for m in graded)} point(s)")
        for index, seconds in sorted(times.items(), key=lambda item: -item[1])[:5]:
            print(f"  cell {index}: {seconds:.1f} s")
    if failed:
        sys.exit(f"{len(failed)} notebook(s) not written: {', '.join(map(str, failed))}")


def run(nb, path: Path) -> dict[int, float]:
    from nbclient import NotebookClient
    NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return cell_seconds(nb)


def cell_seconds(nb) -> dict[int, float]:
    """Seconds each code cell took, from the timestamps nbclient records (slowest first to fix)."""
    from datetime import datetime
    times = {}
    for index, cell in enumerate(nb.cells):
        stamps = cell.metadata.get("execution", {})
        if "iopub.execute_input" in stamps and "shell.execute_reply" in stamps:
            start, end = (datetime.fromisoformat(stamps[k].replace("Z", "+00:00"))
                          for k in ("iopub.execute_input", "shell.execute_reply"))
            times[index] = (end - start).total_seconds()
    return times


if __name__ == "__main__":
    main(sys.argv[1:])
