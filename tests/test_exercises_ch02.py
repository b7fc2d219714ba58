"""Chapter 02's checks: wrong answers rejected with specific feedback, right ones accepted."""
import pytest
import torch
from torchvision.transforms import v2

from course_utils.data import Preset
from course_utils.exercises import ch02
from course_utils.exercises.harness import ExerciseError, NotDone


def right_normalize(image, mean, std):
    return (image.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)


def test_normalize(capsys):
    ch02.check_02_normalize(right_normalize)
    assert "Correct" in capsys.readouterr().out
    ch02.check_02_normalize(lambda image, mean, std: v2.Normalize(mean, std)(v2.ToDtype(torch.float32, scale=True)(image)))

    def placeholder(image, mean, std):
        raise NotImplementedError

    m = lambda v: torch.tensor(v).view(3, 1, 1)  # noqa: E731
    wrongs = ((placeholder, NotDone, "still raises NotImplementedError"),
              (lambda i, mean, std: (i.float() - m(mean)) / m(std), ExerciseError, "did not divide by 255"),
              (lambda i, mean, std: i.float() / 255 - m(mean), ExerciseError, "did not divide by the std"),
              (lambda i, mean, std: (i.float() / 255 - m(std)) / m(mean), ExerciseError, "swapped"),
              (lambda i, mean, std: (i.float() / 255 - m(mean).flip(0)) / m(std).flip(0), ExerciseError, "reversed"),
              (lambda i, mean, std: (i.float() / 255 - torch.tensor(mean)) / torch.tensor(std), ExerciseError, "raised"),
              (lambda i, mean, std: i, ExerciseError, "float tensor"),
              (lambda i, mean, std: right_normalize(i, mean, std)[0], ExerciseError, "keep the image's shape"),
              (lambda i, mean, std: right_normalize(i, mean, std) + torch.tensor([0.3, 0, 0]).view(3, 1, 1),
               ExerciseError, "channel 0 \\(red\\) is off by 0.300"))
    for wrong, kind, feedback in wrongs:
        with pytest.raises(kind, match=feedback):
            ch02.check_02_normalize(wrong)


def _images():
    g = torch.Generator().manual_seed(0)
    return [torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g) for h, w in ((5, 7), (9, 4), (6, 6))]


def pooled(images):
    pixels = torch.cat([i.reshape(3, -1).double() / 255 for i in images], 1)
    return pixels.mean(1), pixels.std(1, correction=0)


def test_channel_stats(capsys):
    ch02.check_02_channel_stats(pooled, _images())
    ch02.check_02_channel_stats(lambda imgs: (pooled(imgs)[0], torch.cat([i.reshape(3, -1).double() / 255
                                                                         for i in imgs], 1).std(1)), _images())
    assert "Correct: over" in capsys.readouterr().out
    per_image = lambda imgs: (torch.stack([i.reshape(3, -1).double().mean(1) / 255 for i in imgs]).mean(0),  # noqa: E731
                              pooled(imgs)[1])
    per_image_std = lambda imgs: (pooled(imgs)[0], torch.stack([(i.reshape(3, -1).double() / 255).std(1, correction=0)  # noqa: E731
                                                                for i in imgs]).mean(0))
    for wrong, feedback in ((..., "Not done yet"), (per_image, "averaged the images' own means"),
                            (per_image_std, "own standard deviations"),
                            (lambda imgs: (pooled(imgs)[0], pooled(imgs)[1] ** 2), "variance"),
                            (lambda imgs: (pooled(imgs)[0].flip(0), pooled(imgs)[1]), "reverse order"),
                            (lambda imgs: (pooled(imgs)[0] * 255, pooled(imgs)[1] * 255), r"\[0, 1\] units"),
                            (lambda imgs: pooled(imgs)[0], "two things"),
                            (lambda imgs: (pooled(imgs)[0].mean(), pooled(imgs)[1]), "one per channel"),
                            (lambda imgs: torch.stack(imgs), "different sizes")):
        with pytest.raises(ExerciseError, match=feedback):
            ch02.check_02_channel_stats(wrong, _images())


PRESET = Preset(crop=32, resize=36, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
TAIL = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(PRESET.mean, PRESET.std)]


def test_no_flip_augmentation(capsys):
    ch02.check_02_no_flip_augmentation(lambda p: v2.Compose([v2.RandomResizedCrop(p.crop, scale=(0.5, 1)),
                                                             v2.ColorJitter(0.2, 0.2), *TAIL]), PRESET)
    assert "none mirrored or upside down" in capsys.readouterr().out
    crop = v2.RandomResizedCrop(32, scale=(0.5, 1))
    for wrong, feedback in ((..., "Not done yet"), (lambda p: 3, "should return a transform"),
                            (lambda p: v2.Compose([crop, v2.RandomHorizontalFlip(), *TAIL]), "mirrored left to right"),
                            (lambda p: v2.Compose([crop, v2.RandomVerticalFlip(), *TAIL]), "upside down"),
                            (lambda p: v2.Compose([v2.Resize(36), v2.CenterCrop(32), *TAIL]), "identical"),
                            (lambda p: v2.Compose([crop, v2.ToDtype(torch.float32, scale=True)]), "not normalised"),
                            (lambda p: v2.Compose([crop, v2.ToDtype(torch.float32), TAIL[1]]), "0-255 scale"),
                            (lambda p: v2.Compose([v2.RandomResizedCrop(40), *TAIL]), "Output shape|output shape"),
                            (lambda p: v2.Compose([crop]), "float32")):
        with pytest.raises(ExerciseError, match=feedback):
            ch02.check_02_no_flip_augmentation(wrong, PRESET)
