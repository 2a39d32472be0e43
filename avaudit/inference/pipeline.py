"""DATA -> logits: read the manifest, check what the audit needs before any decoding, and get each
row's five-layer logits, from the cache where a video was seen before with the same model.

Every audit command starts here (commands.py); what it decides from the logits is its own.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np
import pandas as pd

from avaudit.audits.decisions import probabilities
from avaudit.audits.reduce import gathered
from avaudit.errors import NotRankZero, ParameterError, UsageError
from avaudit.labels import apply_label_policy, labelled_rows
from avaudit.media.formats import CLASS_INDEX
from avaudit.media.manifests import Manifest
from avaudit.media.sources import rank_rows, read_data
from avaudit.media.window import is_padded
from avaudit.options import AuditOptions, audit_options, check_path
from avaudit.outputs import check_writes
from avaudit.vocab import SKIPPED_COLUMNS, Confidence, LabelPolicy

if TYPE_CHECKING:
    from avaudit.inference.logits import RowLogits


BLOCK_ROWS = 65_536  # rows an audit decides on at a time: (65,536, 5, C) float32 is 21 MB at 16 classes
BLOCK_VALUES = BLOCK_ROWS * 5 * 16  # and at most that many logits: a block of 400 classes is 2,621 rows, not 524 MB


def block_rows(n_classes: int = 16) -> int:
    """Rows of each block an audit reads: BLOCK_ROWS, fewer where rows have more than 16 classes (BLOCK_VALUES), or
    $AVAUDIT_BLOCK_ROWS (tests force tiny blocks). A block's arrays are made afresh: half a gigabyte of them cost
    a cached `bias` of 400 classes more time in page faults than its arithmetic."""
    given = os.environ.get("AVAUDIT_BLOCK_ROWS", str(min(BLOCK_ROWS, BLOCK_VALUES // (5 * max(n_classes, 1)))))
    if not given.strip().isdigit():
        raise UsageError(f"$AVAUDIT_BLOCK_ROWS must be a whole number of rows, not {given!r}")
    return max(int(given), 1)


@dataclass
class Audit:
    """What the pipeline hands the decisions: the rows that decoded, their logits a block at a time, and what a
    run record says of DATA and the model. Plain data, so a command reads it without calling back."""
    manifest: Manifest
    checkpoint: dict
    classes: list[str]
    layers: RowLogits  # (N, 5, C) logits of every manifest table row, NaN where skipped, read a block at a time
    rows: pd.DataFrame  # decoded rows (one per video and label with LabelPolicy.require), `position` in logits
    window: dict[str, pd.Series]  # `seconds` and `padded` of each of `rows` (window_columns)
    record: dict  # the run record's settings of DATA and the model (run_settings)
    skipped: pd.DataFrame
    n_rows: int  # manifest rows, skipped ones included
    n_cached: int
    notes: list[str] = field(default_factory=list)  # lines for the user: media found where, classes known
    # Each manifest table row's quality arrays (logits.quality_arrays: signals, signatures, digests), measured
    # in the decode that gave its logits; {} when the audit ran without them (AVAUDIT_SIGNALS=0).
    quality: dict[str, np.ndarray] = field(default_factory=dict)

    def read(self, position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, the confidences the audits decide on: raw or temperature-scaled), each (n, 5, C), of the
        manifest rows at `position`: a block of them (audits.reduce)."""
        logits = self.layers.read(position)
        return logits, probabilities(logits, self.record["confidence"], self.checkpoint.get("temperatures"))

    @property
    def logits(self) -> np.ndarray:
        """Every row's logits (N, 5, C) at once: for small data and the library's callers; the commands read blocks."""
        return self.layers.everything()

    @property
    def probabilities(self) -> np.ndarray:
        """Every row's confidences (N, 5, C) at once."""
        return self.probabilities_of(np.arange(len(self.layers)))

    def probabilities_of(self, position: np.ndarray, dtype=None) -> np.ndarray:
        """The confidences (n, 5, C) of the rows at `position` in one array of `dtype` (default theirs), read-only,
        made a block at a time: the logits of one block beside them, not of every row (a decision that needs them
        all: missing-labels, which takes float64 and so is given them, not a float32 array to copy)."""
        out = gathered(self.read, position, block_rows(len(self.classes)), dtype)
        out.flags.writeable = False  # a decision that changed it would change the others'
        return out


