"""Checkpoints: plain tensors and containers only, so they load with torch.load(weights_only=True).

torch is imported inside the functions that need it: CheckpointError is raised and caught on
paths (the CLI, cached re-audits) that must not pay for importing torch.
"""
from __future__ import annotations

import dataclasses
import math
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from avaudit.config import Config, ModelConfig, TrainConfig, config_from_dict
from avaudit.errors import AvauditError
from avaudit.vocab import plural

if TYPE_CHECKING:
    import torch

FORMAT = "avaudit-checkpoint-1"
MAX_CLIP_BYTES = 2**31  # one decoded clip's memory (the paper's is 4.2 MiB): a config past it is no network's
POSITIVE = object()  # the least a config field may be, unless FIELD_LEAST says otherwise: more than 0
# Config fields that may be 0 (or any finite number); every other one (a size, a rate, a count of steps) must
# be more than 0, or the network or its inputs cannot be built (model.steps 0 divides by zero after decoding).
FIELD_LEAST = {"model.mean": -math.inf, "train.seed": -math.inf, "train.momentum": 0, "train.weight_decay": 0,
               "train.epochs": 0, "train.patience": 0, "train.val_fraction": 0, "train.num_workers": 0,
               "train.memory_budget": 0, "train.checkpoint_minutes": 0, "train.checkpoint_steps": 0}


class CheckpointError(AvauditError, ValueError):
    """A checkpoint file that cannot be used; the message names the file and why."""


