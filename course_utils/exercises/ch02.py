"""Exercise checks of chapter 02 preprocessing."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from .harness import ExerciseError, call, known_mistake, passed, require


_CHANNELS = ("red", "green", "blue")


def check_02_normalize(my_normalize) -> None:
    """`my_normalize(image, mean, std)`: uint8 (3, H, W) -> float (3, H, W), (image / 255 - mean) / std
    per channel, as `v2.ToDtype(torch.float32, scale=True)` then `v2.Normalize(mean, std)`."""
    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    presets = {"ImageNet's": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
               "the TF-style": ((0.498, 0.498, 0.498), (0.502, 0.502, 0.502))}
    for label, (mean, std) in presets.items():
        got = call(my_normalize, "my_normalize", image.clone(), mean, std,
                       hint="mean and std hold one number per channel; to subtract them from a "
                            "(3, H, W) image make them tensors of shape (3, 1, 1), e.g. "
                            "`torch.tensor(mean).view(3, 1, 1)`.")
        require(isinstance(got, torch.Tensor),
                 f"`my_normalize` should return a tensor, not a {type(got).__name__}.")
        require(tuple(got.shape) == tuple(image.shape),
                 f"For an image of shape {tuple(image.shape)} you return shape {tuple(got.shape)}: the "
                 f"result should keep the image's shape (channels first). Hint: shape mean and std as "
                 f"(3, 1, 1) so they broadcast over height and width.")
        require(got.is_floating_point(),
                 f"You return {got.dtype}: normalised values are fractions and negative numbers, so the "
                 f"result must be a float tensor. Hint: `image.float() / 255` first.")
        x = image.double() / 255
        m = torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float64).view(3, 1, 1)
        expected = v2.Normalize(mean, std)(v2.ToDtype(torch.float32, scale=True)(image))
        got = got.detach().double()
        if torch.allclose(got, expected.double(), atol=1e-5):
            continue
        mistakes = [
            ((x * 255 - m) / s, "you did not divide by 255 first: the formula works on values in [0, 1], "
                                "`image.float() / 255`."),
            (x - m, "you subtracted the mean but did not divide by the std."),
            (x / s, "you divided by the std but did not subtract the mean."),
            ((x - s) / m, "mean and std are swapped: subtract the mean, then divide by the std."),
            ((x - m) * s, "you multiplied by the std instead of dividing by it."),
            ((x - m.flip(0)) / s.flip(0), "the channel order is reversed: mean[0] and std[0] belong to channel "
                                          "0 (red) of a channels-first (3, H, W) image."),
        ]
        feedback = known_mistake(got, mistakes, same=lambda a, b: torch.allclose(a, b, atol=1e-4))
        require(not feedback, f"with {label} statistics, {feedback}")
        off = (got - expected.double()).abs().flatten(1).mean(1)
        c = int(off.argmax())
        raise ExerciseError(
            f"Not yet: with {label} statistics, channel {c} ({_CHANNELS[c]}) is off by {off[c]:.3f} on average "
            f"(channels {', '.join(f'{v:.3f}' for v in off.tolist())}): did you use the {_CHANNELS[c]} "
            f"channel's mean and std, mean[{c}] = {mean[c]} and std[{c}] = {std[c]}? "
            f"Expected (image / 255 - mean[c]) / std[c] for every channel c.")
    passed("my_normalize matches v2.ToDtype(torch.float32, scale=True) + v2.Normalize(mean, std), "
           "with ImageNet's and with the TF-style statistics.")


def _channel_stats_reference(images):
    """Pixel-weighted per-channel mean and std (in [0, 1] units) of uint8 (3, H, W) images, in float64."""
    n, total, squares = 0, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for image in images:
        x = image.reshape(3, -1).float() / 255
        n += x.shape[1]
        total += x.sum(1, dtype=torch.float64)
        squares += (x * x).sum(1, dtype=torch.float64)
    mean = total / n
    return mean, (squares / n - mean**2).clamp(min=0).sqrt(), n


def _mean_and_std(result):
    """The student's (mean, std) as two float64 vectors of 3, or "should return two things" feedback."""
    try:
        mean, std = result
        mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
        std = torch.as_tensor(std, dtype=torch.float64).flatten()
    except (TypeError, ValueError, RuntimeError):
        raise ExerciseError("Not yet: `channel_stats` should return two things, (mean, std), each with 3 "
                            "numbers (one per channel).") from None
    require(mean.numel() == 3 and std.numel() == 3,
            f"mean has {mean.numel()} and std {std.numel()} number(s): each needs one per channel (3). "
            f"Hint: reduce over the pixels only, e.g. `pixels.mean(dim=1)` for pixels of shape (3, N).")
    return mean, std


