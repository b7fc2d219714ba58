"""tools/prepare_dataset.py: Food-101 and Dogs vs Cats laid out as the course's ImageFolder, on
generated miniatures in those datasets' exact layouts (seconds)."""
import importlib.util
import os
import re
from pathlib import Path

import pytest

from conftest import noise_image
from course_utils import data

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("prepare_dataset", ROOT / "tools" / "prepare_dataset.py")
prepare = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prepare)

FOOD = {"apple_pie": (["1005649", "1014775", "101251"], ["1011328"]),
        "baby_back_ribs": (["1006121", "1012047"], ["1005293", "1007102"]),
        "beignets": (["1004256"], ["1003015"])}


def make_food101(root: Path) -> Path:
    """food-101/ as the archive unpacks: images/<class>/<id>.jpg, meta/{classes,train,test}.txt."""
    (root / "meta").mkdir(parents=True)
    n = 0
    for name, ids in FOOD.items():
        (root / "images" / name).mkdir(parents=True)
        for image in ids[0] + ids[1]:
            noise_image(24, 20, seed=n).save(root / "images" / name / f"{image}.jpg")
            n += 1
    (root / "meta" / "classes.txt").write_text("".join(f"{c}\n" for c in FOOD))
    for listing, part in (("train.txt", 0), ("test.txt", 1)):
        (root / "meta" / listing).write_text("".join(f"{c}/{i}\n" for c, ids in FOOD.items() for i in ids[part]))
    return root


def make_dogs_vs_cats(root: Path, cats: int = 10, dogs: int = 7) -> Path:
    """Kaggle's train.zip unpacked: train/cat.N.jpg and train/dog.N.jpg."""
    (root / "train").mkdir(parents=True)
    for name, count in (("cat", cats), ("dog", dogs)):
        for i in range(count):
            noise_image(20, 16, seed=i).save(root / "train" / f"{name}.{i}.jpg")
    return root


def test_food101_keeps_its_split_as_links(tmp_path, capsys):
    source = make_food101(tmp_path / "food-101")
    out = tmp_path / "food101"
    assert prepare.main(["food101", str(source), str(out)]) == 0
    assert "6 training and 4 validation images of 3 classes" in capsys.readouterr().out
    assert data.find_classes(out) == sorted(FOOD)
    for split, part in (("train", 0), ("val", 1)):
        for name, ids in FOOD.items():
            files = sorted((out / split / name).iterdir())
            assert [f.name for f in files] == sorted(f"{i}.jpg" for i in ids[part])
            assert all(f.is_symlink() and f.resolve() == (source / "images" / name / f.name).resolve() for f in files)
    items, skipped = data.scan_split(out, "val", data.find_classes(out))
    assert len(items) == 4 and not skipped                   # the course reads the links as images
    assert not list(tmp_path.glob(".*partial"))


def test_food101_hard_links(tmp_path):
    source = make_food101(tmp_path / "food-101")
    out = tmp_path / "food101"
    assert prepare.main(["food101", str(source), str(out), "--link", "hard"]) == 0
    image = out / "train" / "apple_pie" / "1005649.jpg"
    assert not image.is_symlink() and os.path.samefile(image, source / "images" / "apple_pie" / "1005649.jpg")


@pytest.mark.parametrize("damage, message", [
    (lambda s: (s / "meta" / "test.txt").unlink(), "no meta/test.txt"),
    (lambda s: (s / "images" / "beignets" / "1003015.jpg").unlink(), "1 image.*not in images/"),
    (lambda s: (s / "meta" / "train.txt").write_text("apple_pie 1005649\n"), "not `<class>/<id>`"),
    (lambda s: (s / "meta" / "test.txt").write_text("apple_pie/1011328\n"), r"only one of meta/train.txt"),
])
def test_food101_wrong_layout_is_a_clear_error(tmp_path, capsys, damage, message):
    source = make_food101(tmp_path / "food-101")
    damage(source)
    out = tmp_path / "food101"
    assert prepare.main(["food101", str(source), str(out)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not out.exists() and not list(tmp_path.glob(".*partial"))


def test_food101_from_an_imagefolder_says_what_was_expected(tmp_path):
    with pytest.raises(prepare.LayoutError, match="no images/ folder.*food-101.tar.gz"):
        prepare.food101(tmp_path)


def test_dogs_vs_cats_seeded_stratified_split(tmp_path):
    source = make_dogs_vs_cats(tmp_path / "dogs-vs-cats")
    splits = prepare.dogs_vs_cats(source, val_fraction=0.2, seed=0)
    val = sorted(p.name for _, p in splits["val"])
    assert sum(c == "cat" for c, _ in splits["val"]) == 2 and sum(c == "dog" for c, _ in splits["val"]) == 1
    assert len(splits["train"]) + len(splits["val"]) == 17
    assert not {p for _, p in splits["train"]} & {p for _, p in splits["val"]}
    assert sorted(p.name for _, p in prepare.dogs_vs_cats(source / "train", 0.2, 0)["val"]) == val   # train/ itself
    others = [sorted(p.name for _, p in prepare.dogs_vs_cats(source, 0.2, s)["val"]) for s in range(1, 6)]
    assert any(o != val for o in others)                      # the seed decides
    out = tmp_path / "dogs"
    prepare.write_layout(splits, out)
    assert data.find_classes(out) == ["cat", "dog"]
    assert sorted(p.name for p in (out / "val").rglob("*.jpg")) == val


def test_dogs_vs_cats_wrong_layout(tmp_path, capsys):
    source = make_dogs_vs_cats(tmp_path / "d")
    (source / "train" / "12.jpg").write_bytes(b"x")
    assert prepare.main(["dogs-vs-cats", str(source), str(tmp_path / "out")]) == 2
    assert "not named cat.N.jpg or dog.N.jpg (12.jpg) (test1/ holds unlabelled" in capsys.readouterr().err
    with pytest.raises(prepare.LayoutError, match="1 dog.N.jpg"):
        prepare.dogs_vs_cats(make_dogs_vs_cats(tmp_path / "e", cats=3, dogs=1))
    with pytest.raises(prepare.LayoutError, match="between 0 and 1"):
        prepare.dogs_vs_cats(source, val_fraction=1.0)


def test_existing_output_is_never_overwritten(tmp_path):
    source = make_dogs_vs_cats(tmp_path / "d")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    with pytest.raises(prepare.LayoutError, match="exists already"):
        prepare.write_layout(prepare.dogs_vs_cats(source), out)
    assert (out / "mine.txt").read_text() == "keep"
