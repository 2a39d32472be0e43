"""The command line's options, each declared once: their types, help and defaults (avaudit.cli uses them).

Kept apart from the commands so that cli.py holds the commands alone; like cli.py, imports no torch, numpy
or pandas.
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from avaudit.options import DEFAULT_MODEL, THRESHOLDS, AuditOptions
from avaudit.vocab import Confidence, Decoder, Device, NoAudio, Rule

DataArg = Annotated[Path, typer.Argument(help="Folder of category folders, flat folder, manifest file, WebDataset "
                                              "shards (a .tar, a folder of them, train-{000000..000099}.tar) or "
                                              "Parquet (a file or a folder of them).",
                                         metavar="DATA", show_default=False)]
DecoderOpt = Annotated[Optional[Decoder], typer.Option(
    help="What decodes the frames: pyav reads every container right; decord (0.6.0) decodes those it can "
         f"time, PyAV the rest. The sound is always PyAV's [default: {AuditOptions.decoder}].")]
ModelOpt = Annotated[Optional[Path], typer.Option(
    help=f"Checkpoint [default: the shipped avaudit/{DEFAULT_MODEL.parent.name}/{DEFAULT_MODEL.name}].")]
RootOpt = Annotated[Optional[Path], typer.Option(help="Where a manifest's media live [default: its folder].")]
DeviceOpt = Annotated[Device, typer.Option(help=f"Where the network runs [default: {AuditOptions.device}].",
                                           show_default=False)]
ClassesOpt = Annotated[Optional[Path], typer.Option(
    help="AudioSet's class index (index,mid,display_name) naming a segments CSV's labels "
         "[default: class_labels_indices.csv beside DATA].")]
OutsideOpt = Annotated[bool, typer.Option(help="Open manifest rows that name files outside --root.")]
CacheOpt = Annotated[Optional[Path], typer.Option(
    help="Logit cache, outside DATA [default: $AVAUDIT_CACHE_DIR or ~/.cache/avaudit].")]


LabelFieldOpt = Annotated[Optional[str], typer.Option(
    help="The label's field of shards' .json members, or Parquet's label column (a list is several "
         "labels) [default: a shard's .cls or .txt member, else the field or column `label`].")]
VideoColumnOpt = Annotated[Optional[str], typer.Option(
    help="Parquet's column of video bytes, paths, or datasets' Video struct [default: video].")]


# The options every audit command shares, each declared once: name (an AuditOptions field) -> (its
# option, the CLI's default). None and False mean "not given": AuditOptions has the defaults.
AUDIT_OPTIONS = {
    "model": (ModelOpt, None),
    "confidence": (Annotated[Optional[Confidence], typer.Option(
        help="raw: the paper's softmax; calibrated: per-layer temperatures fitted on validation "
             f"[default: {AuditOptions.confidence}].")], None),
    "root": (RootOpt, None),
    "device": (DeviceOpt, None),
    "batch_size": (Annotated[Optional[int], typer.Option(
        help=f"Clips per batch [default: {AuditOptions.batch_size}].")], None),
    "workers": (Annotated[Optional[int], typer.Option(
        help="Decoding worker processes; 0 means 1, so that a crashing decoder costs one clip "
             "[default: one per CPU core, shared by torchrun ranks].", show_default=False)], None),
    "cache_dir": (CacheOpt, None),
    "no_audio": (Annotated[Optional[NoAudio], typer.Option(
        help="Clips without a sound track: skip them, or audit them with silence "
             f"[default: {AuditOptions.no_audio}].")], None),
    "decoder": (DecoderOpt, None),
    "classes": (ClassesOpt, None),
    "allow_outside_root": (OutsideOpt, False),
    "label_field": (LabelFieldOpt, None),
    "video_column": (VideoColumnOpt, None),
}
OutOpt = Annotated[Optional[Path], typer.Option(help="Output folder [default: ./avaudit-out/<command>].",
                                                metavar="OUT")]
TruthOpt = Annotated[Optional[list[str]], typer.Option(help="People's labels to score against: a VGGSounder CSV, "
    "`vggsounder` (the installed package's), or AVVP's audio then visual event file (twice).")]
RuleOpt = Annotated[Optional[Rule], typer.Option(
    help=f"paper: layer most confident in the true label; sufficiency: does one modality alone suffice "
         f"[default: {THRESHOLDS.rule}].")]
