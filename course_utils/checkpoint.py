"""Save a trained model to a file and load it back, safely.

`save` writes to a temporary file beside the target and renames it into place, so an
interrupted save (Ctrl-C, a full disk) never leaves a half-written checkpoint under the real
name. A checkpoint records the architecture and the class names with the weights; `load`
checks them against the model you load into and says what to change when they differ.
"""
from __future__ import annotations

import dataclasses
import os
import pickle
import zipfile
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from . import zoo
from .train import History

FORMAT = "course_utils checkpoint 1"


class CheckpointError(ValueError):
    """The file is not a checkpoint this model can use; the message says why and what to do."""


class Checkpoint(NamedTuple):
    model: nn.Module
    name: str              # the architecture, as zoo knows it
    classes: list[str]
    history: History | None


def save(path: str | Path, model: nn.Module, name: str, classes: list[str],
         history: History | None = None) -> Path:
    """Write `model`'s weights, its architecture `name`, the class names and the training history."""
    path = Path(path)
    head = zoo.head(model).layer
    outputs = getattr(head, "out_features", getattr(head, "out_channels", None))
    if outputs != len(classes):
        raise CheckpointError(f"The model has {outputs} outputs but {len(classes)} class names were given "
                              f"({', '.join(classes)}); save the model that was trained on those classes.")
    payload = {"format": FORMAT, "name": name, "classes": list(classes),
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
               "history": dataclasses.asdict(history) if history is not None else None}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(payload, temporary)
        os.replace(temporary, path)  # atomic: the old file, or the new one, never half of one
    except OSError as err:
        raise CheckpointError(f"Could not write {path} ({err}). Check that the folder is writable and "
                              f"has space; nothing was written under that name.") from err
    finally:
        temporary.unlink(missing_ok=True)
    return path


def load(path: str | Path, model: nn.Module | None = None, device: torch.device | None = None) -> Checkpoint:
    """Load a checkpoint written by `save`, into `model` or into a new model of the saved architecture."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Train a model and save it first with "
                                f"checkpoint.save(path, model, name, classes).")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}): the file is "
                              f"damaged or was not written by checkpoint.save. Save the model again.") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by checkpoint.save (a bare state_dict or another "
                              f"program's file?). Load it with torch.load and model.load_state_dict instead.")
    name, classes, state = payload["name"], payload["classes"], payload["state_dict"]
    if model is None:
        model = zoo.load_untrained(name, num_classes=len(classes))
    _check_fits(path, model, name, classes, state)
    model.load_state_dict(state)
    if device is not None:
        model.to(device)
    history = History(**payload["history"]) if payload["history"] is not None else None
    return Checkpoint(model.eval(), name, classes, history)


def _check_fits(path: Path, model: nn.Module, name: str, classes: list[str], state: dict) -> None:
    """Raise CheckpointError naming the difference between the saved weights and `model`."""
    own = model.state_dict()
    missing, unexpected = own.keys() - state.keys(), state.keys() - own.keys()
    if missing or unexpected:
        raise CheckpointError(f"{path} holds the weights of a {name}, which does not fit this "
                              f"{type(model).__name__} ({len(missing)} of its weights missing, {len(unexpected)} "
                              f"unknown). Load it without a model (checkpoint.load(path)) to get a {name}.")
    head_name = zoo.head(model).name
    for key, saved in state.items():
        if own[key].shape != saved.shape:
            if key.startswith(head_name + "."):
                raise CheckpointError(
                    f"{path} was trained on {len(classes)} classes ({', '.join(classes)}), but this model's "
                    f"head {head_name} has {own[key].shape[0]} outputs. Give it {len(classes)}: "
                    f"zoo.replace_head(model, {len(classes)}), or load without a model.")
            raise CheckpointError(f"{path} holds a {name} whose {key} has shape {tuple(saved.shape)}, not "
                                  f"{tuple(own[key].shape)} as in this model: another variant of the architecture.")
