"""data: ImageFolder checks, skipping bad files, decoding, subsets, loaders, augmentation."""
import os
import shutil
import warnings

import pytest
import torch
from PIL import Image
from torchvision import transforms

from conftest import CLASSES, make_imagefolder, noise_image
from course_utils import data, settings, zoo

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SMALL = data.Preset(crop=32, resize=36, mean=MEAN, std=STD)

# the uncached function: every call decodes and warns afresh
def load_split(*args, **kwargs):
    """data.load_split, decoding afresh (so that every call warns about skipped files)."""
    data.clear_decoded_cache()
    return data.load_split(*args, **kwargs)


def skipped_warnings(record):
    return [w for w in record if issubclass(w.category, data.SkippedFilesWarning)]


# --- find_classes --------------------------------------------------------------------------------

def test_find_classes_sorted_and_ignores_hidden_folders(tiny_imagefolder):
    for split in ("train", "val"):
        (tiny_imagefolder / split / ".ipynb_checkpoints").mkdir()
        (tiny_imagefolder / split / "__MACOSX").mkdir()
    (tiny_imagefolder / "train" / "notes.txt").write_text("a file, not a class")
    assert data.find_classes(tiny_imagefolder) == sorted(CLASSES)


def test_find_classes_missing_root(tmp_path):
    with pytest.raises(data.DatasetError, match="does not exist") as err:
        data.find_classes(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)


@pytest.mark.parametrize("split", ["train", "val"])
def test_find_classes_missing_split(tiny_imagefolder, split):
    shutil.rmtree(tiny_imagefolder / split)
    with pytest.raises(data.DatasetError, match=f"has no {split}/ folder"):
        data.find_classes(tiny_imagefolder)


def test_find_classes_needs_two_classes(tmp_path):
    root = make_imagefolder(tmp_path / "one", classes=("only",))
    with pytest.raises(data.DatasetError, match="at least two") as err:
        data.find_classes(root)
    assert "1 class folder" in str(err.value)


def test_find_classes_class_missing_in_val(tiny_imagefolder):
    shutil.rmtree(tiny_imagefolder / "val" / "beta")
    with pytest.raises(data.DatasetError, match=r"missing in val/: \['beta'\]"):
        data.find_classes(tiny_imagefolder)


def test_find_classes_class_only_in_val(tiny_imagefolder):
    (tiny_imagefolder / "val" / "delta").mkdir()
    with pytest.raises(data.DatasetError, match=r"only in val/: \['delta'\]"):
        data.find_classes(tiny_imagefolder)


# --- scanning and skipping -------------------------------------------------------------------------