def _check_mean(mean, want_mean, imgs, case: str) -> None:
    if torch.allclose(mean, want_mean, atol=1e-4):
        return
    per_image = torch.stack([img.reshape(3, -1).double().mean(1) / 255 for img in imgs]).mean(0)
    require(not (len(imgs) > 1 and torch.allclose(mean, per_image, atol=1e-4)),
            f"on {case}: you averaged the images' own means, so a small image counts as much as a large "
            f"one. Pool all pixels first, then take one mean per channel.")
    require(not torch.allclose(mean, want_mean.flip(0), atol=1e-4),
            f"on {case}: your channels are in reverse order (B, G, R); the images are (3, H, W) with "
            f"channel 0 = red.")
    c = int((mean - want_mean).abs().argmax())
    require(False, f"on {case}: the {_CHANNELS[c]} mean is {float(mean[c]):.4f}, it should be "
                   f"{float(want_mean[c]):.4f}.")


def _check_std(std, want_std, n: int, imgs, case: str) -> None:
    sample_std = want_std * (n / (n - 1)) ** 0.5   # Bessel's correction: also accepted

    def near(*candidates):
        return any(torch.allclose(std, c, atol=1e-4) for c in candidates)

    if near(want_std, sample_std):
        return
    per_image_std = [torch.stack([(img.reshape(3, -1).double() / 255).std(1, correction=k)
                                  for img in imgs]).mean(0) for k in (0, 1)]
    require(not (len(imgs) > 1 and near(*per_image_std)),
            f"on {case}: you averaged the images' own standard deviations; that leaves out how much the "
            f"images differ from each other. Pool all pixels first, then take one std per channel.")
    require(not near(want_std**2, sample_std**2), f"on {case}: that is the variance; the std is its square root.")
    c = int((std - want_std).abs().argmax())
    require(False, f"on {case}: the {_CHANNELS[c]} std is {float(std[c]):.4f}, it should be "
                   f"{float(want_std[c]):.4f}.")


def check_02_channel_stats(channel_stats, images) -> None:
    """`channel_stats(images)` -> (mean, std): 3 numbers each, in [0, 1] units, over every pixel of a
    list of uint8 (3, H, W) images of different sizes. Tried on two small images made here first
    (where the usual shortcuts give other numbers), then on `images`."""
    small = torch.zeros(3, 2, 2, dtype=torch.uint8)
    small[0] = 255                                 # 4 red pixels
    large = torch.zeros(3, 4, 6, dtype=torch.uint8)
    large[1, :, :3] = 200                          # 24 pixels: half green, half black,
    large[2] = 100                                 # all with some blue
    for case, imgs in (("two small test images of different sizes", [small, large]), ("your images", images)):
        imgs = list(imgs)  # (the test images first: a placeholder is reported before yours are read)
        case = f"your {len(imgs)} images" if imgs is not None and case == "your images" else case
        result = call(channel_stats, "channel_stats", list(imgs),
                      hint="the images have different sizes, so `torch.stack` cannot batch "
                           "them; flatten each to (3, H*W) and `torch.cat` them along dim 1.")
        mean, std = _mean_and_std(result)
        want_mean, want_std, n = _channel_stats_reference(imgs)
        require(float(mean.max()) <= 1 + 1e-6 and float(std.max()) <= 1 + 1e-6,
                f"On {case}: your values go up to {float(torch.cat([mean, std]).max()):.1f}: give them in "
                f"[0, 1] units, as the presets do (divide the uint8 values by 255).")
        _check_mean(mean, want_mean, imgs, case)
        _check_std(std, want_std, n, imgs, case)
    fmt = lambda v: "(" + ", ".join(f"{x:.3f}" for x in v.tolist()) + ")"  # noqa: E731
    passed(f"over {n:,} pixels per channel: mean {fmt(want_mean)}, std {fmt(want_std)}.")


