"""`avaudit.train`: the training command as the Python API and the CLI call it. Reads DATA, runs
the recipe, and writes what `avaudit train` writes: the checkpoint, train_history.csv and
train_curves.png beside it, and MODEL.pt.skipped.csv when some clips were not used.

Everything that can be refused is refused before the work, in the caller's terms: the arguments,
a preset that trains no epoch, an output inside DATA or over an input, and a location that cannot
take the checkpoint.

Under torchrun every rank calls it; each trains on its share, rank 0 alone writes and returns, and
the other ranks raise NotRankZero once training is done (as the audits do).
"""
from __future__ import annotations

import os
import shutil
import warnings
from numbers import Real
from pathlib import Path
from typing import Callable

import pandas as pd

from avaudit.config import Config
from avaudit.errors import AvauditWarning, UsageError
from avaudit.vocab import SKIPPED_COLUMNS

DEFAULT_OUT = Path("avaudit-out/train/model.pt")
DEVICES = ("auto", "cpu", "cuda")


def train(data: str | Path, *, preset: str | Path = "small", out: str | Path = DEFAULT_OUT,
          epochs: int | None = None, seed: int | None = None, root: Path | None = None,
          video_weights: Path | None = None, device: str = "auto", resume: bool = False,
          on_event: Callable[[str, dict], None] | None = None, workers: int | None = None,
          memory_budget: float | None = None, checkpoint_minutes: float | None = None,
          checkpoint_steps: int | None = None, classes: Path | None = None,
          allow_outside_root: bool = False, decoder: str = "pyav", label_field: str | None = None,
          video_column: str | None = None) -> dict:
    """Train the network on DATA (section 4.2's three stages) and write the checkpoint `out`.

    `epochs` (of every stage), `seed`, `workers`, `memory_budget` (GiB), `checkpoint_minutes` and
    `checkpoint_steps` override the preset's `train.*` (None: the preset's). `classes`,
    `allow_outside_root`, `label_field` and `video_column` are media.sources.read_data's; `decoder` what
    decodes the frames (pyav or decord, as the audits' --decoder). `resume` continues the run `out` holds (with no file
    at `out`, a warning says so and training starts afresh).
    Returns the validation metrics, `classes`, `skipped` (the rows of DATA not used: unreadable
    rows of the manifest, clips that did not decode), and the files written: `history_csv`,
    `curves_png` and `skipped_csv` (None where not written).
    """
    from avaudit.device import init_distributed
    from avaudit.errors import NotRankZero
    from avaudit.labels import refuse_unreadable_labels
    from avaudit.media.sources import STORED, read_data
    from avaudit.options import choice
    from avaudit.training.recipe import run_recipe
    from avaudit.vocab import Decoder

    check_arguments(data=data, preset=preset, out=out, epochs=epochs, seed=seed, device=device, resume=resume,
                    workers=workers, memory_budget=memory_budget, checkpoint_minutes=checkpoint_minutes,
                    checkpoint_steps=checkpoint_steps, root=root, video_weights=video_weights, classes=classes)
    decoder = choice("decoder", decoder, Decoder)
    config = training_config(preset, epochs=epochs, seed=seed, num_workers=workers, memory_budget=memory_budget,
                             checkpoint_minutes=checkpoint_minutes, checkpoint_steps=checkpoint_steps)
    manifest = read_data(data, root=root, classes=classes, allow_outside_root=allow_outside_root,
                         label_field=label_field, video_column=video_column)
    refuse_unreadable_labels(manifest)
    if manifest.format in STORED and manifest.notes and (manifest.table["labels"] == "").any():  # the notes say why
        raise UsageError(f"every training clip needs a label: {'; '.join(manifest.notes)}")
    out = Path(out)
    check_outputs(out, manifest=manifest, video_weights=video_weights, config=config)
    if out.exists() and not resume:  # every torchrun rank checks, so none waits for one that left
        raise UsageError(f"{out} exists: pass --resume to continue it, or another --out")
    rank, _ = init_distributed(device)
    if resume and not out.exists():
        if rank == 0:
            warnings.warn(f"resume: {out} does not exist, so there is nothing to resume; training starts afresh",
                          AvauditWarning, stacklevel=2)
        resume = False
    result = run_recipe(manifest.table, config=config, out=out, video_weights=video_weights, device=device,
                        resume=resume, decoder=decoder, on_event=on_event if rank == 0 else None)
    if rank != 0:
        raise NotRankZero
    return {**result, **skipped_list(manifest.skipped, result["skipped"], out)}


