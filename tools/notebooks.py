"""Keep committed notebooks clean: execute them in fast mode and store only checked outputs.

    python tools/notebooks.py notebooks/01_model_zoo.ipynb [...]

Every code cell runs (as CI does). Afterwards only the cells marked `# NBVAL_CHECK_OUTPUT`
keep their outputs, which become the reference that `make test` (nbval --nbval-lax)
compares; every other cell is cleared, so diffs stay small. Checked cells must print
deterministic text (no timings, no memory addresses).
"""
import os
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

MARK = "NBVAL_CHECK_OUTPUT"


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


def main(paths: list[str]) -> None:
    os.environ["COURSE_FAST"] = "1"
    os.environ.setdefault("MPLBACKEND", "Agg")
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=True,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        times = cell_seconds(nb)
        clean(nb)
        nbformat.write(nb, path)
        print(f"{path}: executed in {sum(times.values()):.0f} s; kept outputs of "
              f"{sum(MARK in c.source for c in nb.cells)} checked cell(s)")
        for index, seconds in sorted(times.items(), key=lambda item: -item[1])[:5]:
            print(f"  cell {index}: {seconds:.1f} s")


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
