"""`make student`: student copies of the notebooks, with the exercise solutions taken out.

    python tools/student.py notebooks student

Every line from `### BEGIN SOLUTION` to `### END SOLUTION` (nbgrader's markers) is replaced
by a placeholder that raises NotImplementedError with a clear message; everything else is
kept as it is, and all outputs are cleared. Cells nbgrader locks (the checks, the tasks) are
also read-only in JupyterLab. Needs only nbformat, not nbgrader.

student/ is the students' own work (`make lab` opens it): only missing copies are written; a
copy that exists is never overwritten. Each copy records a fingerprint of what it was made
from; if the instructor version has changed since, one line says so and how to get a fresh
copy (move the old one away and run again). The instructor notebooks in notebooks/ stay the
source of truth.
"""
from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = 'raise NotImplementedError("Exercise: replace this line with your solution, then run the check below.")'
_BLOCK = re.compile(rf"^([ \t]*){re.escape(BEGIN)}[^\n]*\n.*?^[ \t]*{re.escape(END)}[^\n]*(\n|$)",
                    re.MULTILINE | re.DOTALL)


def marker_lines(source: str, marker: str) -> int:
    """How many lines of `source` start with `marker` (a mention inside a sentence doesn't count)."""
    return sum(line.lstrip().startswith(marker) for line in source.splitlines())


def strip_solutions(source: str, markdown: bool = False) -> str:
    """Replace each solution block of a cell's source by the placeholder (same indentation)."""
    if marker_lines(source, BEGIN) != marker_lines(source, END):
        raise ValueError(f"unbalanced solution markers in:\n{source}")

    def placeholder(match):
        indent = match.group(1)
        text = "YOUR ANSWER HERE" if markdown else f"# YOUR CODE HERE\n{indent}{PLACEHOLDER}"
        return f"{indent}{text}{match.group(2)}"
    return _BLOCK.sub(placeholder, source)


def student_copy(nb):
    """The student version of a notebook (a new object; `nb` is left unchanged)."""
    nb = nbformat.from_dict(nb)
    for cell in nb.cells:
        cell.source = strip_solutions(cell.source, markdown=cell.cell_type == "markdown")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.metadata.get("nbgrader", {}).get("locked"):
            cell.metadata.update(editable=False, deletable=False)
    nb.metadata["course"] = {"made_from": fingerprint(nb)}
    return nb


def fingerprint(nb) -> str:
    """A short hash of a notebook's cells (type and source): what a student copy was made from."""
    cells = [[c.cell_type, c.source] for c in nb.cells]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()[:16]


def main(src: str = "notebooks", dst: str = "student") -> None:
    """Write the missing student copies of src's chapters into dst; keep every existing one."""
    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    kept = []
    for path in sorted(Path(src).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        copy = student_copy(nb)
        nbformat.validate(copy)
        target = out / path.name
        if not target.exists():
            nbformat.write(copy, target)
            removed = sum(marker_lines(c.source, BEGIN) for c in nb.cells)
            print(f"{target}: created, {removed} solution(s) removed")
            continue
        kept.append(target.name)
        made_from = nbformat.read(target, as_version=4).metadata.get("course", {}).get("made_from")
        if made_from != copy.metadata["course"]["made_from"]:
            print(f"{target}: the course's version of this chapter has changed since your copy was made; "
                  f"your copy is kept. For a fresh one, move yours away (e.g. to "
                  f"{target.with_suffix('.old.ipynb')}) and run this again.")
    if kept:
        print(f"{out}: {len(kept)} existing cop{'y' if len(kept) == 1 else 'ies'} kept as they are")


if __name__ == "__main__":
    main(*sys.argv[1:])