def test_bad_files_are_skipped_and_reported_once(tiny_imagefolder):
    folder = tiny_imagefolder / "train" / "alpha"
    good = sorted(p.name for p in folder.iterdir())
    # hidden / system files: never data
    (folder / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (folder / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (folder / "__MACOSX").mkdir()
    noise_image(50, 50, seed=99).save(folder / "__MACOSX" / "._img0.jpg")  # decodable, still junk
    (folder / ".hidden.jpg").write_bytes(b"")
    # problems a student must hear about
    (folder / "notes.txt").write_text("not an image")
    (folder / "fake.jpg").write_text("a text file with an image suffix")
    (folder / "empty.jpg").write_bytes(b"")
    full = folder / "img0.jpg"
    noise_image(80, 80, seed=7).save(full, quality=95)
    jpeg = full.read_bytes()
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = load_split(tiny_imagefolder, "train", 32)
    found = skipped_warnings(record)
    assert len(found) == 1, [str(w.message) for w in found]
    message = str(found[0].message)
    for name in ("notes.txt", "fake.jpg", "empty.jpg", "truncated.jpg"):
        assert message.count(f"train/alpha/{name}:") == 1, name
    assert "not an image file type (.txt)" in message
    assert message.count("unreadable image") == 3
    loaded = sorted(p.name for p, label in zip(ds.paths, ds.labels) if label == 0)
    assert loaded == good  # exactly the real images, nothing hidden or broken
    assert len(ds) == len(ds.paths) == len(ds.labels) == 6 * len(CLASSES)


def test_clean_folder_gives_no_warning(tiny_imagefolder):
    with warnings.catch_warnings():
        warnings.simplefilter("error", data.SkippedFilesWarning)
        ds = load_split(tiny_imagefolder, "val", 32)
    assert len(ds) == 4 * len(CLASSES)
    assert ds.classes == sorted(CLASSES)
    assert [ds.labels.count(i) for i in range(len(CLASSES))] == [4, 4, 4]


def test_images_in_subfolders_of_a_class_are_found(tiny_imagefolder):
    sub = tiny_imagefolder / "val" / "gamma" / "more"
    sub.mkdir()
    noise_image(50, 60, seed=5).save(sub / "deep.png")
    noise_image(50, 60, seed=6).save(sub.parent / "UPPER.JPG")
    ds = load_split(tiny_imagefolder, "val", 32)
    assert sub.parent / "UPPER.JPG" in ds.paths  # suffixes in any case
    assert sub / "deep.png" in ds.paths
    assert ds.labels[ds.paths.index(sub / "deep.png")] == ds.classes.index("gamma")


def test_class_without_readable_images_is_an_error(tiny_imagefolder):
    folder = tiny_imagefolder / "val" / "beta"
    for p in folder.iterdir():
        p.unlink()
    (folder / "broken.jpg").write_text("no image")
    with pytest.warns(data.SkippedFilesWarning), pytest.raises(data.DatasetError, match="beta"):
        load_split(tiny_imagefolder, "val", 32)


# --- decoding --------------------------------------------------------------------------------------

def _palette_with_transparency(size):
    img = Image.new("P", size, 1)
    img.putpalette([0, 0, 0, 0, 128, 255] + [0] * 762)
    return img, {"transparency": 0}


@pytest.mark.parametrize("mode, suffix, colour", [
    ("P", ".png", (0, 128, 255)),
    ("L", ".png", (200, 200, 200)),
    ("RGBA", ".png", (10, 20, 30)),
    ("CMYK", ".jpg", (255, 0, 0)),
    ("CMYK", ".tif", (255, 0, 0)),
    ("RGB", ".webp", (40, 90, 160)),
])
@pytest.mark.parametrize("size", [(50, 70), (70, 50)])
def test_decode_any_mode_to_rgb_uint8(tmp_path, mode, suffix, colour, size):
    path = tmp_path / f"img{suffix}"
    if mode == "P":
        img, extra = _palette_with_transparency(size)
    else:
        fill = {"L": 200, "RGBA": (10, 20, 30, 0), "CMYK": (0, 255, 255, 0), "RGB": (40, 90, 160)}[mode]
        img, extra = Image.new(mode, size, fill), {}
    img.save(path, **extra)
    with Image.open(path) as check:
        assert check.mode == mode
    t = data.decode(path, 32)
    assert t.dtype == torch.uint8 and t.ndim == 3 and t.shape[0] == 3
    h, w = t.shape[1:]
    assert min(h, w) == 32
    expected_long = 32 * max(size) / min(size)
    assert abs(max(h, w) - expected_long) <= 1
    assert (h > w) == (size[1] > size[0])  # orientation kept
    centre = t[:, h // 2, w // 2].tolist()
    tolerance = 4 if suffix in (".jpg", ".webp") else 0
    assert all(abs(a - b) <= tolerance for a, b in zip(centre, colour)), centre


def test_decode_upscales_small_images(tmp_path):
    noise_image(20, 30, seed=1).save(tmp_path / "small.png")
    assert tuple(data.decode(tmp_path / "small.png", 64).shape) == (3, 96, 64)


# --- per_class subsets -------------------------------------------------------------------------------

def test_per_class_subset_is_seeded_and_deterministic(tiny_imagefolder):
    full = load_split(tiny_imagefolder, "train", 32)
    a = load_split(tiny_imagefolder, "train", 32, per_class=3, seed=0)
    b = load_split(tiny_imagefolder, "train", 32, per_class=3, seed=0)
    assert a.paths == b.paths
    assert all(torch.equal(x, y) for x, y in zip(a.images, b.images))
    assert [a.labels.count(i) for i in range(3)] == [3, 3, 3]
    assert set(a.paths) <= set(full.paths)
    for path, label in zip(a.paths, a.labels):  # labels still belong to their images
        assert path.parent.name == a.classes[label]
    others = [load_split(tiny_imagefolder, "train", 32, per_class=3, seed=s).paths for s in (1, 2, 3)]
    assert any(p != a.paths for p in others), "the seed has no effect"


def test_per_class_counts_readable_images(tiny_imagefolder):
    """`per_class=k` gives k images of every class that has k readable ones, whatever the seed:
    broken files drawn into the subset must not make a class smaller than asked."""
    folder = tiny_imagefolder / "train" / "alpha"
    (folder / "broken1.jpg").write_text("not an image")
    (folder / "broken2.jpg").write_bytes(b"")
    counts = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", data.SkippedFilesWarning)
        for seed in range(6):
            ds = load_split(tiny_imagefolder, "train", 32, per_class=5, seed=seed)
            counts[seed] = [ds.labels.count(i) for i in range(3)]
    assert all(c == [5, 5, 5] for c in counts.values()), counts


def test_per_class_larger_than_class_keeps_all(tiny_imagefolder):
    ds = load_split(tiny_imagefolder, "train", 32, per_class=100)
    assert sorted(ds.paths) == sorted(load_split(tiny_imagefolder, "train", 32).paths)


def test_load_split_decodes_once_but_never_shares_a_mutable_object(tiny_imagefolder):
    first = data.load_split(tiny_imagefolder, "val", 33)
    second = data.load_split(tiny_imagefolder, "val", 33)
    assert second is not first and second.images[0] is first.images[0]  # decoded once, tensors shared
    first.labels[0], first.transform = 99, abs
    first.images.pop()
    view = first.with_transform(None)
    view.paths.clear()
    again = data.load_split(tiny_imagefolder, "val", 33)
    assert again.labels == second.labels and 99 not in again.labels and again.transform is None
    assert len(again) == len(second) == len(first) + 1 and again.paths == second.paths and first.paths


# --- the real data ----------------------------------------------------------------------------------

def test_real_data_counts_and_placeholder(hymenoptera):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        train = load_split(hymenoptera, "train", 24)
        val = load_split(hymenoptera, "val", 24)
    assert train.classes == val.classes == ["ants", "bees"]
    assert len(train) == 244 and len(val) == 153
    found = skipped_warnings(record)
    assert len(found) == 1
    message = str(found[0].message)
    assert message.startswith("train:") and "train/ants/imageNotFound.gif" in message
    assert "placeholder" in message
    assert hymenoptera / "train" / "ants" / "imageNotFound.gif" not in train.paths
    assert all(min(img.shape[1:]) == 24 for img in train.images + val.images)


def test_course_dataset_honours_course_dataset(monkeypatch, tiny_imagefolder):
    monkeypatch.setenv("COURSE_DATASET", str(tiny_imagefolder))
    assert data.course_dataset() == tiny_imagefolder


def test_course_dataset_defaults_to_hymenoptera(monkeypatch, hymenoptera, hymenoptera_data_dir):
    monkeypatch.delenv("COURSE_DATASET", raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(hymenoptera_data_dir))
    assert data.course_dataset() == hymenoptera


# --- presets and loaders -----------------------------------------------------------------------------

def test_preset_scaled_keeps_ratio():
    p = data.Preset().scaled(128)
    assert (p.crop, p.resize) == (128, 146)
    assert (p.mean, p.std) == (data.Preset().mean, data.Preset().std)


def test_default_workers():
    assert data.default_workers(torch.device("cpu")) == 0
    assert 1 <= data.default_workers(torch.device("cuda")) <= 4


def test_image_loaders_batches(tiny_imagefolder):
    loaders = data.image_loaders(tiny_imagefolder, SMALL, batch_size=4, device=torch.device("cpu"))
    assert set(loaders) == {"train", "val"}
    for split, n in (("train", 6 * 3), ("val", 4 * 3)):
        batches = list(loaders[split])
        assert sum(len(labels) for _, labels in batches) == n
        x, y = batches[0]
        assert x.shape == (4, 3, 32, 32) and x.dtype == torch.float32
        assert y.dtype == torch.int64 and set(y.tolist()) <= {0, 1, 2}


def test_val_loader_is_centre_crop_normalised(tiny_imagefolder):
    loaders = data.image_loaders(tiny_imagefolder, SMALL, batch_size=64, device=torch.device("cpu"))
    x, y = next(iter(loaders["val"]))
    ds = loaders["val"].dataset
    assert y.tolist() == ds.labels  # not shuffled
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    for i, image in enumerate(ds.images):
        h, w = image.shape[1:]
        top, left = round((h - 32) / 2), round((w - 32) / 2)
        expected = (image[:, top:top + 32, left:left + 32].float() / 255 - mean) / std
        torch.testing.assert_close(x[i], expected, atol=1e-5, rtol=0)
    # undoing the normalisation gives pixel values in [0, 1] covering most of it (noise images)
    pixels = x * std + mean
    assert pixels.min() >= -1e-5 and pixels.max() <= 1 + 1e-5
    assert pixels.min() < 0.25 and pixels.max() > 0.75


@pytest.mark.filterwarnings("ignore::course_utils.data.SkippedFilesWarning")  # the placeholder
@pytest.mark.parametrize("model", ["resnet18", "efficientnet_lite0"])
def test_decode_once_matches_torchvision_pil_pipeline(hymenoptera, model):
    preset = zoo.preset(model)
    loaders = data.image_loaders(hymenoptera, preset, batch_size=6, device=torch.device("cpu"))
    x, _ = next(iter(loaders["val"]))
    paths = loaders["val"].dataset.paths[:6]
    reference = transforms.Compose([
        transforms.Resize(preset.resize), transforms.CenterCrop(preset.crop),
        transforms.ToTensor(), transforms.Normalize(preset.mean, preset.std)])
    for i, path in enumerate(paths):
        with Image.open(path) as img:
            expected = reference(img.convert("RGB"))
        assert x[i].shape == expected.shape == (3, preset.crop, preset.crop)
        assert (x[i] - expected).abs().max().item() < 1e-5, path.name


def test_train_transform_draws_a_crop_per_sample(tmp_path):
    root = tmp_path / "same"
    image = noise_image(64, 48, seed=3)
    for split in ("train", "val"):
        for c in ("a", "b"):
            (root / split / c).mkdir(parents=True)
            for i in range(4):
                image.save(root / split / c / f"copy{i}.png")
    loaders = data.image_loaders(root, SMALL, batch_size=8, device=torch.device("cpu"))
    ds = loaders["train"].dataset
    assert all(torch.equal(img, ds.images[0]) for img in ds.images)  # same decoded image 8 times
    torch.manual_seed(0)
    first, second = ds[0][0], ds[0][0]
    assert first.shape == second.shape == (3, 32, 32)
    assert not torch.equal(first, second)
    x, _ = next(iter(loaders["train"]))
    assert x.shape == (8, 3, 32, 32)
    distinct = {tuple(sample.flatten()[:64].tolist()) for sample in x}
    assert len(distinct) > 1, "every sample of the batch got the same crop"
    # without augmentation the training images get the validation preprocessing
    plain = data.image_loaders(root, SMALL, batch_size=8, augment=False, device=torch.device("cpu"))
    x1, _ = next(iter(plain["train"]))
    x2, _ = next(iter(plain["val"]))
    assert torch.equal(x1, x2)


def test_train_loader_shuffle_follows_seed(tiny_imagefolder):
    def order(seed):
        loaders = data.image_loaders(tiny_imagefolder, SMALL, batch_size=64, augment=False,
                                     device=torch.device("cpu"), seed=seed)
        x, y = next(iter(loaders["train"]))
        return x
    assert torch.equal(order(0), order(0))
    assert not torch.equal(order(0), order(1))


def test_preset_colour_jitter_and_rotation_are_opt_in():
    names = lambda t: [type(step).__name__ for step in t.transforms]  # noqa: E731
    assert "ColorJitter" not in names(SMALL.train_transform()) and "RandomRotation" not in names(SMALL.train_transform())
    both = SMALL.with_augmentation(colour_jitter=0.4, rotation=15)
    steps = names(both.train_transform())
    assert steps[:2] == ["RandomResizedCrop", "RandomHorizontalFlip"] and {"ColorJitter", "RandomRotation"} <= set(steps)
    assert both.scaled(16).colour_jitter == 0.4 and both.eval_transform().transforms[0].__class__.__name__ == "CenterCrop"
    assert "RandomRotation" not in names(SMALL.with_augmentation(colour_jitter=0.4).train_transform())
    image = torch.full((3, 36, 36), 128, dtype=torch.uint8)
    torch.manual_seed(0)
    jittered = {round(SMALL.with_augmentation(colour_jitter=0.5).train_transform()(image).mean().item(), 4)
                for _ in range(4)}
    assert len(jittered) > 1, "colour jitter changes a flat grey image's brightness from draw to draw"
    with pytest.raises(ValueError, match=">= 0"):
        SMALL.with_augmentation(colour_jitter=-0.1)


# --- the memory budget: splits too large for it are cached on disk -------------------------------

@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """A fresh COURSE_DATA_DIR and an empty in-process cache; COURSE_MEMORY_GB unset."""
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "course-data"))
    monkeypatch.delenv("COURSE_MEMORY_GB", raising=False)
    data.clear_decoded_cache()
    yield tmp_path / "course-data"
    data.clear_decoded_cache()


def on_disk(monkeypatch):
    monkeypatch.setenv("COURSE_MEMORY_GB", "0.000001")  # about 1 KB: every split goes to disk


def cache_files(folder):
    return sorted(p.name for p in (folder / "decoded").iterdir()) if (folder / "decoded").exists() else []


def test_memory_budget_setting(monkeypatch):
    monkeypatch.delenv("COURSE_MEMORY_GB", raising=False)
    assert 2**29 <= settings.memory_budget() <= 4 * 2**30
    monkeypatch.setenv("COURSE_MEMORY_GB", "0.5")
    assert settings.memory_budget() == 2**29
    for bad in ("lots", "0", "-2"):
        monkeypatch.setenv("COURSE_MEMORY_GB", bad)
        with pytest.raises(ValueError, match="positive number of gigabytes"):
            settings.memory_budget()


def test_small_split_stays_in_memory_and_says_so(tiny_imagefolder, data_dir, capsys):
    ds = data.load_split(tiny_imagefolder, "val", 32)
    assert isinstance(ds.images, list)
    out = capsys.readouterr().out
    assert out.startswith("val: 12 images decoded into memory") and "memory budget, COURSE_MEMORY_GB" in out
    assert cache_files(data_dir) == []
    data.load_split(tiny_imagefolder, "val", 32)
    assert capsys.readouterr().out == ""  # decided once per split and session


def test_disk_path_gives_the_same_tensors_and_batches(tiny_imagefolder, data_dir, monkeypatch, capsys):
    memory = data.image_loaders(tiny_imagefolder, SMALL, batch_size=5, device=torch.device("cpu"))
    capsys.readouterr()
    on_disk(monkeypatch)
    disk = data.image_loaders(tiny_imagefolder, SMALL, batch_size=5, device=torch.device("cpu"))
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out] == ["train", "val"]
    assert all("decoded once into a disk cache" in line and "more than half of the" in line
               and "COURSE_MEMORY_GB" in line for line in out), out
    assert len(cache_files(data_dir)) == 4  # a data file and its index per split
    for split in ("train", "val"):
        m, d = memory[split].dataset, disk[split].dataset
        assert isinstance(d.images, data.DiskImages) and isinstance(m.images, list)
        assert d.paths == m.paths and d.labels == m.labels and d.classes == m.classes
        assert all(torch.equal(a, b) for a, b in zip(m.images, d.images))
    for split in ("train", "val"):  # the same batches, augmentation included, for the same seeds
        torch.manual_seed(0)
        a = list(memory[split])
        torch.manual_seed(0)
        b = list(disk[split])
        assert all(torch.equal(x1, x2) and torch.equal(y1, y2) for (x1, y1), (x2, y2) in zip(a, b))


