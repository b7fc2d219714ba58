"""Each chapter's Parameters cell is papermill's `parameters` cell, and every parameter it sets is
read by a later cell: a value changed there (or injected by papermill) is the one the chapter uses."""
import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def parameters_cell(nb):
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one code cell tagged `parameters`"
    return cells[0]


def assigned_names(source: str) -> set[str]:
    """Upper-case names the cell assigns (its parameters), e.g. MODEL, EPOCHS."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
        for target in targets:
            for leaf in ast.walk(target):
                if isinstance(leaf, ast.Name) and leaf.id.isupper():
                    names.add(leaf.id)
    return names


def used_names(source: str) -> set[str]:
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    return {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def test_parameter_names_are_found():
    assert assigned_names("A = 1\nB, C = 2, 3\nlower = 4\nD: int = 5") == {"A", "B", "C", "D"}
    assert used_names("print(A)\nx = B + 1\n%matplotlib inline") == {"print", "A", "B"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_parameter_is_used_below(path):
    nb = nbformat.read(path, as_version=4)
    cell = parameters_cell(nb)
    assert cell.source.lstrip().startswith("# Parameters")
    below = nb.cells[nb.cells.index(cell) + 1:]
    used = set().union(*(used_names(c.source) for c in below if c.cell_type == "code"))
    unused = sorted(assigned_names(cell.source) - used)
    assert not unused, f"{path.name}: parameter(s) {unused} are set but no later cell reads them"
