"""`make`'s install step, run for real with stand-in interpreters (no download): the Python
version is checked before anything is created, and a half-made environment is never reused."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def make(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True,
                          text=True, timeout=120, env=dict(os.environ, **(env or {})))


def fake_python(folder: Path, version: str = "3.10", venv_python: str | None = None) -> Path:
    """A stand-in interpreter: this real Python, reporting `version` as its own (via a
    sitecustomize on PYTHONPATH); with `venv_python`, `-m venv DIR` makes DIR/bin/python that script."""
    site = folder / "site"
    site.mkdir(parents=True)
    major, minor = map(int, version.split("."))
    (site / "sitecustomize.py").write_text(f"import sys\nsys.version_info = ({major}, {minor}, 12, 'final', 0)\n")
    script = folder / f"python{version}"
    venv = ""
    if venv_python:
        venv = (f'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; '
                f"printf '%s\\n' '#!/bin/sh' '{venv_python}' > \"$3/bin/python\"; chmod +x \"$3/bin/python\"; exit 0; fi\n")
    script.write_text(f"#!/bin/sh\n{venv}PYTHONPATH={site} exec {sys.executable} \"$@\"\n")
    script.chmod(0o755)
    return script


def test_the_stand_in_reports_its_version(tmp_path):
    fake = fake_python(tmp_path, "3.10")
    out = subprocess.run([fake, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
    assert out.stdout.strip() == "(3, 10)"


def test_python_310_stops_before_anything_is_created(tmp_path):
    venv = tmp_path / "venv"
    result = make(f"VENV={venv}", f"PYTHON={fake_python(tmp_path, '3.10')}", f"{venv}/.installed")
    assert result.returncode != 0
    assert "needs Python 3.11 or newer" in result.stderr and "is Python 3.10" in result.stderr
    assert "apt install python3.11" in result.stderr and "Nothing was created" in result.stderr
    assert not venv.exists()


def test_a_python_without_venv_support_is_named(tmp_path):
    import importlib.util
    spec = importlib.util.spec_from_file_location("check_python", ROOT / "tools" / "check_python.py")
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.problem((3, 12)) is None
    assert "python3.12-venv" in check.problem((3, 12), has_venv=False)
    assert "3.9" in check.problem((3, 9))


def test_check_parses_on_old_pythons():
    """The check must speak on the Python it rejects: no syntax newer than 3.0 (no f-strings)."""
    source = (ROOT / "tools" / "check_python.py").read_text()
    assert 'f"' not in source and "f'" not in source and ":=" not in source


def test_a_failed_install_is_never_trusted(tmp_path):
    """An install that fails half-way (a resolver error here) leaves no completion stamp; the
    next run removes that environment and starts again instead of reusing it."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "left-by-a-killed-run").write_text("")
    failing_pip = 'echo "ERROR: ResolutionImpossible (simulated)" >&2; exit 1'
    fake = fake_python(tmp_path, "3.11", venv_python=failing_pip)
    for attempt in range(2):
        result = make(f"VENV={venv}", f"PYTHON={fake}", f"{venv}/.installed")
        assert result.returncode != 0 and "ResolutionImpossible" in result.stderr
        assert f"Removing {venv}: an earlier install did not finish" in result.stdout, (attempt, result.stdout)
        assert not (venv / "left-by-a-killed-run").exists() and not (venv / ".installed").exists()


def _install_commands(*args) -> list[str]:
    result = make("-n", "-B", "VENV=/nonexistent/venv", *args, "/nonexistent/venv/.installed")
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if "pip install" in line]


def test_default_install_uses_the_constraints_and_shows_progress():
    commands = _install_commands()
    assert any('pip install -c constraints.txt -e ".[lab]"' in c for c in commands)
    assert not any("--quiet" in c or " -q " in c for c in commands), "the big install must show progress"
    assert not any("download.pytorch.org" in c for c in commands)


@pytest.mark.parametrize("target, extras", [("lab", ["lab"]), ("student", ["lab"]),
                                            ("test", ["lab", "test", "instructor", "book"]),  # tests/test_book.py builds
                                            ("nbgrader", ["lab", "test", "instructor"]),
                                            ("book", ["lab", "book"]), ("browser-test", ["lab", "browser"])])
def test_each_command_installs_the_extras_it_needs(target, extras):
    """`make lab` installs the course and JupyterLab only (no pytest, nbval or nbgrader in a
    student's JupyterLab); the other commands add their extras the first time they run."""
    result = make("-n", "-B", "VENV=/nonexistent/venv", target)
    assert result.returncode == 0, result.stderr
    installed = re.findall(r'pip install -c constraints\.txt -e "\.\[([a-z,]+)\]"', result.stdout)
    assert sorted(e for group in installed for e in group.split(",")) == sorted(extras), result.stdout


def test_torch_cpu_is_one_switch():
    commands = _install_commands("TORCH=cpu")
    torch_line = [c for c in commands if "download.pytorch.org" in c]
    assert torch_line == ["/nonexistent/venv/bin/python -m pip install -c constraints.txt "
                          "--extra-index-url https://download.pytorch.org/whl/cpu torch torchvision"]
    assert commands.index(torch_line[0]) < next(i for i, c in enumerate(commands) if "-e " in c)


def test_unknown_torch_choice_is_refused_before_anything_is_created(tmp_path):
    venv = tmp_path / "venv"
    result = make(f"VENV={venv}", "TORCH=rocm", f"{venv}/.installed")
    assert result.returncode != 0 and "TORCH=rocm is not understood" in result.stdout
    assert not venv.exists()


@pytest.mark.parametrize("target, expect", [("lab", "tools/lab.py --no-browser --port=8899"),
                                            ("lab-solutions", "tools/lab.py --solutions --no-browser --port=8899")])
def test_lab_targets_pass_lab_args(target, expect):
    result = make("-n", target, "LAB_ARGS=--no-browser --port=8899")
    assert result.returncode == 0 and expect in result.stdout


def test_make_clean_keeps_the_students_work():
    result = make("-n", "clean")
    assert "rm -rf .venv" in result.stdout and "student" not in result.stdout and "data" not in result.stdout


def test_an_installed_package_keeps_its_data_out_of_site_packages(tmp_path):
    """`pip install .` (Colab, JupyterHub): the package has no source checkout around it, so the
    data goes to the per-user cache, and the checksum manifest ships with it."""
    import shutil
    source, target = tmp_path / "source", tmp_path / "site-packages"  # a copy: no build/ left in the repo
    shutil.copytree(ROOT / "course_utils", source / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(source)], check=True, capture_output=True, timeout=300)
    assert (target / "course_utils" / "hymenoptera_data.sha256").is_file()
    env = {k: v for k, v in os.environ.items() if k != "COURSE_DATA_DIR"}
    env.update(PYTHONPATH=str(target), XDG_CACHE_HOME=str(tmp_path / "cache"))
    code = "import course_utils; from course_utils import settings; print(course_utils.__file__); print(settings.data_dir())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    package, data_dir = out.stdout.split()
    assert Path(package).is_relative_to(target)
    assert Path(data_dir) == tmp_path / "cache" / "transfer-learning-course"