def test_disk_images_subsets_views_and_pickles(tiny_imagefolder, data_dir, monkeypatch):
    import pickle
    from course_utils import shift
    on_disk(monkeypatch)
    ds = data.load_split(tiny_imagefolder, "train", 32)
    first, second = shift.partition(ds, 0.5, seed=0)
    assert isinstance(first.images, data.DiskImages) and len(first) + len(second) == len(ds)
    i = ds.paths.index(first.paths[1])
    assert torch.equal(first.images[1], ds.images[i]) and first.labels[1] == ds.labels[i]
    assert [im.shape for im in ds.images[2:4]] == [ds.images[2].shape, ds.images[3].shape]
    copy = pickle.loads(pickle.dumps(ds.with_transform(SMALL.eval_transform())))  # what a worker receives
    assert torch.equal(copy[0][0], SMALL.eval_transform()(ds.images[0]))


def test_disk_cache_is_reused_rebuilt_when_stale_and_replaced(tiny_imagefolder, data_dir, monkeypatch, capsys):
    on_disk(monkeypatch)
    data.load_split(tiny_imagefolder, "val", 32)
    assert "decoded once into a disk cache" in capsys.readouterr().out
    data.clear_decoded_cache()  # a new session
    again = data.load_split(tiny_imagefolder, "val", 32)
    assert "read from its disk cache" in capsys.readouterr().out
    before = cache_files(data_dir)
    changed = again.paths[0]
    noise_image(50, 70, seed=1234).save(changed)
    stamp = changed.stat().st_mtime_ns + 10**9
    os.utime(changed, ns=(stamp, stamp))
    data.clear_decoded_cache()
    fresh = data.load_split(tiny_imagefolder, "val", 32)
    assert "decoded once into a disk cache" in capsys.readouterr().out
    assert torch.equal(fresh.images[fresh.paths.index(changed)], data.decode(changed, 32))
    after = cache_files(data_dir)
    assert len(after) == len(before) == 2 and not set(after) & set(before)  # the stale pair is gone
    (data_dir / "decoded" / after[1]).write_bytes(b"\0" * 10)  # a cut-short data file (.u8): rebuilt
    data.clear_decoded_cache()
    data.load_split(tiny_imagefolder, "val", 32)
    assert "decoded once into a disk cache" in capsys.readouterr().out


