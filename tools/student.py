"""`make student`: student copies of the notebooks, with the exercise solutions taken out.

    python tools/student.py notebooks student

Every line from `### BEGIN SOLUTION` to `### END SOLUTION` (nbgrader's markers) is replaced
by a placeholder that raises NotImplementedError with a clear message; everything else is
kept as it is, and all outputs are cleared. The instructor notebooks in notebooks/ stay the
source of truth: edit those and generate the copies again.
"""
from __future__ import annotations

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
    return nb


def main(src: str = "notebooks", dst: str = "student") -> None:
    out = Path(dst)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(Path(src).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        copy = student_copy(nb)
        nbformat.validate(copy)
        nbformat.write(copy, out / path.name)
        removed = sum(marker_lines(c.source, BEGIN) for c in nb.cells)
        print(f"{out / path.name}: {removed} solution(s) removed")


if __name__ == "__main__":
    main(*sys.argv[1:])
