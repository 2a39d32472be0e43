"""One function per command: read DATA, get each video's logits, decide, write the files.

These are the Python API (`avaudit.bias(...)` and the others) and the CLI is a shell over them.
Logits come from the cache where a video was seen before with the same model, so re-audits do
no decoding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from avaudit.errors import UsageError
from avaudit.labels import check_labels, classes_note, label_names, labelled_rows, unlabelled_to_skipped
from avaudit.media.manifests import Manifest, read_manifest
from avaudit.media.window import is_padded
from avaudit.outputs import check_writes, output_set, read_csv, write_json
from avaudit.runs import newest_bias_run, planned_writes, read_bias_settings, write_run
from avaudit.vocab import LAYERS, SKIPPED_COLUMNS, Confidence, NoAudio, Rule

# the shipped checkpoint is package data, so an installed wheel finds it as a source tree does
DEFAULT_MODEL = Path(__file__).resolve().parent / "models" / "default.pt"
DEFAULT_RULE = Rule.sufficiency  # recovers planted truth better than the paper's rule (docs/decisions.md)
DEFAULT_CONFIDENCE = Confidence.raw  # measured on planted data (docs/decisions.md)
SUFFICIENCY_FRACTION = 0.9  # chosen on our own planted tuning set (docs/decisions.md)
TYPE_MARGIN = 0.003  # an event type is named when its layer leads the other AV layers by this (docs/decisions.md)
MIN_CANDIDATE_CONFIDENCE = 0.5  # missing-label candidates below this are left out (docs/decisions.md)
MAX_CANDIDATE_CONFUSION = 0.1  # a layer proposing a candidate this much on other videos: set apart (docs/decisions.md)
OUTPUT_ROOT = Path("avaudit-out")  # each command writes to OUTPUT_ROOT/<command> unless told


@dataclass(frozen=True)
class AuditOptions:
    """How an audit reads DATA and runs the model; the same for every audit command."""
    model: Path | None = None  # checkpoint [default: the shipped DEFAULT_MODEL]
    root: Path | None = None  # where a manifest's media live [default: the manifest's folder]
    device: str = "auto"  # auto, cpu or cuda
    batch_size: int = 8  # clips per batch
    workers: int | None = None  # decoding processes [default: one per core]
    cache_dir: Path | None = None  # logit cache [default: $AVAUDIT_CACHE_DIR or ~/.cache/avaudit]
    confidence: str = DEFAULT_CONFIDENCE  # raw softmax or calibrated (per-layer temperatures)
    no_audio: str = NoAudio.skip  # clips without sound: skip them or audit them with silence
    classes: Path | None = None  # AudioSet's class index [default: class_labels_indices.csv beside DATA]
    allow_outside_root: bool = False  # open manifest rows that name files outside the media root


def resolve_options(options: AuditOptions | None, fields: dict) -> AuditOptions:
    """`options` with keyword overrides: `bias(data, model="m.pt")` and `bias(data, options=o)` both work."""
    o = replace(options or AuditOptions(), **fields)
    if not (isinstance(o.batch_size, int) and o.batch_size >= 1):
        raise UsageError(f"--batch-size must be 1 or more, not {o.batch_size}")
    if o.workers is not None and not (isinstance(o.workers, int) and o.workers >= 0):
        raise UsageError(f"--workers must be 0 or more, not {o.workers}")
    return o


def check_range(name: str, value: float, low: float, high: float, *, low_open: bool = False) -> None:
    """An option's value inside [low, high] ((low, high] with `low_open`), or a UsageError naming it."""
    if not (low < value <= high if low_open else low <= value <= high):
        raise UsageError(f"{name} must be in {'(' if low_open else '['}{low:g}, {high:g}], not {value:g}")




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
    seconds: np.ndarray  # (N,) seconds of real content in each row's window, NaN where skipped
    probabilities: np.ndarray  # softmax of logits, raw or temperature-scaled
    skipped: pd.DataFrame
    n_cached: int
    no_audio: str = "skip"
    notes: list[str] = field(default_factory=list)  # lines for the user: media found where, classes known
    classes_file: Path | None = None
    allow_outside_root: bool = False

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
                "no_audio": self.no_audio, "classes": str(self.classes_file) if self.classes_file else None,
                "allow_outside_root": self.allow_outside_root, "n_rows": self.n_rows, "n_skipped": len(self.skipped),
                **extra, "config": self.checkpoint["config"]}


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
    skipped_path: Path | None = None  # where the skipped rows were listed, when some were
    notes: list[str] = field(default_factory=list)  # lines for the user (Audit.notes)

    @property
    def n_decoded(self) -> int:
        """Rows that were neither skipped nor read from the cache."""
        return self.n_rows - self.n_cached - len(self.skipped)


