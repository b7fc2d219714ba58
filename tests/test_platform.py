"""Platform paths this machine does not take by itself: spawn-start platforms (macOS, Windows)."""
import multiprocessing

import torch

from course_utils import data


def test_workers_only_where_processes_fork(monkeypatch):
    """Spawned workers each import torch and receive the whole decoded image list (measured
    4.7 s to start two, against 0.17 s per epoch of work in the main process): none there."""
    cuda, mps, cpu = torch.device("cuda"), torch.device("mps"), torch.device("cpu")
    for method in ("spawn", "forkserver"):  # macOS (every MPS run) and Windows; Linux from Python 3.14
        monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False, m=method: m)
        assert data.default_workers(cuda) == data.default_workers(mps) == 0
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "fork")
    assert 1 <= data.default_workers(cuda) <= 4
    assert data.default_workers(cpu) == 0  # the model needs those cores
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: None)
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn", "fork"])
    assert data.default_workers(cuda) == 0  # the platform's default decides
