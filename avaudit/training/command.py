"""`avaudit.train`: the training command as the Python API and the CLI call it. Reads DATA, runs
the recipe, and writes what `avaudit train` writes: the checkpoint, train_history.csv and
train_curves.png beside it, and MODEL.pt.skipped.csv when some clips were not used.

Under torchrun every rank calls it; each trains on its share, rank 0 alone writes and returns, and
the other ranks raise NotRankZero once training is done (as the audits do).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pandas as pd

from avaudit.config import Config
from avaudit.errors import UsageError
from avaudit.vocab import SKIPPED_COLUMNS

DEFAULT_OUT = Path("avaudit-out/train/model.pt")


def train(data: str | Path, *, preset: str | Path = "small", out: str | Path = DEFAULT_OUT,
          epochs: int | None = None, seed: int | None = None, root: Path | None = None,
          video_weights: Path | None = None, device: str = "auto", resume: bool = False,
          on_event: Callable[[str, dict], None] | None = None, workers: int | None = None,
          memory_budget: float | None = None, checkpoint_minutes: float | None = None,
          checkpoint_steps: int | None = None, classes: Path | None = None,
          allow_outside_root: bool = False) -> dict:
    """Train the network on DATA (section 4.2's three stages) and write the checkpoint `out`.

    `epochs` (of every stage), `seed`, `workers`, `memory_budget` (GiB), `checkpoint_minutes` and
    `checkpoint_steps` override the preset's `train.*` (None: the preset's). `classes` and
    `allow_outside_root` are read_manifest's. `resume` continues the run `out` holds.
    Returns the validation metrics, `classes`, `skipped` (the rows of DATA not used: unreadable
    rows of the manifest, clips that did not decode) and `skipped_csv` (where they were listed, or None).
    """
    from avaudit.commands import NotRankZero
    from avaudit.device import init_distributed
    from avaudit.media.manifests import read_manifest
    from avaudit.outputs import write_csv
    from avaudit.training.recipe import run_recipe

    config = training_config(preset, epochs=epochs, seed=seed, num_workers=workers, memory_budget=memory_budget,
                             checkpoint_minutes=checkpoint_minutes, checkpoint_steps=checkpoint_steps)
    manifest = read_manifest(Path(data), root=root, classes=classes, allow_outside_root=allow_outside_root)
    out = Path(out)
    if out.exists() and not resume:  # every torchrun rank checks, so none waits for one that left
        raise UsageError(f"{out} exists: pass --resume to continue it, or another --out")
    rank, _ = init_distributed(device)
    result = run_recipe(manifest.table, config=config, out=out, video_weights=video_weights, device=device,
                        resume=resume, on_event=on_event if rank == 0 else None)
    if rank != 0:
        raise NotRankZero
    skipped = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], result["skipped"]], ignore_index=True)
    listed = skipped_path(out) if len(skipped) else None
    if listed is not None:
        write_csv(skipped, listed)
    return {**result, "skipped": skipped, "skipped_csv": listed}


def training_config(preset: str | Path, **overrides) -> Config:
    """The preset with the overrides that are not None (`epochs` for every stage)."""
    from avaudit.config import load_config

    given = {f"train.{name}": value for name, value in overrides.items() if value is not None}
    if "train.epochs" in given:
        given["train.epochs"] = [given["train.epochs"]] * 3
    return load_config(preset, given)


def skipped_path(out: Path) -> Path:
    """The list of the rows not used: beside the model, named after it."""
    return out.with_name(out.name + ".skipped.csv")
