"""tools/train.py, the command that trains outside a notebook: a run killed mid-way and resumed ends
exactly as an uninterrupted one; torchrun with 2 processes gives what 1 process gives (CPU, gloo).

Small untrained torchvision models on 32-pixel noise images, one thread per process: the runs take
a few seconds each, most of it starting Python and importing torch. The runs that can run at the
same time do (each process uses one of the 2 cores).
"""
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import make_imagefolder
from course_utils import data, settings

ROOT = Path(__file__).resolve().parent.parent
COMMAND = [sys.executable, str(ROOT / "tools" / "train.py")]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
            str(ROOT / "tools" / "train.py")]
spec = importlib.util.spec_from_file_location("train_command", ROOT / "tools" / "train.py")
command = importlib.util.module_from_spec(spec)
spec.loader.exec_module(command)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_imagefolder(tmp_path_factory.mktemp("cmd") / "images", classes=("a", "b"), train=16, val=6)


def _env(tmp: Path) -> dict:
    return dict(os.environ, COURSE_THREADS="1", COURSE_DATA_DIR=str(tmp / "data"), CI="true", OMP_NUM_THREADS="1",
                PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _args(folder: Path, output: Path, *extra: str) -> list[str]:
    return ["--data", str(folder), "--no-pretrained", "--image-size", "32", "--batch-size", "8",
            "--output", str(output), *extra]


RESUMABLE = ("--model", "mobilenet_v3_small", "--strategy", "full", "--epochs", "4", "--lr", "0.01",
             "--lr-step-size", "2", "--lr-gamma", "0.5")       # BatchNorm, dropout, random crops: the generators matter


def _finish(process: subprocess.Popen) -> str:
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out
    return out


def _rows(output: Path) -> list[dict]:
    rows = json.loads((output / "history.json").read_text())["epochs"]
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


def _weights(output: Path) -> dict:
    return torch.load(output / "model.pt", map_location="cpu", weights_only=True)["state_dict"]


def test_resume_after_a_killed_run_gives_the_uninterrupted_result(folder, tmp_path):
    env = _env(tmp_path)
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    run = lambda out, *more: subprocess.Popen(COMMAND + _args(folder, out, *RESUMABLE, *more), env=env,  # noqa: E731
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    uninterrupted, victim = run(whole), run(killed)
    deadline = time.monotonic() + 240
    while not (killed / "history.json").is_file() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    done = len(torch.load(killed / "last.pt", weights_only=False)["history"]["epochs"])  # written before history.json
    assert 1 <= done < 4, f"the run was to be killed after its first epoch, not after {done}"
    assert not (killed / "model.pt").exists()

    parse = command.get_args_parser().parse_args
    with pytest.raises(SystemExit, match="pass --resume to continue it"):
        command.main(parse(_args(folder, killed, *RESUMABLE)))
    with pytest.raises(SystemExit, match="lr_gamma 0.5, now 0.1"):
        command.main(parse(_args(folder, killed, *RESUMABLE[:-1], "0.1", "--resume")))

    resumed = _finish(run(killed, "--resume"))
    assert f"Resuming {killed} after epoch {done} of 4" in resumed
    _finish(uninterrupted)
    assert _rows(killed) == _rows(whole) and len(_rows(whole)) == 4
    assert [r["lr"] for r in _rows(whole)] == [0.01, 0.01, 0.005, 0.005]
    assert len({r["train_loss"] for r in _rows(whole)}) == 4                  # every epoch changed the model
    a, b = _weights(killed), _weights(whole)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)   # bit for bit
    history_csv = (whole / "history.csv").read_text().splitlines()
    assert history_csv[0].startswith("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds") and len(history_csv) == 5


def test_torchrun_with_two_processes_gives_the_one_process_result(folder, tmp_path):
    """Cached features and a new head (float32): the head's weights agree to rounding (the two halves'
    mean gradients averaged instead of one mean), the accuracies exactly."""
    env = _env(tmp_path)
    extra = ("--model", "mnasnet0_5", "--strategy", "features", "--epochs", "3", "--lr", "0.05",
             "--precision", "float32")
    one, two = tmp_path / "one", tmp_path / "two"
    runs = [subprocess.Popen(launcher + _args(folder, out, *extra), env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for launcher, out in ((COMMAND, one), (TORCHRUN, two))]
    outs = [_finish(r) for r in runs]
    assert "2 process(es) x 1 thread(s) on cpu, global batch 8" in outs[1]
    assert outs[1].count("epoch 3/3") == 1                                  # rank 0 alone prints
    rows1, rows2 = _rows(one), _rows(two)
    assert [r["val_acc"] for r in rows1] == [r["val_acc"] for r in rows2]
    assert [r["train_acc"] for r in rows1] == [r["train_acc"] for r in rows2]
    assert [r["val_loss"] for r in rows1] == pytest.approx([r["val_loss"] for r in rows2], rel=1e-5)
    a, b = _weights(one), _weights(two)
    assert max((a[k].float() - b[k].float()).abs().max().item() for k in a) < 1e-5


def test_a_dataset_in_its_own_layout_is_pointed_to_the_converter(tmp_path):
    (tmp_path / "food-101" / "meta").mkdir(parents=True)
    (tmp_path / "food-101" / "images").mkdir()
    (tmp_path / "food-101" / "meta" / "train.txt").write_text("apple_pie/1\n")
    with pytest.raises(SystemExit, match="prepare_dataset.py food101"):
        command._find_classes(tmp_path / "food-101")
    (tmp_path / "kaggle" / "train").mkdir(parents=True)
    (tmp_path / "kaggle" / "train" / "cat.0.jpg").write_bytes(b"")
    with pytest.raises(SystemExit, match="has no val/ folder(.|\n)*prepare_dataset.py dogs-vs-cats"):
        command._find_classes(tmp_path / "kaggle")


def test_workers_setting(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv("COURSE_WORKERS", raising=False)
    assert settings.workers() is None and data.default_workers(cpu) == 0
    monkeypatch.setenv("COURSE_WORKERS", "6")
    assert settings.workers() == 6 and data.default_workers(cpu) == 6
    monkeypatch.setenv("COURSE_WORKERS", "many")
    with pytest.raises(ValueError, match="COURSE_WORKERS='many' must be a whole number"):
        data.default_workers(cpu)
