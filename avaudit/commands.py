"""One function per audit command: read DATA, get each video's logits, decide, write the files.

The CLI calls these and prints; tests call them directly. Logits come from the cache where a
video was seen before with the same model, so re-audits do no decoding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from avaudit.vocab import LAYERS
from avaudit.vocab import SKIPPED_COLUMNS
from avaudit.media.manifests import Manifest, read_manifest
from avaudit.outputs import write_csv, write_json, write_yaml

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default.pt"
CONFIDENCES = ("raw", "calibrated")
DEFAULT_RULE = "sufficiency"  # recovers planted truth better than the paper's rule (README)
DEFAULT_CONFIDENCE = "raw"  # see README: measured on planted data
SUFFICIENCY_FRACTION = 0.9  # chosen on our own planted tuning set (README)
TYPE_MARGIN = 0.003  # an event type is named when its layer leads the other audio-visual layers by this (README)
MIN_CANDIDATE_CONFIDENCE = 0.5  # missing-label candidates below this are left out (README)
MAX_CANDIDATE_CONFUSION = 0.1  # a layer proposing a candidate this much on its label's other videos: set apart (README)


class NotRankZero(Exception):
    """On torchrun ranks other than 0, once their shard is in the cache: rank 0 alone writes."""


@dataclass
class Audit:
    """A manifest with the logits of the rows that decoded."""
    manifest: Manifest
    model_path: Path
    checkpoint: dict
    classes: list[str]
    confidence: str
    logits: np.ndarray  # (N, 5, C) for every manifest table row, NaN where skipped
    probabilities: np.ndarray  # softmax of logits, raw or temperature-scaled
    skipped: pd.DataFrame
    n_cached: int
    no_audio: str = "skip"

    @property
    def decoded(self) -> np.ndarray:
        return ~np.isnan(self.logits).any(axis=(1, 2))

    @property
    def n_rows(self) -> int:
        return len(self.manifest.table) + len(self.manifest.skipped)

    def settings(self, command: str, **extra) -> dict:
        return {"command": command, "data": str(self.manifest.source), "format": self.manifest.format,
                "root": str(self.manifest.root), "model": str(self.model_path),
                "preset": self.checkpoint["config"]["preset"], "confidence": self.confidence,
                "no_audio": self.no_audio,
                "n_rows": self.n_rows, "n_skipped": len(self.skipped), **extra, "config": self.checkpoint["config"]}


@dataclass
class AuditRun:
    """What an audit command produced: its tables by output file name, and the skipped rows."""
    out: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SKIPPED_COLUMNS)))
    n_rows: int = 0
    n_cached: int = 0
    manifest: Manifest | None = None  # the DATA read, for a command that goes on with it (retarget)


def labelled_rows(table: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """One row per (video, label): a multi-label video counts for each of its categories."""
    check_labels(table, classes)
    labels = table["labels"].fillna("")
    if labels.str.contains(";", regex=False).any():
        rows = table.assign(label=labels.str.split(";")).explode("label")
    else:  # one label a row, the common case: no lists to explode
        rows = table.assign(label=labels)
    return rows[rows["label"] != ""]


def check_labels(table: pd.DataFrame, classes: list[str]) -> None:
    """Labels the model was not trained on are an error naming them: the model cannot judge them."""
    names = set(";".join(table["labels"].fillna("").unique()).split(";")) - {""}
    if not names:
        raise ValueError("DATA has no labels: this audit needs category folders or a labelled manifest")
    unknown = sorted(names - set(classes))
    if unknown:
        shown = ", ".join(repr(u) for u in unknown[:8]) + (" ..." if len(unknown) > 8 else "")
        raise ValueError(f"{len(unknown)} label(s) the model was not trained on: {shown}; "
                         f"train on this data first (`avaudit train DATA`) and pass --model")


def probabilities(logits: np.ndarray, checkpoint: dict, confidence: str) -> np.ndarray:
    """Per-layer softmax, temperature-scaled when `calibrated` (the paper's stated limitation)."""
    from avaudit.audits.calibration import calibrated_softmax
    from avaudit.audits.decisions import softmax

    if confidence not in CONFIDENCES:
        raise ValueError(f"--confidence must be one of {', '.join(CONFIDENCES)}")
    if confidence == "raw":
        return softmax(logits)
    if "temperatures" not in checkpoint:
        raise ValueError("this checkpoint has no fitted temperatures (trained before calibration existed); "
                         "retrain it or pass --confidence raw")
    return calibrated_softmax(logits, np.asarray(checkpoint["temperatures"]))


def audit(data: Path, *, model: Path | None = None, root: Path | None = None, device: str = "auto",
          batch_size: int = 8, workers: int | None = None, cache_dir: Path | None = None, confidence: str = DEFAULT_CONFIDENCE,
          need_labels: bool = False, no_audio: str = "skip", on_event: Callable | None = None) -> Audit:
    """Read DATA and get the five-layer logits of every row, from the cache where possible.

    Under torchrun (`torchrun --nproc_per_node N -m avaudit bias DATA`, with --nnodes and a
    rendezvous for several machines, and a --cache-dir they share) each rank first runs every N-th
    row into the shared cache; then rank 0 reads them all back and writes the outputs, which are
    the same files a single process writes. The other ranks raise NotRankZero.
    """
    from avaudit.inference.logits import checkpoint_info, infer_logits

    manifest = read_manifest(Path(data), root=root)
    model_path = Path(model) if model is not None else DEFAULT_MODEL
    checkpoint = checkpoint_info(model_path, cache_dir)
    if need_labels:
        check_labels(manifest.table, checkpoint["classes"])  # fail before decoding anything
    if confidence == "calibrated" and "temperatures" not in checkpoint:
        probabilities(np.zeros((0, len(LAYERS), 1)), checkpoint, confidence)  # raises the clear error
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # launched by torchrun: this rank's shard first
        import torch.distributed as dist

        from avaudit.device import init_distributed

        rank, world = init_distributed(device)
        infer_logits(manifest.table.iloc[rank::world], model_path, checkpoint, device=device,
                     batch_size=batch_size, workers=workers, cache_dir=cache_dir,
                     on_event=on_event if rank == 0 else None, no_audio=no_audio)
        dist.barrier()
        if rank != 0:
            raise NotRankZero
    logits, skipped, n_cached = infer_logits(manifest.table, model_path, checkpoint, device=device,
                                             batch_size=batch_size, workers=workers, cache_dir=cache_dir,
                                             on_event=on_event, no_audio=no_audio)
    skipped = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], skipped], ignore_index=True)
    return Audit(manifest, model_path, checkpoint, list(checkpoint["classes"]), confidence, logits,
                 probabilities(logits, checkpoint, confidence), skipped, n_cached, no_audio)