def probabilities(logits: np.ndarray, checkpoint: dict, confidence: str) -> np.ndarray:
    """Per-layer softmax, temperature-scaled when `calibrated` (the paper's stated limitation)."""
    from avaudit.audits.calibration import calibrated_softmax
    from avaudit.audits.decisions import softmax

    if confidence not in set(Confidence):
        raise UsageError(f"--confidence must be one of {', '.join(Confidence)}")
    if confidence == "raw":
        return softmax(logits)
    if "temperatures" not in checkpoint:
        raise UsageError("this checkpoint has no fitted temperatures (trained before calibration existed); "
                         "retrain it or pass --confidence raw")
    return calibrated_softmax(logits, np.asarray(checkpoint["temperatures"]))


def audit(data: Path, options: AuditOptions | None = None, *, labels: str = "ignore",
          on_event: Callable | None = None, writes: Sequence[Path] = (), **fields) -> Audit:
    """Read DATA and get the five-layer logits of every row, from the cache where possible.

    `labels`: `require` (the audit compares with DATA's labels and needs them: unlabelled videos are
    skipped as `no label`), `check` (compares where there are labels), `ignore` (a note says which
    classes the model knows when DATA's labels are not among them). Labels are checked before
    anything is decoded.

    Under torchrun (`torchrun --nproc_per_node N -m avaudit bias DATA`, with --nnodes and a
    rendezvous for several machines, and a --cache-dir they share) each rank first runs every N-th
    row into the shared cache; then rank 0 reads them all back and writes the outputs, which are
    the same files a single process writes. The other ranks raise NotRankZero. `writes`, the files
    the caller will write, are checked first (outputs.check_writes): none may overwrite an input.
    """
    from avaudit.inference.logits import checkpoint_info, infer_logits

    o = resolve_options(options, fields)
    model, root, device, batch_size, workers, cache_dir, confidence, no_audio = (
        o.model, o.root, o.device, o.batch_size, o.workers, o.cache_dir, str(o.confidence), str(o.no_audio))
    manifest = read_manifest(Path(data), root=root, classes=o.classes, allow_outside_root=o.allow_outside_root)
    model_path = Path(model) if model is not None else DEFAULT_MODEL
    check_writes(writes, data=manifest.source, model=model_path, media=manifest.table["path"])
    checkpoint = checkpoint_info(model_path, cache_dir)
    notes = list(manifest.notes)
    if labels == "require":
        manifest = unlabelled_to_skipped(manifest)
    if labels in ("require", "check"):
        check_labels(manifest.table, checkpoint["classes"], required=labels == "require", named=manifest.labels_named)
    else:
        unknown = sorted(label_names(manifest.table["labels"]) - set(checkpoint["classes"]))
        if unknown or not manifest.labels_named:
            notes.append(classes_note(checkpoint["classes"], unknown))
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
    logits, seconds, skipped, n_cached = infer_logits(manifest.table, model_path, checkpoint, device=device,
                                             batch_size=batch_size, workers=workers, cache_dir=cache_dir,
                                             on_event=on_event, no_audio=no_audio)
    skipped = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], skipped], ignore_index=True)
    return Audit(manifest, model_path, checkpoint, list(checkpoint["classes"]), confidence, logits, seconds,
                 probabilities(logits, checkpoint, confidence), skipped, n_cached, no_audio, notes, o.classes,
                 o.allow_outside_root)


def window_columns(a: Audit, position: np.ndarray) -> dict[str, pd.Series]:
    """`seconds` of real content in each row's window, and `padded`: the window ran past the
    file's end, so the rest was black and silent (the decoder's rule, media.window.is_padded).
    Empty where the cache predates these columns."""
    window, steps = a.checkpoint["config"]["model"]["seconds"], a.checkpoint["config"]["model"]["steps"]
    seconds = a.seconds[position].astype(float)
    padded = pd.array(is_padded(seconds, seconds=window, steps=steps), dtype="boolean")
    padded[np.isnan(seconds)] = pd.NA
    return {"seconds": pd.Series(seconds.round(2)), "padded": pd.Series(padded)}


def decoded_rows(a: Audit) -> pd.DataFrame:
    return a.manifest.table.assign(position=np.arange(len(a.manifest.table)))[a.decoded]


