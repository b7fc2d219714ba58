"""settings: environment flags, device choice, threads, fast/full mode, seeds."""
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils import settings


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "on", "Yes"])
def test_flag_true(monkeypatch, raw):
    monkeypatch.setenv("COURSE_TEST_FLAG", raw)
    assert settings._flag("COURSE_TEST_FLAG", default=False) is True


@pytest.mark.parametrize("raw", ["0", "false", "False", " no", "off", "", "  "])
def test_flag_false(monkeypatch, raw):
    monkeypatch.setenv("COURSE_TEST_FLAG", raw)
    assert settings._flag("COURSE_TEST_FLAG", default=True) is False


@pytest.mark.parametrize("default", [True, False])
def test_flag_unset_gives_default(monkeypatch, default):
    monkeypatch.delenv("COURSE_TEST_FLAG", raising=False)
    assert settings._flag("COURSE_TEST_FLAG", default=default) is default


@pytest.mark.parametrize("raw", ["maybe", "2", "tru", "y e s"])
def test_flag_invalid_names_the_variable(monkeypatch, raw):
    monkeypatch.setenv("COURSE_TEST_FLAG", raw)
    with pytest.raises(ValueError, match="COURSE_TEST_FLAG") as err:
        settings._flag("COURSE_TEST_FLAG")
    assert repr(raw) in str(err.value)


def test_path_expands_user_and_defaults(monkeypatch):
    monkeypatch.setenv("COURSE_TEST_PATH", "~/somewhere")
    assert settings._path("COURSE_TEST_PATH") == Path.home() / "somewhere"
    monkeypatch.setenv("COURSE_TEST_PATH", "  ")
    assert settings._path("COURSE_TEST_PATH", Path("/default")) == Path("/default")
    monkeypatch.delenv("COURSE_TEST_PATH")
    assert settings._path("COURSE_TEST_PATH") is None


def test_pick_device_cpu(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert settings.pick_device("cpu") == torch.device("cpu")
    assert settings.pick_device(" CPU ") == torch.device("cpu")


def test_pick_device_from_environment(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    assert settings.pick_device() == torch.device("cpu")
    monkeypatch.setenv("COURSE_DEVICE", "quantum")
    with pytest.raises(ValueError, match="quantum"):
        settings.pick_device()


def test_pick_device_default_without_accelerator(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has an accelerator")
    assert settings.pick_device() == torch.device("cpu")


@pytest.mark.parametrize("name", ["cuda", "cuda:0", "mps"])
def test_pick_device_absent_accelerator_is_an_error(monkeypatch, name):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    kind = name.split(":")[0]
    if {"cuda": torch.cuda.is_available, "mps": torch.backends.mps.is_available}[kind]():
        pytest.skip(f"{kind} is available here")
    with pytest.raises(RuntimeError, match="not available") as err:
        settings.pick_device(name)
    assert "cpu" in str(err.value)  # says what is available instead


def test_pick_device_unknown_name():
    with pytest.raises(ValueError, match="Unknown device 'tpu'"):
        settings.pick_device("tpu")


def test_set_threads_explicit(restore_threads):
    assert settings.set_threads(1) == 1
    assert torch.get_num_threads() == 1


def test_set_threads_from_environment(monkeypatch, restore_threads):
    monkeypatch.setenv("COURSE_THREADS", "1")
    assert settings.set_threads() == 1
    assert torch.get_num_threads() == 1


def test_set_threads_default_is_usable_cores(monkeypatch, restore_threads):
    monkeypatch.delenv("COURSE_THREADS", raising=False)
    import os
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert settings.set_threads() == expected == torch.get_num_threads()


@pytest.mark.parametrize("raw", ["abc", "0", "-2", "1.5", "two"])
def test_set_threads_invalid_environment(monkeypatch, restore_threads, raw):
    monkeypatch.setenv("COURSE_THREADS", raw)
    with pytest.raises(ValueError, match="COURSE_THREADS"):
        settings.set_threads()


def test_fast_mode_shrinks_sizes_and_is_read_when_used(monkeypatch):
    monkeypatch.setenv("COURSE_FAST", "1")   # as `%env COURSE_FAST=1` after the imports
    assert settings.fast() is True
    assert settings.epochs(25) == 2
    assert settings.epochs(25, fast=3) == 3 == settings.count(6, 3)
    assert settings.images_per_class() == settings.FAST_IMAGES_PER_CLASS
    assert settings.image_size(224) == settings.FAST_IMAGE_SIZE and settings.image_size(96) == 96
    monkeypatch.setenv("COURSE_FAST", "0")
    assert settings.fast() is False
    assert settings.epochs(25) == 25
    assert settings.epochs(25, fast=3) == 25 == settings.count(25, 3)
    assert settings.images_per_class() is None and settings.image_size(224) == 224


def test_paths_are_read_when_used(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_DATASET", str(tmp_path))
    monkeypatch.setenv("COURSE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    assert settings.dataset() == tmp_path and settings.mirror() == tmp_path / "mirror"
    assert settings.data_dir() == tmp_path / "data"
    monkeypatch.delenv("COURSE_DATASET")
    monkeypatch.delenv("COURSE_DATA_MIRROR")
    assert settings.dataset() is None and settings.mirror() is None  # no CI path as a default


def test_data_dir_default_never_in_site_packages(monkeypatch, tmp_path):
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    assert settings.data_dir() == settings.REPO_ROOT / "data"  # a writable source checkout
    monkeypatch.setattr(settings, "REPO_ROOT", tmp_path / "site-packages")  # an installed package
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert settings.data_dir() == tmp_path / "cache" / "transfer-learning-course"


def test_progress_bars_off_in_ci(monkeypatch):
    monkeypatch.setenv("CI", "true")
    assert settings.progress() is False
    monkeypatch.delenv("CI")
    assert settings.progress() is True


def test_seed_everything_repeats_all_generators():
    def draw():
        return random.random(), np.random.rand(), torch.rand(5)

    settings.seed_everything(123)
    first = draw()
    settings.seed_everything(123)
    second = draw()
    settings.seed_everything(124)
    other = draw()
    assert first[0] == second[0] and first[1] == second[1]
    assert torch.equal(first[2], second[2])
    assert not torch.equal(first[2], other[2]) and first[0] != other[0] and first[1] != other[1]


def test_describe_mentions_mode_and_device(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    monkeypatch.setenv("COURSE_FAST", "1")
    line = settings.describe()
    assert "mode=fast" in line and f"device={settings.pick_device()}" in line
    assert torch.__version__ in line