def library_versions() -> dict[str, str]:
    versions = {}
    for name in ("avaudit", "torch", "torchvision", "torchaudio", "decord", "librosa", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def atomic_save(obj, path: Path) -> None:
    """torch.save to a temporary file beside `path`, then rename: a kill leaves the old file whole."""
    import torch

    from avaudit.outputs import atomic_write, clean_stale_temps

    clean_stale_temps(Path(path).parent, Path(path).name)  # left by a save that was killed
    atomic_write(path, lambda handle: torch.save(obj, handle), durable=True)


def save_checkpoint(path: Path, *, config: Config, classes: list[str], model_state: dict, recipe: dict,
                    metrics: dict, extra: dict | None = None) -> None:
    atomic_save({
        "format": FORMAT,
        "config": config.to_dict(),
        "classes": list(classes),
        "model": model_state,
        "recipe": recipe,
        "metrics": metrics,
        "versions": library_versions(),
        **(extra or {}),
    }, path)


def require_file(path: str | Path) -> Path:
    """`path` as a Path, or a CheckpointError saying there is no checkpoint there."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint (train one with `avaudit train DATA --out {path}`)")
    return path


def load_checkpoint(path: str | Path, *, preset: str | None = None) -> dict:
    """Load and check a checkpoint; refuse pickled code, truncated files and other presets."""
    import torch

    from avaudit.outputs import clean_stale_temps

    path = require_file(path)
    clean_stale_temps(path.parent, path.name)  # left by a save that was killed
    with open(path, "rb") as handle:  # torch.save writes a zip archive (or, before torch 1.6, a pickle)
        if not handle.read(4).startswith((b"PK\x03\x04", b"\x80")):
            raise CheckpointError(f"{path}: not a checkpoint (not a file torch.save writes); pass the .pt file "
                                  f"`avaudit train` wrote")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - torch raises many types; all mean "unusable file"
        text = str(err)
        why = ("it holds pickled objects other than tensors (refused: loading could run code)"
               if "weights_only" in text or "Unsupported global" in text else
               f"unreadable or truncated ({type(err).__name__})")
        raise CheckpointError(f"{path}: not a usable avaudit checkpoint: {why}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an avaudit checkpoint (no '{FORMAT}' format tag)")
    check_fields(data, path, resume=preset is not None)
    weights = data.get("model")
    if not isinstance(weights, dict) or not weights or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items()):
        raise CheckpointError(f"{path}: not a usable avaudit checkpoint: 'model' is not a mapping of "
                              f"parameter names to tensors")
    broken = [name for name, tensor in weights.items() if tensor.is_floating_point() and not tensor.isfinite().all()]
    if broken:
        raise CheckpointError(f"{path}: not a usable avaudit checkpoint: NaN or infinity in "
                              f"{plural(len(broken), 'weight tensor')} ({_first(broken)}); every output would be NaN")
    if preset is not None and data["config"].get("preset") != preset:
        raise CheckpointError(f"{path}: made with preset {data['config'].get('preset')!r}, not {preset!r}")
    return data


def check_fields(data: dict, path: str | Path, *, resume: bool = False) -> None:
    """The fields besides the weights, checked by type (no torch needed, so the cached copy of a
    checkpoint's fields is checked the same way): a CheckpointError naming the file and the field,
    instead of a KeyError or TypeError later. `resume` also checks what training resumes from."""
    def bad(what: str):
        raise CheckpointError(f"{path}: not a usable avaudit checkpoint: {what}")

    config = data.get("config")
    if not isinstance(config, dict):
        bad("'config' is not a mapping")
    for section, cls in (("model", ModelConfig), ("train", TrainConfig)):
        values = config.get(section, {})
        if not isinstance(values, dict):
            bad(f"'config.{section}' is not a mapping")
        for field in dataclasses.fields(cls):
            if field.name not in values:
                continue
            value = values[field.name]
            if not _fits(value, getattr(cls(), field.name)):
                bad(f"'config.{section}.{field.name}' is {value!r}, not a value of its kind")
            least = FIELD_LEAST.get(f"{section}.{field.name}", POSITIVE)
            if not all(v is None or (math.isfinite(v) and (v > 0 if least is POSITIVE else v >= least))
                       for v in (value if isinstance(value, (list, tuple)) else [value])):
                bad(f"'config.{section}.{field.name}' is {value!r}; it must be "
                    + ("more than 0" if least is POSITIVE else "a finite number" if least == -math.inf
                       else f"{least:g} or more"))
    if not isinstance(config.get("preset", ""), str):
        bad("'config.preset' is not a name")
    try:
        model = config_from_dict(config).model
    except (TypeError, ValueError) as err:
        bad(f"'config' does not describe a network ({err})")
    if model.clip_bytes > MAX_CLIP_BYTES:  # finite but huge (steps 10**9): no decoder could fill such a clip
        bad(f"'config.model' asks for clips of {model.clip_bytes / 2**30:,.1f} GiB each (steps, crop, seconds, "
            f"sample_rate); at most {MAX_CLIP_BYTES / 2**30:g} GiB")
    classes = data.get("classes")
    if not isinstance(classes, (list, tuple)) or not classes or not all(isinstance(c, str) for c in classes) \
            or len(set(classes)) != len(classes):
        bad("'classes' is not a list of distinct category names")
    temperatures = data.get("temperatures")
    if temperatures is not None and not (isinstance(temperatures, (list, tuple)) and len(temperatures) == 5 and all(
            _fits(t, 1.0) and math.isfinite(t) and t > 0 for t in temperatures)):
        bad("'temperatures' is not five positive numbers, one per layer")
    if resume:
        recipe, metrics = data.get("recipe"), data.get("metrics")
        if not isinstance(recipe, dict) or not all(_fits(recipe.get(k), 0) for k in ("stage", "epoch")) \
                or not isinstance(recipe.get("done"), bool):
            bad("'recipe' does not say where training stopped (stage, epoch, done)")
        if not isinstance(metrics, dict) or not isinstance(metrics.get("history"), list):
            bad("'metrics' has no training history to resume")


def _fits(value, default) -> bool:
    """`value` is of the kind of `default`: an int, a number, a string, or a sequence of numbers
    (None: an optional int, such as train.num_workers, whose None means one per core)."""
    if default is None:
        return value is None or (isinstance(value, int) and not isinstance(value, bool))
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, tuple):
        return isinstance(value, (list, tuple)) and all(_fits(v, 0.0) for v in value)
    return isinstance(value, type(default))


def weights_mismatch(expected: dict, given: dict) -> str:
    """What differs between the network's weights and a checkpoint's: names missing, names not in the
    network, and shapes (the first few of each), in one line."""
    missing = [name for name in expected if name not in given]
    unknown = [name for name in given if name not in expected]
    shapes = [f"{name} {tuple(given[name].shape)} where the network has {tuple(tensor.shape)}"
              for name, tensor in expected.items() if name in given and given[name].shape != tensor.shape]
    parts = [f"{len(names):,} {what}: {_first(names)}" for names, what in (
        (shapes, "shapes differ"), (missing, "missing from the checkpoint"), (unknown, "not in the network")) if names]
    return "; ".join(parts) or "the weights' types differ"


def _first(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (" ..." if len(names) > n else "")


def checkpoint_config(data: dict) -> Config:
    return config_from_dict(data["config"])


def load_network(path: str | Path, *, device: str | torch.device = "cpu"):
    """(model in eval mode, class names, config, checkpoint dict) from a checkpoint file."""
    import torch

    from avaudit.model.fusion import FusionNet

    data = load_checkpoint(path)
    config = checkpoint_config(data)
    try:
        model = FusionNet(config.model, len(data["classes"]))
    except Exception as err:  # noqa: BLE001 - whatever a config that builds no network raises
        raise CheckpointError(f"{path}: its config does not build a network ({type(err).__name__}: "
                              f"{str(err).splitlines()[0] if str(err) else 'no detail'})") from None
    try:
        model.load_state_dict(data["model"])
    except RuntimeError:
        raise CheckpointError(f"{path}: weights do not fit preset {config.preset!r}: "
                              f"{weights_mismatch(model.state_dict(), data['model'])}") from None
    model = model.to(device).eval()
    if torch.device(device).type == "cuda":  # cuDNN's fast 3-D convolutions want channels-last
        model.video_net.to(memory_format=torch.channels_last_3d)
    return model, list(data["classes"]), config, data
