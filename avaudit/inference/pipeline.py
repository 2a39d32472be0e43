"""DATA -> logits: read the manifest, check what the audit needs before any decoding, and get each
row's five-layer logits, from the cache where a video was seen before with the same model.

Every audit command starts here (commands.py); what it decides from the logits is its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from avaudit.audits.decisions import probabilities
from avaudit.errors import NotRankZero, ParameterError
from avaudit.labels import apply_label_policy, labelled_rows
from avaudit.media.formats import CLASS_INDEX
from avaudit.media.manifests import Manifest, read_manifest
from avaudit.media.window import is_padded
from avaudit.options import AuditOptions, audit_options
from avaudit.outputs import check_writes
from avaudit.vocab import SKIPPED_COLUMNS, Confidence, LabelPolicy


@dataclass
class Audit:
    """A manifest with the logits of the rows that decoded."""
    manifest: Manifest
    options: AuditOptions
    checkpoint: dict
    logits: np.ndarray  # (N, 5, C) for every manifest table row, NaN where skipped
    seconds: np.ndarray  # (N,) seconds of real content in each row's window, NaN where skipped
    probabilities: np.ndarray  # (N, 5, C) softmax of logits, raw or temperature-scaled
    skipped: pd.DataFrame
    n_cached: int
    notes: list[str] = field(default_factory=list)  # lines for the user: media found where, classes known

    @property
    def classes(self) -> list[str]:
        return list(self.checkpoint["classes"])

    @property
    def confidence(self) -> str:
        return str(self.options.confidence)

    @property
    def decoded(self) -> np.ndarray:
        return ~np.isnan(self.logits).any(axis=(1, 2))

    @property
    def n_rows(self) -> int:
        return len(self.manifest.table) + len(self.manifest.skipped)

    def decoded_rows(self) -> pd.DataFrame:
        """The manifest rows that decoded, with their `position` in the logits."""
        return self.manifest.table.assign(position=np.arange(len(self.manifest.table)))[self.decoded]

    def labelled_rows(self) -> pd.DataFrame:
        """One row per (decoded video, label), with its `position` in the logits."""
        return labelled_rows(self.decoded_rows())

    def window_columns(self, position: np.ndarray) -> dict[str, pd.Series]:
        """`seconds` of real content in each row's window, and `padded`: the window ran past the
        file's end, so the rest was black and silent (the decoder's rule, media.window.is_padded).
        Empty where the cache predates these columns."""
        window, steps = self.checkpoint["config"]["model"]["seconds"], self.checkpoint["config"]["model"]["steps"]
        seconds = self.seconds[position].astype(float)
        padded = pd.array(is_padded(seconds, seconds=window, steps=steps), dtype="boolean")
        padded[np.isnan(seconds)] = pd.NA
        return {"seconds": pd.Series(seconds.round(2)), "padded": pd.Series(padded)}

    def settings(self, command: str, **extra) -> dict:
        """The run record's settings (runs.write_run), paths absolute so a record read from another
        folder still names the same files."""
        o = self.options
        return {"command": command, "data": os.path.abspath(self.manifest.source), "format": self.manifest.format,
                "root": os.path.abspath(self.manifest.root), "model": os.path.abspath(o.model_file),
                "preset": self.checkpoint["config"]["preset"], "confidence": self.confidence,
                "no_audio": str(o.no_audio), "classes": os.path.abspath(o.classes) if o.classes else None,
                "allow_outside_root": o.allow_outside_root, "n_rows": self.n_rows, "n_skipped": len(self.skipped),
                **extra, "config": self.checkpoint["config"]}


def check_confidence(checkpoint: dict, confidence: str) -> None:
    """Calibrated confidences need the temperatures training fits: said before any decoding."""
    if confidence == Confidence.calibrated and "temperatures" not in checkpoint:
        raise ParameterError("confidence", "calibrated: this checkpoint has no fitted temperatures (trained before "
                                           "calibration existed); retrain it or use raw confidences")


def audit(data: Path, options: AuditOptions | None = None, *, labels: LabelPolicy = LabelPolicy.ignore,
          on_event: Callable | None = None, writes: Sequence[Path] = (), reads: dict[Path, str] | None = None,
          **fields) -> Audit:
    """Read DATA and get the five-layer logits of every row, from the cache where possible.

    `labels` (vocab.LabelPolicy) says what the audit does with DATA's labels; they are checked
    before anything is decoded, as are `writes`, the files the caller will write
    (outputs.check_writes: none may overwrite an input, the class index or `reads`). Keyword `fields` set AuditOptions
    (model=..., device=...), checked with `options` (options.audit_options).
    """
    from avaudit.inference.logits import checkpoint_info, infer_logits

    o = audit_options(options, fields)
    manifest = read_manifest(Path(data), root=o.root, classes=o.classes, allow_outside_root=o.allow_outside_root)
    index = [o.classes] if o.classes else [manifest.source.with_name(CLASS_INDEX), manifest.root / CLASS_INDEX]
    check_writes(writes, data=manifest.source, model=o.model_file, media=manifest.table["path"],
                 inputs={**dict.fromkeys(index, "the class index"), **(reads or {})})
    checkpoint = checkpoint_info(o.model_file, o.cache_dir)
    manifest, notes = apply_label_policy(manifest, checkpoint["classes"], LabelPolicy(labels))
    check_confidence(checkpoint, o.confidence)
    run = dict(device=str(o.device), batch_size=o.batch_size, workers=o.workers, cache_dir=o.cache_dir,
               no_audio=str(o.no_audio))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: this rank's shard first
        run_shard(manifest.table, o.model_file, checkpoint, on_event=on_event, **run)
    logits, seconds, skipped, n_cached = infer_logits(manifest.table, o.model_file, checkpoint, on_event=on_event,
                                                      **run)
    skipped = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], skipped], ignore_index=True)
    return Audit(manifest, o, checkpoint, logits, seconds,
                 probabilities(logits, str(o.confidence), checkpoint.get("temperatures")), skipped, n_cached,
                 [*manifest.notes, *notes])


def run_shard(table: pd.DataFrame, model_file: Path, checkpoint: dict, *, on_event: Callable | None,
              device: str, **run) -> None:
    """Under torchrun (`torchrun --nproc_per_node N -m avaudit bias DATA`, with --nnodes and a
    rendezvous for several machines, and a --cache-dir they share) each rank runs every N-th row into
    the shared cache; then rank 0 goes on to read them all back and write the outputs, the same files
    a single process writes. The other ranks raise NotRankZero."""
    import torch.distributed as dist

    from avaudit.device import init_distributed
    from avaudit.inference.logits import infer_logits

    rank, world = init_distributed(device)
    infer_logits(table.iloc[rank::world], model_file, checkpoint, device=device,
                 on_event=on_event if rank == 0 else None, **run)
    dist.barrier()
    if rank != 0:
        raise NotRankZero