def bias(data: Path, *, out: Path | None = None, rule: str = DEFAULT_RULE, fraction: float = SUFFICIENCY_FRACTION,
         type_margin: float = TYPE_MARGIN, truth: Sequence[Path | str] | None = None,
         options: AuditOptions | None = None, on_event: Callable | None = None, also_writes: Sequence[Path] = (),
         **fields) -> AuditRun:
    """Which layer carries each video's and category's label (Tables 3 and 4).

    Writes bias_videos.csv, bias_categories.csv and bias_summary.json under `out` (default
    avaudit-out/bias); with `truth` (truthfiles.read_truth), the bias_truth*.csv files too. Keyword `fields`
    set AuditOptions (model=..., device=...).
    `also_writes`: files the caller writes afterwards, checked with the run's own before any work.
    """
    from avaudit.audits.bias import bias_audit
    from avaudit.audits.layerstats import layer_statistics
    from avaudit.truthfiles import read_truth

    check_range("--sufficiency", fraction, 0, 1, low_open=True)
    people = read_truth(truth) if truth is not None else None  # a bad file fails first
    folder = output_dir(out, "bias")
    a = audit(data, options, labels="require", on_event=on_event,
              writes=[*planned_writes(folder, "bias"), *also_writes], **fields)
    rule = str(rule)
    rows = labelled_rows(decoded_rows(a), a.classes)
    position = rows["position"].to_numpy()
    per_video, categories, summary = bias_audit(rows, a.probabilities[position], a.classes, rule=rule,
                                                fraction=fraction, type_margin=type_margin)
    per_video = per_video.assign(**window_columns(a, position))
    labels = rows["label"].map({c: i for i, c in enumerate(a.classes)}).to_numpy()
    summary["layer_statistics"] = layer_statistics(a.logits[position], labels)
    summary.update(n_rows=a.n_rows, n_skipped=len(a.skipped), confidence=a.confidence)
    run = AuditRun(folder, {"bias_videos.csv": per_video, "bias_categories.csv": categories}, summary,
                   a.skipped, a.n_rows, a.n_cached, a.manifest, notes=a.notes)
    if people is not None:
        summary["truth"] = people.score_bias(per_video, categories, into=run.tables)
    write_run(run, a.settings("bias", rule=rule, fraction=fraction, type_margin=type_margin,
                              truth=people and people.files),
              {"bias_summary.json": summary})
    return run