def _ramp_image(height: int = 96, width: int = 128):
    """uint8 (3, H, W): red grows left to right, green top to bottom, blue constant."""
    image = torch.empty(3, height, width, dtype=torch.uint8)
    image[0] = torch.linspace(0, 255, width).round().to(torch.uint8).expand(height, width)
    image[1] = torch.linspace(0, 255, height).round().to(torch.uint8)[:, None].expand(height, width)
    image[2] = 128
    return image


def check_02_no_flip_augmentation(make_transform, preset, samples: int = 64) -> None:
    """`make_transform(preset)`: a training transform for uint8 (3, H, W) images whose label changes
    when mirrored. Checked: output shape and type, normalised, random, never mirrored or upside down."""
    transform = call(make_transform, "sign_train_transform", preset)
    require(callable(transform),
             f"`sign_train_transform(preset)` should return a transform (e.g. a v2.Compose), "
             f"not a {type(transform).__name__}.")
    image = _ramp_image()
    with torch.random.fork_rng():  # the same samples every time, without touching the notebook's seeds
        torch.manual_seed(0)
        outputs = [call(transform, "the transform", image.clone()) for _ in range(samples)]
    first = outputs[0]
    require(isinstance(first, torch.Tensor),
             f"The transform returns a {type(first).__name__}; the model needs a tensor. Hint: work on the "
             f"uint8 tensor with v2 transforms and end with v2.ToDtype and v2.Normalize.")
    shape = (3, preset.crop, preset.crop)
    bad = [tuple(o.shape) for o in outputs if tuple(o.shape) != shape]
    if bad:
        raise ExerciseError(f"Not yet: output shape {bad[0]}; the model's input is {shape}. Hint: a "
                            f"RandomResizedCrop(preset.crop) (or Resize + RandomCrop) gives every sample "
                            f"that size.")
    require(first.dtype == torch.float32,
             f"Output type {first.dtype}; the model needs float32. Hint: v2.ToDtype(torch.float32, scale=True).")
    stacked = torch.stack(outputs)
    require(float(stacked.max()) < 20,
             f"Values go up to {float(stacked.max()):.0f}: the 0-255 scale. Use "
             f"v2.ToDtype(torch.float32, scale=True), which also divides by 255.")
    require(float(stacked.min()) < -0.1,
             "No value is negative, so the output is not normalised (a dark pixel should come out "
             "below 0). Add v2.Normalize(preset.mean, preset.std) at the end.")
    require(float((stacked - first).abs().max()) > 1e-3,
             f"All {samples} outputs are identical: this is a deterministic (validation) transform. "
             f"Training wants a different view each time: random crops, small rotations, colour changes.")
    half = preset.crop // 2
    red, green = stacked[:, 0], stacked[:, 1]
    mirrored = int((red[:, :, :half].mean((1, 2)) > red[:, :, -half:].mean((1, 2)) + 1e-3).sum())
    upside_down = int((green[:, :half].mean((1, 2)) > green[:, -half:].mean((1, 2)) + 1e-3).sum())
    require(mirrored == 0,
             f"{mirrored} of {samples} samples came out mirrored left to right: a mirrored 'b' reads 'd', "
             f"a left arrow becomes a right arrow. Remove v2.RandomHorizontalFlip (and any other flip).")
    require(upside_down == 0,
             f"{upside_down} of {samples} samples came out upside down: a 6 becomes a 9. Remove vertical "
             f"flips and large rotations (keep rotations within a few degrees).")
    passed(f"{samples} samples: shape {shape}, float32, normalised, all different, none mirrored or "
           f"upside down.")
