"""Checks students run on their exercise answers: specific feedback, not just pass/fail.

Each check prints what is right, or raises `ExerciseError` with what is wrong and a hint.
An answer left as the placeholder `...` (or a solution cell that still raises
NotImplementedError) is reported as "not done yet".
"""
from __future__ import annotations


class ExerciseError(AssertionError):
    """The answer is not right yet; the message says what to look at."""


def _require(condition: bool, feedback: str) -> None:
    if not condition:
        raise ExerciseError(feedback)


def _not_done(value, name: str) -> None:
    if value is ... or value is None:
        raise ExerciseError(f"Not done yet: `{name}` is still empty. Fill in the cell above and run it.")


def passed(message: str) -> None:
    print(f"Correct: {message}")


# --- 01 model zoo -----------------------------------------------------------------------------

def check_01_small_model(answer, catalogue, max_gflops: float = 1.0, max_params_M: float = 10.0) -> None:
    """The catalogue's model with the best ImageNet top-1 under both budgets (strictly below)."""
    _not_done(answer, "small_model")
    _require(isinstance(answer, str),
             f"`small_model` should be a model's name (a string from the catalogue's index, e.g. "
             f"'resnet18'), not a {type(answer).__name__}.")
    if answer not in catalogue.index:
        import difflib
        close = difflib.get_close_matches(answer, list(catalogue.index), n=3, cutoff=0.5)
        raise ExerciseError(f"{answer!r} is not in the catalogue."
                            + (f" Did you mean {', '.join(close)}?" if close else "")
                            + " Use a name from `catalogue.index`.")
    import math
    row = catalogue.loc[answer]
    _require(not math.isnan(row["gflops"]),
             f"The catalogue has no GFLOPs for {answer} ({row['source']}), so it cannot be shown to "
             f"fit the {max_gflops:g} GFLOP budget. Hint: a comparison such as "
             f"`catalogue['gflops'] < {max_gflops:g}` is False for missing values, which leaves them out.")
    _require(row["gflops"] < max_gflops,
             f"{answer} needs {row['gflops']:.3g} GFLOPs per image: over the budget of {max_gflops:g}.")
    _require(row["params_M"] < max_params_M,
             f"{answer} has {row['params_M']:.3g} M parameters: over the budget of {max_params_M:g} M.")
    fits = catalogue[(catalogue["gflops"] < max_gflops) & (catalogue["params_M"] < max_params_M)]
    best = fits["top1"].idxmax()
    rank = int((fits["top1"] > row["top1"]).sum()) + 1
    _require(answer == best,
             f"{answer} fits both budgets (top-1 {row['top1']:.1f}%), but it ranks {rank} of the "
             f"{len(fits)} models that fit. Hint: keep the rows that satisfy both conditions, then "
             f"take the one with the highest 'top1' (`.idxmax()` or `.sort_values()`).")
    passed(f"{best} has the best ImageNet top-1 ({row['top1']:.1f}%) of the {len(fits)} models under "
           f"{max_gflops:g} GFLOP and {max_params_M:g} M parameters "
           f"({row['gflops']:.2f} GFLOPs, {row['params_M']:.1f} M parameters).")