def check_arguments(*, data, preset, out, epochs, seed, device, resume, workers, memory_budget, checkpoint_minutes,
                    checkpoint_steps, root, video_weights, classes) -> None:
    """At the door: each argument's type and range, or a UsageError naming the parameter."""
    for name, value, optional in (("data", data, False), ("out", out, False), ("root", root, True),
                                  ("video_weights", video_weights, True), ("classes", classes, True)):
        if not (isinstance(value, (str, os.PathLike)) or (optional and value is None)):
            raise UsageError(f"{name} must be a path (str or Path), not {value!r} ({type(value).__name__})")
    if not isinstance(preset, (str, os.PathLike)):
        raise UsageError(f"preset must be a preset name or a YAML file (str or Path), not {preset!r} "
                         f"({type(preset).__name__})")
    for name, value, low in (("epochs", epochs, 1), ("seed", seed, None), ("workers", workers, 0),
                             ("checkpoint_steps", checkpoint_steps, 0)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise UsageError(f"{name} must be a whole number (int), not {value!r} ({type(value).__name__})")
        if value is not None and low is not None and value < low:
            raise UsageError(f"{name} must be {low} or more, not {value}")
    for name, value in (("memory_budget", memory_budget), ("checkpoint_minutes", checkpoint_minutes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
            raise UsageError(f"{name} must be a number, not {value!r} ({type(value).__name__})")
        if value is not None and not value >= 0:
            raise UsageError(f"{name} must be 0 or more, not {value}")
    if device not in DEVICES:
        raise UsageError(f"device must be one of {', '.join(DEVICES)}, not {device!r}")
    if not isinstance(resume, bool):
        raise UsageError(f"resume must be True or False, not {resume!r} ({type(resume).__name__})")


def training_config(preset: str | Path, **overrides) -> Config:
    """The preset with the overrides that are not None (`epochs` for every stage); refused when it
    would train no epoch (an untrained model is not a result)."""
    from avaudit.config import load_config

    given = {f"train.{name}": value for name, value in overrides.items() if value is not None}
    if "train.epochs" in given:
        given["train.epochs"] = [given["train.epochs"]] * 3
    config = load_config(preset, given)
    epochs = list(config.train.epochs)
    why = ("an epoch count below 0" if min(epochs) < 0 else
           "no stage has an epoch to train" if not sum(epochs) else None)
    if why:
        raise UsageError(f"the preset's train.epochs is {epochs}: {why}; no model written")
    return config


def check_outputs(out: Path, *, manifest, video_weights: Path | None, config: Config) -> None:
    """Before any work: none of the files train writes may land inside DATA or replace an input
    (outputs.check_writes, the audits' rule), and `out`'s location must take the checkpoint."""
    from avaudit.outputs import check_writes
    from avaudit.training.split import training_classes
    from avaudit.training.state import CURVES_FILE, HISTORY_FILE

    writes = [out, out.parent / HISTORY_FILE, out.parent / CURVES_FILE, skipped_path(out)]
    check_writes(writes, data=manifest.source, model=video_weights, media=manifest.table["path"])
    check_room(out, need=checkpoint_bytes(config, n_classes=max(2, len(training_classes(manifest.table["labels"])))))


def check_room(out: Path, *, need: int) -> None:
    """The nearest existing folder on `out`'s path has room for `need` bytes (outputs.check_writes has
    already made a file there); else a UsageError, before hours of training end at the first checkpoint."""
    folder = next(p for p in out.parents if p.exists())
    free = shutil.disk_usage(folder).free
    if free < need:
        raise UsageError(f"cannot write {out}: {folder} has {free / 2**10:,.0f} KiB free, and the checkpoint needs "
                         f"about {need / 2**20:,.1f} MiB")


def checkpoint_bytes(config: Config, *, n_classes: int) -> int:
    """Room a checkpoint needs while it is replaced: weights and SGD momentum (float32), twice (the
    new file is written beside the old one before the rename)."""
    from avaudit.model.fusion import FusionNet

    model = FusionNet(config.model, n_classes)  # under a second, even for `paper`
    weights = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return 2 * 2 * 4 * weights


def skipped_list(manifest_skipped: pd.DataFrame, not_decoded: pd.DataFrame, out: Path) -> dict:
    """The rows not used (the manifest's, then the clips that did not decode), written beside the
    model when there are some."""
    from avaudit.outputs import OutputError, write_csv

    skipped = pd.concat([manifest_skipped[list(SKIPPED_COLUMNS)], not_decoded], ignore_index=True)
    listed = skipped_path(out) if len(skipped) else None
    if listed is not None:
        try:
            write_csv(skipped, listed)
        except OSError as err:
            raise OutputError(f"{listed}: writing the list of skipped clips failed ({err.strerror or err}); the "
                              f"model is written") from None
    return {"skipped": skipped, "skipped_csv": listed}


def skipped_path(out: Path) -> Path:
    """The list of the rows not used: beside the model, named after it."""
    return out.with_name(out.name + ".skipped.csv")