def decoded_rows(a: Audit) -> pd.DataFrame:
    return a.manifest.table.assign(position=np.arange(len(a.manifest.table)))[a.decoded]


def bias(data: Path, *, out: Path, rule: str = DEFAULT_RULE, fraction: float = SUFFICIENCY_FRACTION,
         type_margin: float = TYPE_MARGIN, truth: tuple[Path, Path] | None = None, **options) -> AuditRun:
    """`avaudit bias`: bias_videos.csv, bias_categories.csv, bias_summary.json (Tables 3 and 4); with
    `truth` (AVVP-style audio and visual event files), bias_truth.csv and bias_truth_categories.csv too."""
    from avaudit.audits.bias import bias_audit
    from avaudit.audits.layerstats import layer_statistics

    events = read_truth(truth) if truth is not None else None  # a bad file fails before decoding
    a = audit(data, need_labels=True, **options)
    rows = labelled_rows(decoded_rows(a), a.classes)
    position = rows["position"].to_numpy()
    per_video, categories, summary = bias_audit(rows, a.probabilities[position], a.classes, rule=rule,
                                                fraction=fraction, type_margin=type_margin)
    labels = rows["label"].map({c: i for i, c in enumerate(a.classes)}).to_numpy()
    summary["layer_statistics"] = layer_statistics(a.logits[position], labels)
    summary.update(n_rows=a.n_rows, n_skipped=len(a.skipped), confidence=a.confidence)
    run = AuditRun(Path(out), {"bias_videos.csv": per_video, "bias_categories.csv": categories}, summary,
                   a.skipped, a.n_rows, a.n_cached, a.manifest)
    if events is not None:
        from avaudit.audits.truth import modality_truth, score_against_truth

        scored, scored_categories, summary["truth"] = score_against_truth(per_video, categories,
                                                                          modality_truth(*events))
        summary["truth"].update(audio_events=str(truth[0]), visual_events=str(truth[1]))
        run.tables.update({"bias_truth.csv": scored, "bias_truth_categories.csv": scored_categories})
    write_run(run, a.settings("bias", rule=rule, fraction=fraction, type_margin=type_margin,
                              truth=[str(p) for p in truth] if truth is not None else None))
    write_json(summary, run.out / "bias_summary.json")
    return run


