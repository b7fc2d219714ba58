"""The course's setup: pinned dependencies, the CI entry point, and clean committed notebooks."""
import copy
import importlib.metadata
import importlib.util
import json
import re
import tomllib
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
MARK = "NBVAL_CHECK_OUTPUT"
_spec = importlib.util.spec_from_file_location("course_tools_notebooks", ROOT / "tools" / "notebooks.py")
TOOL = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(TOOL)


# --- dependencies: ranges in pyproject.toml, exact pins in constraints.txt and environment.yml ----

def pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def requirements() -> list[str]:
    """Every requirement of the package and of its extras."""
    project = pyproject()
    return project["dependencies"] + [r for extra in project["optional-dependencies"].values() for r in extra]


def constraint_pins() -> list[str]:
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    return [line.split("#", 1)[0].strip() for line in lines if line.split("#", 1)[0].strip()]


def environment_pip_pins(text: str) -> list[str]:
    """The items of the `- pip:` list in environment.yml (a small parser: no PyYAML needed)."""
    pins, indent = [], None
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        depth = len(stripped) - len(stripped.lstrip())
        if indent is None:
            if stripped.strip() == "- pip:":
                indent = depth
            continue
        if depth <= indent:
            break
        assert stripped.strip().startswith("- "), f"unexpected line in the pip section: {line!r}"
        pins.append(stripped.strip()[2:].strip())
    assert indent is not None, "environment.yml has no `- pip:` section"
    return pins


def split_pin(pin: str) -> tuple[str, str]:
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*==\s*([A-Za-z0-9_.+\-]+)", pin)
    assert m, f"{pin!r} is not an exact pin (name==version)"
    return canonical(m[1]), m[2]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_environment_parser_reads_pip_section():
    text = "name: x\ndependencies:\n  - python=3.11\n  - pip\n  - pip:\n      - a==1  # c\n\n      - b==2\nother: 1\n"
    assert environment_pip_pins(text) == ["a==1", "b==2"]


def test_environment_yml_pins_equal_constraints():
    env = environment_pip_pins((ROOT / "environment.yml").read_text())
    pins = constraint_pins()
    assert env == pins
    assert len({split_pin(p)[0] for p in pins}) == len(pins)  # no package twice


def test_package_requirements_are_ranges_each_pinned_inside_its_range():
    """pyproject.toml gives ranges (an install into Colab or a conda env keeps the host's
    versions where they fit); constraints.txt pins every one of them exactly, inside the range."""
    from packaging.requirements import Requirement
    pins = dict(split_pin(p) for p in constraint_pins())
    for text in requirements():
        req = Requirement(text)
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{text}: a range, not a pin"
        name = canonical(req.name)
        assert name in pins, f"{req.name} has no pin in constraints.txt"
        assert req.specifier.contains(pins[name], prereleases=True), f"{pins[name]} is outside {text}"
    assert set(pins) == {canonical(Requirement(t).name) for t in requirements()}, "a pin for nothing required"


def test_test_and_server_tools_are_extras_not_dependencies():
    from packaging.requirements import Requirement
    core = {canonical(Requirement(t).name) for t in pyproject()["dependencies"]}
    extras = pyproject()["optional-dependencies"]
    assert not core & {"pytest", "nbval", "jupyterlab", "nbgrader", "ipykernel"}
    assert {"lab", "test", "instructor"} <= set(extras)
    assert "nbgrader" in {canonical(Requirement(t).name) for t in extras["instructor"]}


# Extras a command installs the first time it runs (`make lab` installs only `lab`).
ON_FIRST_USE = {"test": "test", "instructor": "nbgrader", "book": "book", "browser": "browser-test", "papermill": "chapter"}


def test_make_installs_with_the_constraints_and_every_extra():
    makefile = (ROOT / "Makefile").read_text()
    extras = re.search(r"^EXTRAS\s*:?=\s*(\S+)", makefile, re.M)[1].split(",")
    assert extras == ["lab"], "a student's environment is the course and JupyterLab"
    assert sorted(extras + list(ON_FIRST_USE)) == sorted(pyproject()["optional-dependencies"])
    assert re.search(r"pip install -c constraints\.txt -e \"\.\[\$\(EXTRAS\)\]\"", makefile)
    assert re.search(r"pip install -c constraints\.txt -e \"\.\[\$\*\]\"", makefile)
    assert re.search(r"pip install -c constraints\.txt -e \"\.\[browser\]\"", makefile)