def check_01_topk(topk_accuracy, probs, targets) -> None:
    """Top-k accuracy for k = 1..5 of ImageNet predictions `probs` (N, 1000) against `targets` (N,)."""
    if targets is None:
        print("Skipped: this exercise needs the ants vs bees images, whose classes exist in ImageNet.")
        return
    _not_done(topk_accuracy, "topk_accuracy")
    try:
        values = [float(v) for v in topk_accuracy]
    except (TypeError, ValueError):
        raise ExerciseError("`topk_accuracy` should be a list of 5 numbers: the top-1, top-2, ..., "
                            "top-5 accuracy.") from None
    _require(len(values) == 5, f"`topk_accuracy` has {len(values)} value(s); it needs 5 (k = 1, 2, 3, 4, 5).")
    _require(all(0 <= v <= 1 for v in values),
             "Accuracies are fractions between 0 and 1 here, not percentages (or counts).")
    ranked = probs.topk(5, dim=1).indices
    expected = [(ranked[:, :k] == targets[:, None]).any(dim=1).float().mean().item() for k in range(1, 6)]
    for k, (got, want) in enumerate(zip(values, expected), start=1):
        if abs(got - want) > 1e-6:
            hint = (f" It is lower than your top-{k - 1}: top-k accuracy can only grow with k, since an image "
                    f"whose true class is among the {k - 1} best guesses is also among the {k} best."
                    if k > 1 and got < values[k - 2] else
                    " Hint: `probs.topk(k, dim=1).indices` holds each image's k best classes; an image "
                    "counts as right when its target is any of them.")
            raise ExerciseError(f"top-{k} accuracy: you have {got:.4f}, it should be {want:.4f}.{hint}")
    errors = ", ".join(f"top-{k} {1 - v:.3f}" for k, v in enumerate(expected, start=1))
    passed(f"top-k accuracy {', '.join(f'{v:.3f}' for v in expected)}; as errors: {errors}.")


def check_01_two_class(accuracy, probs, labels, class_indices) -> None:
    """Accuracy of choosing, per image, the most probable of the outputs `class_indices` only
    (one ImageNet class per dataset class, in the dataset's class order)."""
    if class_indices is None:
        print("Skipped: this exercise needs the ants vs bees images, whose classes exist in ImageNet.")
        return
    _not_done(accuracy, "two_class_accuracy")
    try:
        got = float(accuracy)
    except (TypeError, ValueError):
        raise ExerciseError(f"`two_class_accuracy` should be one number (a fraction), "
                            f"not a {type(accuracy).__name__}.") from None
    _require(0 <= got <= 1, "Give the accuracy as a fraction between 0 and 1, not a percentage.")
    columns = probs[:, list(class_indices)]
    want = (columns.argmax(dim=1) == labels).float().mean().item()
    top1 = (probs.argmax(dim=1) == labels.new_tensor(list(class_indices))[labels]).float().mean().item()
    if abs(got - want) > 1e-6:
        hint = ("That is the 1000-way top-1 accuracy: keep only the ant and bee columns first, "
                "then take the argmax over those two." if abs(got - top1) < 1e-6 else
                "Hint: `probs[:, class_indices]` has one column per dataset class, in the dataset's "
                "class order, so its argmax is directly a dataset label to compare with `labels`.")
        raise ExerciseError(f"You have {got:.4f}; it should be {want:.4f}. {hint}")
    passed(f"choosing only between ImageNet's {len(class_indices)} classes gives {want:.3f} accuracy, "
           f"against {top1:.3f} top-1 among all {probs.shape[1]}.")


# --- 02 preprocessing -------------------------------------------------------------------------

_CHANNELS = ("red", "green", "blue")


def _call_02(function, name: str, *args, hint: str = ""):
    """Call a student's function; 'not done' for a NotImplementedError, the error and a hint otherwise."""
    _not_done(function, name)
    try:
        return function(*args)
    except NotImplementedError:
        raise ExerciseError(f"Not done yet: `{name}` still raises NotImplementedError. Replace that line "
                            f"with your code and run the cell again.") from None
    except Exception as err:
        raise ExerciseError(f"`{name}` raised {type(err).__name__}: {err}. {hint}".rstrip()) from err


