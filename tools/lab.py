"""`make lab`: the course in JupyterLab, opened on the student copies (solutions out).

    python tools/lab.py [--solutions] [jupyter lab options...]

Creates the student copies missing from student/ (tools/student.py: a copy that exists, edited
or not, is never overwritten) and starts JupyterLab with student/ as its root. `--solutions`
(`make lab-solutions`) opens notebooks/ instead: the instructor version, every solution inline.
The notebooks' kernel is the Python running this script, i.e. the course's environment.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
import student  # noqa: E402  (tools/student.py)


def command(argv: list[str]) -> tuple[list[str], Path]:
    """The jupyter lab command line for these arguments, and the folder it serves."""
    solutions = "--solutions" in argv
    args = [a for a in argv if a != "--solutions"]
    folder = ROOT / ("notebooks" if solutions else "student")
    if hasattr(os, "getuid") and os.getuid() == 0 and "--allow-root" not in args:
        args.append("--allow-root")  # lab containers run as root; Jupyter refuses otherwise
    return [sys.executable, "-m", "jupyterlab", f"--notebook-dir={folder}", *args], folder


def kernel_environment() -> dict[str, str]:
    """Make this environment's Python the notebooks' "python3" kernel, even where the user has
    registered another one: its kernelspec, made if missing, comes first on JUPYTER_PATH."""
    share = Path(sys.prefix) / "share" / "jupyter"
    if not (share / "kernels" / "python3" / "kernel.json").is_file():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3",
                        "--display-name", "Python 3 (course)"], check=True, stdout=subprocess.DEVNULL)
    paths = [str(share)] + [p for p in os.environ.get("JUPYTER_PATH", "").split(os.pathsep) if p]
    return dict(os.environ, JUPYTER_PATH=os.pathsep.join(dict.fromkeys(paths)))


def lab_settings() -> None:
    """Install the course's JupyterLab settings (lab/overrides.json: no "Jupyter news" pop-up, no
    update check) where this environment's JupyterLab reads them."""
    target = Path(sys.prefix) / "share" / "jupyter" / "lab" / "settings" / "overrides.json"
    source = ROOT / "lab" / "overrides.json"
    if not target.is_file() or target.read_bytes() != source.read_bytes():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())


def main(argv: list[str]) -> int:
    cmd, folder = command(argv)
    lab_settings()
    if folder.name == "student":
        student.main(ROOT / "notebooks", folder)
        print("Solutions: `make lab-solutions` (or `python tools/lab.py --solutions`) opens notebooks/.")
    else:
        print(f"Opening {folder}: the instructor version, with every solution inline.")
    env = kernel_environment()
    sys.stdout.flush()
    if os.name == "posix":
        os.execve(cmd[0], cmd, env)  # the server replaces this process: Ctrl-C and kill reach it
    return subprocess.call(cmd, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