def test_torch_and_torchvision_pins():
    pins = dict(split_pin(p) for p in constraint_pins())
    assert pins["torch"] == "2.14.1"
    assert pins["torchvision"] == "0.29.1"


def test_python_version_is_311_everywhere():
    requires = pyproject()["requires-python"]
    assert requires == ">=3.11"
    m = re.search(r"^\s*-\s*python=(\d+)\.(\d+)", (ROOT / "environment.yml").read_text(), re.M)
    assert m, "environment.yml pins no python version"
    assert (int(m[1]), int(m[2])) >= (3, 11)
    spec = importlib.util.spec_from_file_location("check_python", ROOT / "tools" / "check_python.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.NEED == (3, 11)
    assert "3.11" in (ROOT / "README.md").read_text() and "3.10+" not in (ROOT / "README.md").read_text()


def test_installed_versions_match_pins():
    """The environment the tests run in is the one the course pins (local labels like +cpu aside).
    The `browser` extra (Playwright) is installed only by `make browser-test`, after `make test`, and
    the `book` extra (Sphinx) by `make test` and `make book`: theirs may be missing elsewhere."""
    from packaging.requirements import Requirement
    extras = pyproject()["optional-dependencies"]
    browser_only = {canonical(Requirement(t).name) for t in extras["browser"] + extras["book"]}
    wrong = {}
    for pin in constraint_pins():
        name, version = split_pin(pin)
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            assert name in browser_only, f"{name} is pinned but not installed"
            continue
        if installed.split("+")[0] != version:
            wrong[name] = (version, installed)
    assert not wrong, f"pinned vs installed: {wrong}"


# --- entry points ----------------------------------------------------------------------------------

def test_ci_runs_make_test():
    lines = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines()]
    commands = [l for l in lines if l and not l.startswith("#")]
    assert "make test" in commands
    assert any("COURSE_DATA_MIRROR" in l for l in commands)


def test_make_test_runs_unit_tests_and_notebooks_in_fast_mode():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe, "Makefile has no test target"
    body = recipe[1]
    assert "COURSE_FAST=1" in body and "tests" in body and "notebooks" in body and "--nbval-lax" in body


# --- notebooks -------------------------------------------------------------------------------------

def notebook_problems(nb) -> list[str]:
    """Where a notebook breaks the course convention (empty list: clean)."""
    problems = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        if MARK in cell.source:
            if cell.get("execution_count") is None:
                problems.append(f"cell {i}: checked cell has no stored execution_count")
            if not cell.get("outputs"):
                problems.append(f"cell {i}: checked cell has no stored output (nbval would check nothing)")
        else:
            if cell.get("outputs"):
                problems.append(f"cell {i}: unchecked cell has outputs")
            if cell.get("execution_count") is not None:
                problems.append(f"cell {i}: unchecked cell has execution_count {cell.execution_count}")
    params = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("# Parameters")]
    if not params:
        problems.append("no code cell starting with `# Parameters`")
    elif not any("COURSE_DATASET" in c.source for c in params):
        problems.append("the `# Parameters` cell does not mention COURSE_DATASET")
    if not any(c.cell_type == "markdown" and re.search(r"^## Exercises\b", c.source, re.M) for c in nb.cells):
        problems.append("no markdown heading `## Exercises`")
    derived = copy.deepcopy(nb)
    try:
        TOOL.exam_metadata(derived)
    except ValueError as err:
        problems.append(str(err))
    else:
        for i, (cell, want) in enumerate(zip(nb.cells, derived.cells)):
            if (cell.metadata.get("nbgrader"), cell.metadata.get("tags")) != \
                    (want.metadata.get("nbgrader"), want.metadata.get("tags")):
                problems.append(f"cell {i}: nbgrader metadata or tags differ from what tools/notebooks.py derives")
    return problems