def check_02_normalize(my_normalize) -> None:
    """`my_normalize(image, mean, std)`: uint8 (3, H, W) -> float (3, H, W), (image / 255 - mean) / std
    per channel, as `v2.ToDtype(torch.float32, scale=True)` then `v2.Normalize(mean, std)`."""
    import torch
    from torchvision.transforms import v2

    image = torch.randint(0, 256, (3, 5, 7), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    presets = {"ImageNet's": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
               "the TF-style": ((0.498, 0.498, 0.498), (0.502, 0.502, 0.502))}
    for label, (mean, std) in presets.items():
        got = _call_02(my_normalize, "my_normalize", image.clone(), mean, std,
                       hint="Hint: mean and std hold one number per channel; to subtract them from a "
                            "(3, H, W) image make them tensors of shape (3, 1, 1), e.g. "
                            "`torch.tensor(mean).view(3, 1, 1)`.")
        _require(isinstance(got, torch.Tensor),
                 f"`my_normalize` should return a tensor, not a {type(got).__name__}.")
        _require(tuple(got.shape) == tuple(image.shape),
                 f"For an image of shape {tuple(image.shape)} you return shape {tuple(got.shape)}: the "
                 f"result should keep the image's shape (channels first). Hint: shape mean and std as "
                 f"(3, 1, 1) so they broadcast over height and width.")
        _require(got.is_floating_point(),
                 f"You return {got.dtype}: normalised values are fractions and negative numbers, so the "
                 f"result must be a float tensor. Hint: `image.float() / 255` first.")
        x = image.double() / 255
        m = torch.tensor(mean, dtype=torch.float64).view(3, 1, 1)
        s = torch.tensor(std, dtype=torch.float64).view(3, 1, 1)
        expected = v2.Normalize(mean, std)(v2.ToDtype(torch.float32, scale=True)(image))
        got = got.detach().double()
        if torch.allclose(got, expected.double(), atol=1e-5):
            continue
        mistakes = {
            "you did not divide by 255 first: the formula works on values in [0, 1], "
            "`image.float() / 255`.": (x * 255 - m) / s,
            "you subtracted the mean but did not divide by the std.": x - m,
            "you divided by the std but did not subtract the mean.": x / s,
            "mean and std are swapped: subtract the mean, then divide by the std.": (x - s) / m,
            "you multiplied by the std instead of dividing by it.": (x - m) * s,
            "the channel order is reversed: mean[0] and std[0] belong to channel 0 (red) of a "
            "channels-first (3, H, W) image.": (x - m.flip(0)) / s.flip(0),
        }
        for feedback, wrong in mistakes.items():
            if torch.allclose(got, wrong, atol=1e-4):
                raise ExerciseError(f"With {label} statistics, {feedback}")
        off = (got - expected.double()).abs().flatten(1).mean(1)
        c = int(off.argmax())
        raise ExerciseError(
            f"With {label} statistics, channel {c} ({_CHANNELS[c]}) is off by {off[c]:.3f} on average "
            f"(channels {', '.join(f'{v:.3f}' for v in off.tolist())}): did you use the {_CHANNELS[c]} "
            f"channel's mean and std, mean[{c}] = {mean[c]} and std[{c}] = {std[c]}? "
            f"Expected (image / 255 - mean[c]) / std[c] for every channel c.")
    passed("my_normalize matches v2.ToDtype(torch.float32, scale=True) + v2.Normalize(mean, std), "
           "with ImageNet's and with the TF-style statistics.")


def _channel_stats_reference(images):
    """Pixel-weighted per-channel mean and std (in [0, 1] units) of uint8 (3, H, W) images, in float64."""
    import torch

    n, total, squares = 0, torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for image in images:
        x = image.reshape(3, -1).float() / 255
        n += x.shape[1]
        total += x.sum(1, dtype=torch.float64)
        squares += (x * x).sum(1, dtype=torch.float64)
    mean = total / n
    return mean, (squares / n - mean**2).clamp(min=0).sqrt(), n


def check_02_channel_stats(channel_stats, images) -> None:
    """`channel_stats(images)` -> (mean, std): 3 numbers each, in [0, 1] units, over every pixel of a
    list of uint8 (3, H, W) images of different sizes. Tried on two small images made here first
    (where the usual shortcuts give other numbers), then on `images`."""
    import torch

    small = torch.zeros(3, 2, 2, dtype=torch.uint8)
    small[0] = 255                                 # 4 red pixels
    large = torch.zeros(3, 4, 6, dtype=torch.uint8)
    large[1, :, :3] = 200                          # 24 pixels: half green, half black,
    large[2] = 100                                 # all with some blue
    for case, imgs in (("two small test images of different sizes", [small, large]),
                       (f"your {len(images)} images", list(images))):
        answer = _call_02(channel_stats, "channel_stats", list(imgs),
                          hint="Hint: the images have different sizes, so `torch.stack` cannot batch "
                               "them; flatten each to (3, H*W) and `torch.cat` them along dim 1.")
        try:
            mean, std = answer
            mean = torch.as_tensor(mean, dtype=torch.float64).flatten()
            std = torch.as_tensor(std, dtype=torch.float64).flatten()
        except (TypeError, ValueError, RuntimeError):
            raise ExerciseError("`channel_stats` should return two things, (mean, std), each with 3 "
                                "numbers (one per channel).") from None
        _require(mean.numel() == 3 and std.numel() == 3,
                 f"mean has {mean.numel()} and std {std.numel()} number(s): each needs one per channel (3). "
                 f"Hint: reduce over the pixels only, e.g. `pixels.mean(dim=1)` for pixels of shape (3, N).")
        want_mean, want_std, n = _channel_stats_reference(imgs)
        sample_std = want_std * (n / (n - 1)) ** 0.5   # Bessel's correction: also accepted
        _require(float(mean.max()) <= 1 + 1e-6 and float(std.max()) <= 1 + 1e-6,
                 f"On {case}: your values go up to {float(torch.cat([mean, std]).max()):.1f}: give them in "
                 f"[0, 1] units, as the presets do (divide the uint8 values by 255).")
        if not torch.allclose(mean, want_mean, atol=1e-4):
            per_image = torch.stack([img.reshape(3, -1).double().mean(1) / 255 for img in imgs]).mean(0)
            if len(imgs) > 1 and torch.allclose(mean, per_image, atol=1e-4):
                raise ExerciseError(f"On {case}: you averaged the images' own means, so a small image counts "
                                    f"as much as a large one. Pool all pixels first, then take one mean "
                                    f"per channel.")
            if torch.allclose(mean, want_mean.flip(0), atol=1e-4):
                raise ExerciseError(f"On {case}: your channels are in reverse order (B, G, R); the images "
                                    f"are (3, H, W) with channel 0 = red.")
            c = int((mean - want_mean).abs().argmax())
            raise ExerciseError(f"On {case}: the {_CHANNELS[c]} mean is {float(mean[c]):.4f}, it should be "
                                f"{float(want_mean[c]):.4f}.")
        def near(*candidates):
            return any(torch.allclose(std, c, atol=1e-4) for c in candidates)

        if not near(want_std, sample_std):
            per_image_std = [torch.stack([(img.reshape(3, -1).double() / 255).std(1, correction=k)
                                          for img in imgs]).mean(0) for k in (0, 1)]
            if len(imgs) > 1 and near(*per_image_std):
                raise ExerciseError(f"On {case}: you averaged the images' own standard deviations; that leaves "
                                    f"out how much the images differ from each other. Pool all pixels "
                                    f"first, then take one std per channel.")
            if near(want_std**2, sample_std**2):
                raise ExerciseError(f"On {case}: that is the variance; the std is its square root.")
            c = int((std - want_std).abs().argmax())
            raise ExerciseError(f"On {case}: the {_CHANNELS[c]} std is {float(std[c]):.4f}, it should be "
                                f"{float(want_std[c]):.4f}.")
    fmt = lambda v: "(" + ", ".join(f"{x:.3f}" for x in v.tolist()) + ")"  # noqa: E731
    passed(f"over {n:,} pixels per channel: mean {fmt(want_mean)}, std {fmt(want_std)}.")


def _ramp_image(height: int = 96, width: int = 128):
    """uint8 (3, H, W): red grows left to right, green top to bottom, blue constant."""
    import torch

    image = torch.empty(3, height, width, dtype=torch.uint8)
    image[0] = torch.linspace(0, 255, width).round().to(torch.uint8).expand(height, width)
    image[1] = torch.linspace(0, 255, height).round().to(torch.uint8)[:, None].expand(height, width)
    image[2] = 128
    return image


def check_02_no_flip_augmentation(make_transform, preset, samples: int = 64) -> None:
    """`make_transform(preset)`: a training transform for uint8 (3, H, W) images whose label changes
    when mirrored. Checked: output shape and type, normalised, random, never mirrored or upside down."""
    import torch

    transform = _call_02(make_transform, "sign_train_transform", preset)
    _require(callable(transform),
             f"`sign_train_transform(preset)` should return a transform (e.g. a v2.Compose), "
             f"not a {type(transform).__name__}.")
    image = _ramp_image()
    with torch.random.fork_rng():  # the same samples every time, without touching the notebook's seeds
        torch.manual_seed(0)
        outputs = [_call_02(transform, "the transform", image.clone()) for _ in range(samples)]
    first = outputs[0]
    _require(isinstance(first, torch.Tensor),
             f"The transform returns a {type(first).__name__}; the model needs a tensor. Hint: work on the "
             f"uint8 tensor with v2 transforms and end with v2.ToDtype and v2.Normalize.")
    shape = (3, preset.crop, preset.crop)
    bad = [tuple(o.shape) for o in outputs if tuple(o.shape) != shape]
    if bad:
        raise ExerciseError(f"Output shape {bad[0]}; the model's input is {shape}. Hint: a "
                            f"RandomResizedCrop(preset.crop) (or Resize + RandomCrop) gives every sample "
                            f"that size.")
    _require(first.dtype == torch.float32,
             f"Output type {first.dtype}; the model needs float32. Hint: v2.ToDtype(torch.float32, scale=True).")
    stacked = torch.stack(outputs)
    _require(float(stacked.max()) < 20,
             f"Values go up to {float(stacked.max()):.0f}: the 0-255 scale. Use "
             f"v2.ToDtype(torch.float32, scale=True), which also divides by 255.")
    _require(float(stacked.min()) < -0.1,
             "No value is negative, so the output is not normalised (a dark pixel should come out "
             "below 0). Add v2.Normalize(preset.mean, preset.std) at the end.")
    _require(float((stacked - first).abs().max()) > 1e-3,
             f"All {samples} outputs are identical: this is a deterministic (validation) transform. "
             f"Training wants a different view each time: random crops, small rotations, colour changes.")
    half = preset.crop // 2
    red, green = stacked[:, 0], stacked[:, 1]
    mirrored = int((red[:, :, :half].mean((1, 2)) > red[:, :, -half:].mean((1, 2)) + 1e-3).sum())
    upside_down = int((green[:, :half].mean((1, 2)) > green[:, -half:].mean((1, 2)) + 1e-3).sum())
    _require(mirrored == 0,
             f"{mirrored} of {samples} samples came out mirrored left to right: a mirrored 'b' reads 'd', "
             f"a left arrow becomes a right arrow. Remove v2.RandomHorizontalFlip (and any other flip).")
    _require(upside_down == 0,
             f"{upside_down} of {samples} samples came out upside down: a 6 becomes a 9. Remove vertical "
             f"flips and large rotations (keep rotations within a few degrees).")
    passed(f"{samples} samples: shape {shape}, float32, normalised, all different, none mirrored or "
           f"upside down.")


# --- 03 feature extraction --------------------------------------------------------------------

def _fraction_03(value, what: str) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ExerciseError(f"{what} should be one number (an accuracy as a fraction), "
                            f"not a {type(value).__name__}.") from None
    _require(0 <= value <= 1, f"{what} is {value:g}: give accuracies as fractions between 0 and 1, "
                              f"not percentages.")
    return value


def check_03_feature_extraction(my_model, my_result, val_loader, pretrained, measured: dict) -> None:
    """`my_model`: the chapter's model with its base frozen by hand and its head trained;
    `my_result`: {"accuracy", "seconds", "trainable"} for it. `pretrained` is the chapter's frozen,
    untrained model (same architecture); `measured` maps the chapter's runs to the same three numbers."""
    import torch
    from torch import nn

    from . import train, zoo

    _not_done(my_model, "my_model")
    _require(isinstance(my_model, nn.Module),
             f"`my_model` should be a model (an nn.Module), not a {type(my_model).__name__}.")
    names = {n: p.shape for n, p in my_model.named_parameters()}
    _require(names == {n: p.shape for n, p in pretrained.named_parameters()},
             "`my_model` is not the chapter's architecture with a new head: load it with "
             "zoo.load_pretrained(MODEL, num_classes=len(classes)).")
    head_name, head = zoo.head(my_model)
    trainable, total = zoo.count_parameters(my_model)
    in_base = [n for n, p in my_model.named_parameters() if p.requires_grad and not n.startswith(head_name + ".")]
    if in_base:
        where = "all of them" if trainable == total else f"{sum(my_model.get_parameter(n).numel() for n in in_base):,} in the base, e.g. {in_base[0]}"
        raise ExerciseError(f"Your frozen model still has {trainable:,} trainable parameters ({where}): did you "
                            f"set requires_grad = False on the base? Loop over my_model.parameters() first, then "
                            f"turn the head's back on.")
    _require(all(p.requires_grad for p in head.parameters()),
             f"The head {head_name} is frozen too ({trainable:,} trainable parameters): nothing can learn. "
             f"After freezing everything, set requires_grad = True on zoo.head(my_model)[1]'s parameters.")
    reference = pretrained.state_dict()
    for key, value in my_model.state_dict().items():
        if key.startswith(head_name + "."):
            continue
        if not torch.equal(value.cpu(), reference[key].cpu()):
            if "running_" in key:
                change = (value.cpu().float() - reference[key].cpu().float()).abs().max().item()
                raise ExerciseError(f"The base's BatchNorm statistics changed ({key} moved by up to {change:.3g}): "
                                    f"the base ran in train mode while the head trained (section 3). Train with "
                                    f"train.fit or on features.feature_loaders, which keep them fixed.")
            raise ExerciseError(f"The base's weights changed ({key}): it was trained. Freeze the base before "
                                f"building the optimizer and training.")
    _require(not torch.equal(head.weight.detach().cpu(), zoo.head(pretrained)[1].weight.detach().cpu()),
             "Your head still has the weights it was created with: train it (train.fit on the head "
             "and your feature loaders).")

    _not_done(my_result, "my_result")
    _require(isinstance(my_result, dict) and {"accuracy", "seconds", "trainable"} <= set(my_result),
             "`my_result` should be a dict with the keys 'accuracy', 'seconds' and 'trainable'.")
    for key in ("accuracy", "seconds", "trainable"):
        _not_done(my_result[key], f"my_result['{key}']")
    count = my_result["trainable"]
    weights = head.weight.numel()
    _require(count != total, f"my_result['trainable'] is {count:,}: every parameter of the model. Count only "
                             f"those with requires_grad (zoo.count_parameters gives both numbers).")
    _require(count != weights, f"my_result['trainable'] is {count:,}: the head's weights only. Count its "
                               f"{head.bias.numel()} biases too.")
    _require(count == trainable, f"my_result['trainable'] is {count}; your model has {trainable:,} trainable "
                                 f"parameters (the head: {head.in_features} x {head.out_features} weights + "
                                 f"{head.out_features} biases).")
    accuracy = _fraction_03(my_result["accuracy"], "my_result['accuracy']")
    actual = train.accuracy(my_model, val_loader)
    n = len(val_loader.dataset)
    _require(abs(accuracy - actual) <= 1.5 / n,
             f"my_result['accuracy'] is {accuracy:.3f}, but your model classifies {actual:.3f} of the {n} validation "
             f"images correctly. Use the best validation accuracy of the run (history.best_val_acc): train.fit "
             f"leaves the model with that epoch's weights.")
    try:
        seconds = float(my_result["seconds"])
    except (TypeError, ValueError):
        raise ExerciseError("my_result['seconds'] should be a number of seconds (time.perf_counter() "
                            "differences).") from None
    _require(seconds > 0, f"my_result['seconds'] is {seconds:g}: time the run with time.perf_counter() before "
                          f"and after, and store the difference.")
    best = max(row["accuracy"] for row in measured.values())
    _require(actual >= best - 0.1,
             f"Your head reaches {actual:.3f}, well below the chapter's runs (up to {best:.3f}). Did it train "
             f"long enough, with the chapter's learning rate and momentum?")
    rows = {**measured, "yours (base frozen by hand)": dict(accuracy=actual, seconds=seconds, trainable=count)}
    width = max(map(len, rows))
    lines = [f"  {'run':{width}}  accuracy  seconds  trainable"] + [
        f"  {name:{width}}  {r['accuracy']:8.3f}  {r['seconds']:7.1f}  {r['trainable']:9,}" for name, r in rows.items()]
    passed(f"only the head's {count:,} parameters trained, the base is the pretrained one, "
           f"validation accuracy {actual:.3f}.\n" + "\n".join(lines))


def _probe_03(x, y, val_x, val_y, per_class: int, lr: float, momentum: float, epochs: int, seed: int) -> float:
    """Best validation accuracy of a fresh Linear head trained on the first `per_class` rows of each class."""
    import contextlib
    import io

    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset

    from . import train

    classes = int(max(y.max(), val_y.max())) + 1
    rows = torch.cat([(y == c).nonzero().flatten()[:per_class] for c in range(classes)])
    torch.manual_seed(seed)
    head = nn.Linear(x.shape[1], classes)
    loaders = {"train": DataLoader(TensorDataset(x[rows], y[rows]), batch_size=32, shuffle=True,
                                   generator=torch.Generator().manual_seed(seed)),
               "val": DataLoader(TensorDataset(val_x, val_y), batch_size=256)}
    with contextlib.redirect_stdout(io.StringIO()):
        history = train.fit(head, loaders, torch.optim.SGD(head.parameters(), lr=lr, momentum=momentum), epochs,
                            device=torch.device("cpu"), progress=False)
    return history.best_val_acc


def check_03_images_per_class(shots, feature_loaders: dict, lr: float, momentum: float, epochs: int,
                              seeds: int = 3) -> None:
    """`shots` maps n (5, 10, 20) to the best validation accuracy of a fresh Linear head trained on the
    first n cached training features of each class. Compared with heads trained here the same way."""
    import torch

    _not_done(shots, "shots")
    _require(isinstance(shots, dict) and set(shots) == {5, 10, 20},
             f"`shots` should be a dict {{5: accuracy, 10: accuracy, 20: accuracy}}, not "
             f"{shots if not isinstance(shots, dict) else 'one with the keys ' + str(sorted(shots, key=str))}.")
    x, y = feature_loaders["train"].dataset.tensors
    val_x, val_y = feature_loaders["val"].dataset.tensors
    majority = torch.bincount(val_y).max().item() / len(val_y)
    full = _probe_03(x, y, val_x, val_y, len(y), lr, momentum, epochs, seed=0)
    lines = []
    for n in (5, 10, 20):
        got = _fraction_03(shots[n], f"shots[{n}]")
        reference = [_probe_03(x, y, val_x, val_y, n, lr, momentum, epochs, seed) for seed in range(seeds)]
        low, high = min(reference) - 0.05, max(reference) + 0.05
        if low <= got <= high:
            used = sum(min(n, int((y == c).sum())) for c in range(int(y.max()) + 1))
            lines.append(f"  {n:2} per class ({used:3} images): {got:.3f}   "
                         f"(reference {min(reference):.3f}-{max(reference):.3f})")
            continue
        if abs(got - majority) < 0.02 and low > majority + 0.02:
            raise ExerciseError(f"With {n} per class your head scores {got:.3f}: chance level (always the same "
                                f"class). Did your subset hold every class? `x[:{n}]` takes the first rows, which "
                                f"are all of one class (features are in dataset order, sorted by class): select "
                                f"{n} rows per class, e.g. with (y == c).nonzero().")
        if abs(got - full) < 0.02 and high < full - 0.02:
            raise ExerciseError(f"With {n} per class you have {got:.3f}, which is what a head trained on all "
                                f"{len(y)} training features reaches ({full:.3f}): did you train on the subset?")
        raise ExerciseError(f"With {n} per class you have {got:.3f}; a fresh head trained on the first {n} "
                            f"features of each class for {epochs} epochs (lr {lr}, momentum {momentum}) reaches "
                            f"{min(reference):.3f}-{max(reference):.3f} here. Check the subset, a fresh "
                            f"nn.Linear for each n, and that you report history.best_val_acc.")
    passed("\n".join([f"how accuracy grows with labelled images (all {len(y)}: {full:.3f}):"] + lines))


