"""Stop before the course's environment is created if this Python cannot run the course.

    python3 tools/check_python.py      (`make` runs it first, with the Python it would use)

Exit status 0: fine. Otherwise one message on stderr saying what to install. Written so that
old Pythons can still parse it (no f-strings): it must speak, not crash, on the Python it rejects.
"""
import sys

NEED = (3, 11)


def problem(version=None, has_venv=None):
    """What stops this Python from creating the course's environment, or None."""
    version = tuple(sys.version_info[:2]) if version is None else tuple(version)
    if version < NEED:
        return ("The course needs Python %d.%d or newer, but %s is Python %d.%d (its pinned numpy, "
                "pandas, matplotlib and PyTorch need %d.%d). Nothing was created. Install a newer "
                "Python: Ubuntu/Debian `sudo apt install python3.11 python3.11-venv` (on Ubuntu 22.04 "
                "from the deadsnakes PPA), macOS `brew install python@3.12` or python.org, Windows "
                "python.org or `winget install Python.Python.3.12`; then run "
                "`make lab PYTHON=python3.11` (or the newer version's name)."
                % (NEED + (sys.executable,) + version + NEED))
    if has_venv is None:
        try:
            import ensurepip  # noqa: F401  (Debian and Ubuntu ship venv without it)
            import venv  # noqa: F401
            has_venv = True
        except ImportError:
            has_venv = False
    if not has_venv:
        return ("%s cannot create virtual environments (its venv/ensurepip module is missing). "
                "Nothing was created. On Debian/Ubuntu: `sudo apt install python%d.%d-venv`, then run "
                "make again." % ((sys.executable,) + version))
    return None


if __name__ == "__main__":
    message = problem()
    if message:
        sys.stderr.write(message + "\n")
        sys.exit(1)
