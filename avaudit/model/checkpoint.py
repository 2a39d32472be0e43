"""Checkpoints: plain tensors and containers only, so they load with torch.load(weights_only=True).

torch is imported inside the functions that need it: CheckpointError is raised and caught on
paths (the CLI, cached re-audits) that must not pay for importing torch.
"""
from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from avaudit.config import Config, config_from_dict
from avaudit.errors import AvauditError

if TYPE_CHECKING:
    import torch

FORMAT = "avaudit-checkpoint-1"


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

    from avaudit.outputs import atomic_write

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

    path = require_file(path)
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
    if preset is not None and data["config"].get("preset") != preset:
        raise CheckpointError(f"{path}: made with preset {data['config'].get('preset')!r}, not {preset!r}")
    return data


def checkpoint_config(data: dict) -> Config:
    return config_from_dict(data["config"])


def load_model(path: str | Path, *, device: str | torch.device = "cpu"):
    """(model in eval mode, class names, config, checkpoint dict) from a checkpoint file."""
    import torch

    from avaudit.model.fusion import FusionNet

    data = load_checkpoint(path)
    config = checkpoint_config(data)
    model = FusionNet(config.model, len(data["classes"]))
    try:
        model.load_state_dict(data["model"])
    except RuntimeError as err:
        raise CheckpointError(f"{path}: weights do not fit preset {config.preset!r}: "
                              f"{str(err).splitlines()[0]}") from None
    model = model.to(device).eval()
    if torch.device(device).type == "cuda":  # cuDNN's fast 3-D convolutions want channels-last
        model.video_net.to(memory_format=torch.channels_last_3d)
    return model, list(data["classes"]), config, data