def decoded_rows(table: pd.DataFrame, decoded: np.ndarray) -> pd.DataFrame:
    """The manifest rows that decoded (`decoded` (N,) bool), with their `position` in the logits; the table's own
    columns where every row decoded (a cached re-audit), not a copy of them."""
    rows = table.assign(position=np.arange(len(table)))
    return rows if decoded.all() else rows[decoded]


def window_columns(seconds: np.ndarray, model: dict) -> dict[str, pd.Series]:
    """`seconds` of real content in each row's window, and `padded`: the window ran past the file's end,
    so the rest was black and silent (the decoder's rule, media.window.is_padded). Empty where the cache
    predates these columns."""
    seconds = seconds.astype(float)
    padded = pd.array(is_padded(seconds, seconds=model["seconds"], steps=model["steps"]), dtype="boolean")
    padded[np.isnan(seconds)] = pd.NA
    return {"seconds": pd.Series(seconds.round(2)), "padded": pd.Series(padded)}


def run_settings(manifest: Manifest, o: AuditOptions, checkpoint: dict, *, n_rows: int, n_skipped: int) -> dict:
    """DATA's and the model's part of a run record, paths absolute so a record read from another folder
    still names the same files."""
    return {"data": os.path.abspath(manifest.source), "format": manifest.format,
            "root": os.path.abspath(manifest.root), "model": os.path.abspath(o.model_file),
            "preset": checkpoint["config"]["preset"], "confidence": str(o.confidence), "no_audio": str(o.no_audio),
            "decoder": str(o.decoder), "classes": os.path.abspath(o.classes) if o.classes else None,
            "allow_outside_root": o.allow_outside_root, "label_field": o.label_field, "video_column": o.video_column,
            "n_rows": n_rows, "n_skipped": n_skipped}


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

    check_path("data", data)
    block_rows()  # a bad $AVAUDIT_BLOCK_ROWS refused before the decode, not after
    o = audit_options(options, fields)
    manifest = read_data(data, root=o.root, classes=o.classes, allow_outside_root=o.allow_outside_root,
                         label_field=o.label_field, video_column=o.video_column)
    index = [o.classes] if o.classes else [manifest.source.with_name(CLASS_INDEX), manifest.root / CLASS_INDEX]
    check_writes(writes, data=manifest.source, model=o.model_file, media=manifest.table["path"],
                 inputs={**dict.fromkeys(index, "the class index"), **(reads or {})})
    checkpoint = checkpoint_info(o.model_file, o.cache_dir)
    manifest, notes = apply_label_policy(manifest, checkpoint["classes"], LabelPolicy(labels))
    check_confidence(checkpoint, o.confidence)
    run = dict(device=str(o.device), batch_size=o.batch_size, workers=o.workers, cache_dir=o.cache_dir,
               no_audio=str(o.no_audio), decoder=str(o.decoder))
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: this rank's shard first
        run_shard(manifest.table, o.model_file, checkpoint, on_event=on_event, **run)
    layers, seconds, skipped, n_cached, quality = infer_logits(manifest.table, o.model_file, checkpoint,
                                                               on_event=on_event, **run)
    skipped = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], skipped], ignore_index=True)
    rows = decoded_rows(manifest.table, layers.decoded)
    if labels == LabelPolicy.require:  # the audit judges each (video, label)
        rows = labelled_rows(rows)
    n_rows = len(manifest.table) + len(manifest.skipped)
    return Audit(manifest, checkpoint, list(checkpoint["classes"]), layers, rows,
                 window_columns(seconds[rows["position"].to_numpy()], checkpoint["config"]["model"]),
                 run_settings(manifest, o, checkpoint, n_rows=n_rows, n_skipped=len(skipped)), skipped, n_rows,
                 n_cached, [*manifest.notes, *notes], quality)


def run_shard(table: pd.DataFrame, model_file: Path, checkpoint: dict, *, on_event: Callable | None,
              device: str, **run) -> None:
    """Under torchrun (`torchrun --nproc_per_node N -m avaudit bias DATA`, with --nnodes and a
    rendezvous for several machines, and a --cache-dir they share) each rank runs every N-th row into
    the shared cache (of shards or Parquet files, every N-th file, whole, which its decoding workers
    then share out by batches); then rank 0 goes on to read them all back and write the outputs, the
    same files a single process writes. The other ranks raise NotRankZero."""
    import torch.distributed as dist

    from avaudit.device import init_distributed
    from avaudit.inference.logits import infer_logits

    rank, world = init_distributed(device)
    infer_logits(rank_rows(table, rank, world), model_file, checkpoint, device=device,
                 on_event=on_event if rank == 0 else None, **run)
    dist.barrier()
    if rank != 0:
        raise NotRankZero