def predict(data: Path, *, out: Path | None = None, export_probs: Path | None = None,
            options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """Each video's vote (eq. 6), multi-label set (eq. 7) and per-layer confidence: predictions.csv.

    With `export_probs`, also labels and per-class probabilities (.npz) as cleanlab takes them.
    """
    from avaudit.audits.decisions import multilabel, vote

    folder = output_dir(out, "predict")
    writes = [*planned_writes(folder, "predict"), *([Path(export_probs)] if export_probs is not None else [])]
    a = audit(data, options, labels="ignore" if export_probs is None else "check", on_event=on_event,
              writes=writes, **fields)
    rows = decoded_rows(a)
    position = rows["position"].to_numpy()
    probs = a.probabilities[position]
    names = np.asarray(a.classes)
    chosen = multilabel(probs)  # over confidences, as missing-labels does
    table = pd.DataFrame({"video_id": rows["video_id"].to_numpy(), "path": rows["path"].to_numpy(),
                          "label": rows["labels"].to_numpy(), "vote": names[vote(probs)],
                          "labels_eq7": pd.Series([";".join(names[m]) for m in chosen], dtype="str")})
    for i, layer in enumerate(LAYERS):
        table[f"conf_{layer}"] = probs[:, i].max(axis=-1)
    table = table.assign(**window_columns(a, position))
    run = AuditRun(folder, {"predictions.csv": table}, {"n_videos": len(table)}, a.skipped, a.n_rows, a.n_cached,
                   notes=a.notes)
    if export_probs is not None:  # a file of its own, wherever the user put it: written before the set
        export_for_cleanlab(rows, probs, a.classes, Path(export_probs))
    write_run(run, a.settings("predict"))
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


def missing_labels(data: Path, *, out: Path | None = None, min_confidence: float = MIN_CANDIDATE_CONFIDENCE,
                   max_confusion: float | None = MAX_CANDIDATE_CONFUSION, truth: Sequence[Path | str] | None = None,
                   options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """Labels a video shows (eq. 7) that its annotation lacks, most confident first (missing_labels.csv),
    less a layer's systematic confusions between categories (confusions.csv); with `truth`, scored against
    people's label sets (missing_labels_truth.csv and .json)."""
    from avaudit.audits.missing_labels import missing_label_candidates, split_confusions
    from avaudit.truthfiles import read_truth

    check_range("--min-confidence", min_confidence, 0, 1)
    people = read_truth(truth) if truth is not None else None  # a bad file fails first
    folder = output_dir(out, "missing-labels")
    a = audit(data, options, labels="check", on_event=on_event, writes=planned_writes(folder, "missing-labels"),
              **fields)
    rows = decoded_rows(a)
    position = rows["position"].to_numpy()
    # Eq. 7 over confidences, not raw logits: the layers' logits live on different scales, and on
    # our planted tuning set comparing them found 5 of 8 planted second events, confidences 8 of 8.
    confidences = a.probabilities[position]
    candidates, confusions = split_confusions(
        missing_label_candidates(rows, confidences, a.classes, confidences=confidences, min_confidence=min_confidence),
        max_confusion=max_confusion)
    run = AuditRun(folder, {"missing_labels.csv": candidates, "confusions.csv": confusions},
                   {"n_videos": len(rows), "n_candidates": len(candidates),
                    "n_videos_with_candidates": int(candidates["video_id"].nunique()),
                    "n_confused": int(confusions["n_videos"].sum())}, a.skipped, a.n_rows, a.n_cached,
                   notes=a.notes)
    if people is not None:
        run.summary["truth"] = people.score_candidates(rows, candidates, a.classes, into=run.tables)
    write_run(run, a.settings("missing-labels", min_confidence=min_confidence, max_confusion=max_confusion,
                              truth=people and people.files),
              {"missing_labels_truth.json": run.summary["truth"]} if people is not None else None)
    return run


def retarget(data: Path | None = None, *, keep: list[str], by: str = "category", out: Path | None = None,
             compare: str | None = None, bias_run: Path | None = None, rule: str = DEFAULT_RULE,
             options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """The rows whose category (or video) falls in `keep`, written in DATA's own format.

    With DATA, audits it first and writes that bias run in a `bias` folder beside `out`. Without
    DATA, uses the bias run in `bias_run`, or the newest one under avaudit-out/ (its bias_run.yaml
    names DATA and root). The summary (`out`.json) names the bias run used.
    """
    from avaudit.audits.retarget import compare as compare_with
    from avaudit.audits.retarget import select
    from avaudit.media.manifests import write_subset

    nothing = pd.DataFrame(columns=["video_id", "label", "category", "layer", "group"])
    select(nothing, nothing, keep, by=by)  # bad --keep, --by or --compare: said before any work
    if compare is not None:
        compare_with([], compare)
    source = Path(data) if data is not None else None
    if data is None:
        folder = Path(bias_run) if bias_run is not None else newest_bias_run(OUTPUT_ROOT)
        settings = read_bias_settings(folder)
        source = Path(settings["data"])
    default_name = f"subset{source.suffix}" if source.is_file() else "subset.csv"
    out = Path(out) if out is not None else output_dir(None, "retarget") / default_name
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: name the subset file to write, e.g. {out / default_name}")
    summary_path = out.with_name(out.name + ".json")
    if data is None:
        manifest = read_manifest(source, root=Path(settings["root"]), allow_outside_root=bool(
            settings.get("allow_outside_root")), classes=Path(settings["classes"]) if settings.get("classes") else None)
        check_writes([out, summary_path], data=source, media=manifest.table["path"])
        per_video = read_csv(folder / "bias_videos.csv", dtype={"video_id": str, "label": str})
        categories = read_csv(folder / "bias_categories.csv", dtype={"category": str})
        skipped, n_cached, skipped_path, notes = pd.DataFrame(columns=list(SKIPPED_COLUMNS)), 0, None, []
    else:
        folder = out.parent / "bias"
        run = bias(source, out=folder, rule=rule, options=options, on_event=on_event,
                   also_writes=[out, summary_path], **fields)
        manifest, skipped, n_cached, skipped_path, notes = (run.manifest, run.skipped, run.n_cached, run.skipped_path,
                                                            run.notes)
        per_video, categories = run.tables["bias_videos.csv"], run.tables["bias_categories.csv"]
    kept = select(per_video, categories, keep, by=by)
    rows = manifest.table[manifest.table["video_id"].isin(set(kept["video_id"]))]
    kept_categories = sorted(set(kept["label"]))
    n_rows = int(len(manifest.table) + len(manifest.skipped))
    summary = {"out": str(out), "bias_run": str(folder), "format": manifest.format, "keep": list(keep), "by": by,
               "n_videos": int(len(rows)), "n_input_rows": n_rows, "categories": kept_categories}
    if compare is not None:
        summary["compare"] = compare_with(kept_categories, compare)
    with output_set(out.parent, record=summary_path.name) as staged:  # the subset and its summary together
        write_subset(manifest, rows["row"].to_numpy().tolist(), staged / out.name)
        write_json(summary, staged / summary_path.name)
    return AuditRun(out.parent, {}, summary, skipped, n_rows, n_cached, manifest, skipped_path, notes)


def output_dir(out: Path | None, command: str) -> Path:
    return Path(out) if out is not None else OUTPUT_ROOT / command


def load_model(path: Path | None = None, *, device: str = "cpu"):
    """(model in eval mode, class names, config, checkpoint dict) of a checkpoint [default: the shipped one]."""
    from avaudit.model.checkpoint import load_model as load

    return load(Path(path) if path is not None else DEFAULT_MODEL, device=device)
