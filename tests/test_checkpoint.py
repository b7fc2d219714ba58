"""checkpoint: atomic saves, and clear errors for the wrong file, architecture or head size."""
import os

import pytest
import torch

from course_utils import checkpoint, train, zoo

CLASSES = ["ants", "bees"]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return zoo.load_untrained("resnet18", num_classes=2)


def history():
    return train.History(epochs=[dict(epoch=1, train_loss=0.5, train_acc=0.8, val_loss=0.4, val_acc=0.9,
                                      lr=0.01, seconds=1.0)], best_epoch=1, best_val_acc=0.9)


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_round_trip_into_a_new_model(tmp_path, model):
    path = checkpoint.save(tmp_path / "sub" / "best.pt", model, "resnet18", CLASSES, history())
    loaded = checkpoint.load(path)
    assert same(loaded.model, model) and loaded.name == "resnet18" and loaded.classes == CLASSES
    assert loaded.history == history() and not loaded.model.training
    assert os.listdir(path.parent) == ["best.pt"]  # no temporary file left beside it


def test_round_trip_into_a_given_model(tmp_path, model):
    checkpoint.save(tmp_path / "best.pt", model, "resnet18", CLASSES)
    other = zoo.load_untrained("resnet18", num_classes=2)
    assert not same(other, model)
    assert checkpoint.load(tmp_path / "best.pt", other).model is other and same(other, model)


def test_interrupted_save_keeps_the_old_file(tmp_path, model, monkeypatch):
    path = checkpoint.save(tmp_path / "best.pt", model, "resnet18", CLASSES)
    before = path.read_bytes()

    def interrupted(obj, f, *args, **kwargs):
        open(f, "wb").write(b"half a checkpoint")
        raise KeyboardInterrupt
    monkeypatch.setattr(torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, zoo.load_untrained("resnet18", 2), "resnet18", CLASSES)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["best.pt"]


def test_full_disk_is_a_clear_error(tmp_path, model, monkeypatch):
    def full(obj, f, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", full)
    with pytest.raises(checkpoint.CheckpointError, match="No space left.*nothing was written"):
        checkpoint.save(tmp_path / "best.pt", model, "resnet18", CLASSES)
    assert os.listdir(tmp_path) == []


def test_class_names_must_match_the_head(tmp_path, model):
    with pytest.raises(checkpoint.CheckpointError, match="2 outputs but 3 class names"):
        checkpoint.save(tmp_path / "best.pt", model, "resnet18", ["a", "b", "c"])


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No checkpoint at .*checkpoint.save"):
        checkpoint.load(tmp_path / "nothing.pt")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", "truncated"])
def test_damaged_file(tmp_path, model, content):
    path = tmp_path / "best.pt"
    if content == "truncated":
        checkpoint.save(path, model, "resnet18", CLASSES)
        content = path.read_bytes()[:5000]
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointError, match="not a readable checkpoint.*Save the model again"):
        checkpoint.load(path)


def test_bare_state_dict_is_explained(tmp_path, model):
    torch.save(model.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(checkpoint.CheckpointError, match="not written by checkpoint.save.*load_state_dict"):
        checkpoint.load(tmp_path / "weights.pt")


def test_other_architecture(tmp_path, model):
    checkpoint.save(tmp_path / "best.pt", model, "resnet18", CLASSES)
    with pytest.raises(checkpoint.CheckpointError, match="weights of a resnet18, which does not fit this EfficientNetLite"):
        checkpoint.load(tmp_path / "best.pt", zoo.load_untrained("efficientnet_lite0", 2))


def test_other_head_size_says_how_to_fix_it(tmp_path, model):
    checkpoint.save(tmp_path / "best.pt", model, "resnet18", CLASSES)
    with pytest.raises(checkpoint.CheckpointError, match=r"2 classes \(ants, bees\).*head fc has 10 outputs.*replace_head"):
        checkpoint.load(tmp_path / "best.pt", zoo.load_untrained("resnet18", 10))


def test_other_variant_of_the_architecture(tmp_path):
    checkpoint.save(tmp_path / "best.pt", zoo.load_untrained("resnet18", 2), "resnet18", CLASSES)
    with pytest.raises(checkpoint.CheckpointError):
        checkpoint.load(tmp_path / "best.pt", zoo.load_untrained("resnet34", 2))
