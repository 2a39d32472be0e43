"""One function per audit command: read DATA, run the model, decide, write the output files.

The CLI calls these and prints; tests call them directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .bias import bias_audit
from .inference import SKIPPED_COLUMNS, run_model
from .manifests import Manifest, read_manifest
from .outputs import write_csv, write_json, write_yaml

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default.pt"


@dataclass
class AuditRun:
    """What an audit produced: its tables by output file name, and the skipped rows."""
    out: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=SKIPPED_COLUMNS))
    n_rows: int = 0


def resolve_model(model: Path | None) -> Path:
    return Path(model) if model is not None else DEFAULT_MODEL


def labelled_rows(table: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per (video, label): a multi-label video counts for each of its categories.

    Labels the model was not trained on are an error naming them: the model cannot judge them.
    """
    rows = table.assign(label=table["labels"].str.split(";")).explode("label")
    rows = rows[rows["label"] != ""]
    if rows.empty:
        raise ValueError("DATA has no labels: bias needs category folders or a labelled manifest")
    unknown = sorted(set(rows["label"]) - set(classes))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise ValueError(f"{len(unknown)} label(s) the model was not trained on: {shown}; "
                         f"train on this data first (`avaudit train DATA`) and pass --model")
    return rows


def infer(manifest: Manifest, model_path: Path, *, device: str, batch_size: int, workers: int,
          on_event: Callable | None) -> tuple[np.ndarray, list[str], dict, pd.DataFrame]:
    """Logits for every decodable row of the manifest, the model's classes, its checkpoint, skips."""
    from .checkpoint import load_model
    from .train import pick_device

    dev = pick_device(device)
    model, classes, config, checkpoint = load_model(model_path, device=dev)
    logits, skipped = run_model(manifest.table, model, config, device=dev, batch_size=batch_size,
                                workers=workers, on_event=on_event)
    return logits, classes, checkpoint, pd.concat([manifest.skipped, skipped], ignore_index=True)


def run_settings(command: str, manifest: Manifest, model_path: Path, checkpoint: dict, **extra) -> dict:
    return {"command": command, "data": str(manifest.source), "format": manifest.format,
            "root": str(manifest.root), "model": str(model_path), "preset": checkpoint["config"]["preset"],
            "config": checkpoint["config"], **extra}


def bias(data: Path, *, model: Path | None = None, out: Path, root: Path | None = None, device: str = "auto",
         batch_size: int = 8, workers: int = 2, on_event: Callable | None = None) -> AuditRun:
    """`avaudit bias`: bias_videos.csv, bias_categories.csv, bias_summary.json (Table 3)."""
    manifest = read_manifest(Path(data), root=root)
    model_path = resolve_model(model)
    from .checkpoint import load_checkpoint

    labelled_rows(manifest.table, load_checkpoint(model_path)["classes"])  # fail before decoding anything
    logits, classes, checkpoint, skipped = infer(manifest, model_path, device=device, batch_size=batch_size,
                                                 workers=workers, on_event=on_event)
    decoded = ~np.isnan(logits).any(axis=(1, 2))
    table = manifest.table.assign(position=np.arange(len(manifest.table)))[decoded]
    rows = labelled_rows(table, classes)
    per_video, categories, summary = bias_audit(rows, logits[rows["position"].to_numpy()], classes)
    summary.update(n_rows=len(manifest.table) + len(manifest.skipped), n_skipped=len(skipped))
    run = AuditRun(Path(out), {"bias_videos.csv": per_video, "bias_categories.csv": categories}, summary,
                   skipped, summary["n_rows"])
    write_run(run, run_settings("bias", manifest, model_path, checkpoint))
    write_json(summary, run.out / "bias_summary.json")
    return run


def write_run(run: AuditRun, settings: dict) -> None:
    for name, frame in run.tables.items():
        write_csv(frame, run.out / name)
    skipped_path = run.out / "skipped.csv"
    if len(run.skipped):
        write_csv(run.skipped, skipped_path)
    else:
        skipped_path.unlink(missing_ok=True)
    write_yaml(settings, run.out / "run.yaml")