def _notebook(*cells):
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def _clean_example():
    out = nbformat.v4.new_output("stream", name="stdout", text="2 classes\n")
    nb = _notebook(
        nbformat.v4.new_markdown_cell("# 01 Model zoo"),
        nbformat.v4.new_code_cell("# Parameters\nimport os\ndataset = os.environ.get('COURSE_DATASET')"),
        nbformat.v4.new_code_cell(f"# {MARK}\nprint('2 classes')", execution_count=3, outputs=[out]),
        nbformat.v4.new_markdown_cell("## Exercises\n1. Try another model."),
        nbformat.v4.new_code_cell("answer = ..."),
    )
    TOOL.exam_metadata(nb)
    return nb


def test_notebook_checker_accepts_a_clean_notebook():
    assert notebook_problems(_clean_example()) == []


def test_notebook_checker_finds_each_problem():
    nb = _clean_example()
    nb.cells[4].execution_count = 7
    nb.cells[4].outputs = [nbformat.v4.new_output("stream", name="stdout", text="...")]
    nb.cells[2].outputs = []
    nb.cells[2].execution_count = None
    problems = notebook_problems(nb)
    assert "cell 4: unchecked cell has outputs" in problems
    assert "cell 4: unchecked cell has execution_count 7" in problems
    assert any(p.startswith("cell 2:") and "execution_count" in p for p in problems)
    assert any(p.startswith("cell 2:") and "no stored output" in p for p in problems)
    nb = _clean_example()
    nb.cells[1].source = "# Parameters\nepochs = 3"
    nb.cells[3].source = "### Exercises"
    assert notebook_problems(nb) == ["the `# Parameters` cell does not mention COURSE_DATASET",
                                     "no markdown heading `## Exercises`",
                                     "cell 3: nbgrader metadata or tags differ from what tools/notebooks.py derives"]
    nb.cells[1].source = "epochs = 3"
    assert "no code cell starting with `# Parameters`" in notebook_problems(nb)
    assert "cell 1: nbgrader metadata or tags differ from what tools/notebooks.py derives" in notebook_problems(nb)
    nb = _clean_example()
    nb.cells[3].source += "\nthe lines between `### BEGIN SOLUTION` and `### END SOLUTION` are removed"
    assert any(p.startswith("cell 3:") and "solution marker" in p for p in notebook_problems(nb))


def test_tools_notebooks_clean_produces_a_clean_notebook():
    """tools/notebooks.py's clean() and this file's checker agree on the convention."""
    tool = TOOL
    assert tool.MARK == MARK
    nb = _clean_example()
    for i, cell in enumerate(nb.cells):  # as if just executed
        if cell.cell_type == "code":
            cell.execution_count = i
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"{i}\n"),
                            nbformat.v4.new_output("stream", name="stderr", text="noise\n")]
    assert notebook_problems(nb) != []
    tool.clean(nb)
    assert notebook_problems(nb) == []
    checked = nb.cells[2]
    assert [o.name for o in checked.outputs] == ["stdout"]  # stderr dropped, stdout kept


def notebook_paths() -> list[Path]:
    return sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def test_notebooks_folder_exists():
    assert NOTEBOOKS.is_dir()


def test_chapter_notebooks_are_named_and_numbered():
    """Chapter notebooks are notebooks/NN_name.ipynb, numbers unique; anything in notebooks/
    that starts with a digit must follow that naming (so the checks below find every chapter)."""
    numbered = [p for p in NOTEBOOKS.iterdir() if p.name[:1].isdigit()]
    bad = [p.name for p in numbered if not re.fullmatch(r"\d\d_[a-z0-9]+(?:_[a-z0-9]+)*\.ipynb", p.name)]
    assert not bad, f"not named NN_name.ipynb: {bad}"
    numbers = [p.name[:2] for p in numbered]
    assert len(numbers) == len(set(numbers)), f"chapter numbers used twice: {sorted(numbers)}"
    nested = [str(p.relative_to(NOTEBOOKS)) for p in notebook_paths()
              if p.parent != NOTEBOOKS and p.name[:1].isdigit()]
    assert not nested, f"chapter notebooks belong directly in notebooks/: {nested}"


@pytest.mark.parametrize("path", notebook_paths(), ids=lambda p: str(p.relative_to(NOTEBOOKS)))
def test_notebook_is_clean(path):
    json.loads(path.read_text())  # valid JSON first, for a clear error
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    problems = notebook_problems(nb)
    assert not problems, f"{path.name}: " + "; ".join(problems) + \
        f" (run `python tools/notebooks.py {path.relative_to(ROOT)}`)"