def read_truth(truth: tuple[Path, Path]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The audio events and the visual events files (AVVP_eval_audio.csv, AVVP_eval_visual.csv)."""
    from avaudit.media.events import read_events

    return read_events(Path(truth[0])), read_events(Path(truth[1]))


def predict(data: Path, *, out: Path, export_probs: Path | None = None, **options) -> AuditRun:
    """`avaudit predict`: predictions.csv (vote, eq. 7 set, each layer's top confidence)."""
    from avaudit.audits.decisions import multilabel, vote

    a = audit(data, **options)
    rows = decoded_rows(a)
    probs = a.probabilities[rows["position"].to_numpy()]
    names = np.asarray(a.classes)
    chosen = multilabel(probs)  # over confidences, as missing-labels does
    table = pd.DataFrame({"video_id": rows["video_id"].to_numpy(), "path": rows["path"].to_numpy(),
                          "label": rows["labels"].to_numpy(), "vote": names[vote(probs)],
                          "labels_eq7": [";".join(names[m]) for m in chosen]})
    for i, layer in enumerate(LAYERS):
        table[f"conf_{layer}"] = probs[:, i].max(axis=-1)
    run = AuditRun(Path(out), {"predictions.csv": table}, {"n_videos": len(table)}, a.skipped, a.n_rows,
                   a.n_cached)
    write_run(run, a.settings("predict"))
    if export_probs is not None:
        export_for_cleanlab(rows, probs, a.classes, Path(export_probs))
    return run


def export_for_cleanlab(rows: pd.DataFrame, probs: np.ndarray, classes: list[str], path: Path) -> None:
    """`labels` (N,) and `pred_probs` (N, C) as cleanlab's find_label_issues takes them.

    pred_probs is the mean of the five layers' distributions; a row's label is its first annotated
    label (-1 where unlabelled or unknown to the model). Per-layer probabilities ride along.
    """
    from avaudit.outputs import atomic_write

    index = {c: i for i, c in enumerate(classes)}
    labels = np.array([index.get(text.split(";")[0], -1) for text in rows["labels"]], dtype=np.int64)
    atomic_write(path, lambda handle: np.savez(
        handle, labels=labels, pred_probs=probs.mean(axis=1), layer_probs=probs, classes=np.asarray(classes),
        video_ids=rows["video_id"].to_numpy().astype(str)))


def missing_labels(data: Path, *, out: Path, min_confidence: float = MIN_CANDIDATE_CONFIDENCE,
                   max_confusion: float | None = MAX_CANDIDATE_CONFUSION, **options) -> AuditRun:
    """`avaudit missing-labels`: eq. 7 labels a video shows but is not annotated with (missing_labels.csv),
    less a layer's systematic confusions between categories (confusions.csv)."""
    from avaudit.audits.missing_labels import missing_label_candidates, split_confusions

    a = audit(data, **options)
    rows = decoded_rows(a)
    position = rows["position"].to_numpy()
    # Eq. 7 over confidences, not raw logits: the layers' logits live on different scales, and on
    # our planted tuning set comparing them found 5 of 8 planted second events, confidences 8 of 8.
    confidences = a.probabilities[position]
    candidates, confusions = split_confusions(
        missing_label_candidates(rows, confidences, a.classes, confidences=confidences, min_confidence=min_confidence),
        max_confusion=max_confusion)
    run = AuditRun(Path(out), {"missing_labels.csv": candidates, "confusions.csv": confusions},
                   {"n_videos": len(rows), "n_candidates": len(candidates),
                    "n_videos_with_candidates": int(candidates["video_id"].nunique()),
                    "n_confused": int(confusions["n_videos"].sum())}, a.skipped, a.n_rows, a.n_cached)
    write_run(run, a.settings("missing-labels", min_confidence=min_confidence, max_confusion=max_confusion))
    return run


def retarget(data: Path | None, *, keep: list[str], by: str = "category", out: Path | None = None,
             compare: str | None = None, bias_dir: Path = Path("avaudit-out/bias"), **options) -> dict:
    """`avaudit retarget`: the rows whose category (or video) falls in `keep`, in DATA's own format.

    Without DATA it reads the latest `bias` run in `bias_dir` (its run.yaml names DATA and model).
    """
    from avaudit.media.manifests import write_subset
    from avaudit.audits.retarget import compare as compare_with, select

    if data is None:
        settings_path = bias_dir / "run.yaml"
        if not settings_path.exists():
            raise ValueError(f"no DATA given and no bias run in {bias_dir}: run `avaudit bias DATA` first "
                             f"or pass DATA")
        settings = yaml.safe_load(settings_path.read_text())
        manifest = read_manifest(Path(settings["data"]), root=Path(settings["root"]))
        per_video = pd.read_csv(bias_dir / "bias_videos.csv", dtype={"video_id": str, "label": str},
                                keep_default_na=False)
        categories = pd.read_csv(bias_dir / "bias_categories.csv", dtype={"category": str}, keep_default_na=False)
    else:
        run = bias(Path(data), out=bias_dir, **options)
        manifest = run.manifest
        per_video, categories = run.tables["bias_videos.csv"], run.tables["bias_categories.csv"]
    kept = select(per_video, categories, keep, by=by)
    rows = manifest.table[manifest.table["video_id"].isin(set(kept["video_id"]))]
    default_name = "subset.csv" if manifest.format in ("folder", "flat") else f"subset{manifest.source.suffix}"
    out = Path(out) if out is not None else Path("avaudit-out/retarget") / default_name
    write_subset(manifest, rows["row"].to_numpy().tolist(), out)
    kept_categories = sorted(set(kept["label"]))
    summary = {"out": str(out), "format": manifest.format, "keep": list(keep), "by": by,
               "n_videos": int(len(rows)), "n_input_rows": int(len(manifest.table) + len(manifest.skipped)),
               "categories": kept_categories}
    if compare is not None:
        summary["compare"] = compare_with(kept_categories, compare)
    write_json(summary, out.with_name(out.name + ".json"))
    return summary


def write_run(run: AuditRun, settings: dict) -> None:
    for name, frame in run.tables.items():
        write_csv(frame, run.out / name)
    skipped_path = run.out / "skipped.csv"
    if len(run.skipped):
        write_csv(run.skipped, skipped_path)
    else:
        skipped_path.unlink(missing_ok=True)
    write_yaml(settings, run.out / "run.yaml")