def test_two_datasets_and_sizes_never_share_a_cache(tmp_path, data_dir, monkeypatch):
    a = make_imagefolder(tmp_path / "a", seed=0)
    b = make_imagefolder(tmp_path / "b", seed=1)
    for disk in (False, True):
        if disk:
            on_disk(monkeypatch)
        da, db = data.load_split(a, "val", 32), data.load_split(b, "val", 32)
        assert all(p.is_relative_to(a) for p in da.paths) and all(p.is_relative_to(b) for p in db.paths)
        assert not torch.equal(da.images[0], db.images[0])
        small = data.load_split(a, "val", 24)
        assert min(small.images[0].shape[1:]) == 24 and min(da.images[0].shape[1:]) == 32
        assert data.load_split(a, "val", 32, per_class=2).paths != da.paths
    assert len(cache_files(data_dir)) == 2 * 4


def test_disk_path_warns_about_skipped_files_each_session(tiny_imagefolder, data_dir, monkeypatch):
    on_disk(monkeypatch)
    (tiny_imagefolder / "val" / "beta" / "broken.jpg").write_text("no image")
    for _ in range(2):  # building the cache, then reading it
        data.clear_decoded_cache()
        with pytest.warns(data.SkippedFilesWarning, match="val/beta/broken.jpg: unreadable image"):
            ds = data.load_split(tiny_imagefolder, "val", 32)
        assert len(ds) == 12
