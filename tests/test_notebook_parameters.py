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


def literal_assignments(source: str) -> list[str]:
    """The statements of a Parameters cell that are not `NAME = <literal>` (numbers, strings, tuples,
    lists, dicts, None, booleans): anything computed belongs in the cell below it."""
    bad = []
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.Assign) and all(isinstance(t, (ast.Name, ast.Tuple)) for t in node.targets)):
            bad.append(ast.unparse(node))
            continue
        try:
            ast.literal_eval(node.value)
        except ValueError:
            bad.append(ast.unparse(node))
    return bad


def test_literal_assignments_are_told_apart():
    assert literal_assignments("A = 1\nB, C = 0.1, 'x'\nD = [(0, 2), (None, 1)]\nE = dict(a=1)") == ["E = dict(a=1)"]
    assert literal_assignments("import torch\nF = settings.epochs(full=5, fast=3)") == [
        "import torch", "F = settings.epochs(full=5, fast=3)"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_holds_only_literal_values(path):
    """What a student edits, and what papermill's -p replaces: at most 10 lines, literals only, so that
    every value derived from a parameter (fast mode's smaller sizes among them) follows a change to it."""
    source = parameters_cell(nbformat.read(path, as_version=4)).source
    lines = [line for line in source.splitlines() if line.strip()]
    assert len(lines) <= 10, f"{path.name}: the Parameters cell has {len(lines)} lines (at most 10)"
    assert not literal_assignments(source), (
        f"{path.name}: the Parameters cell computes or imports {literal_assignments(source)}: move it to the cell below")
