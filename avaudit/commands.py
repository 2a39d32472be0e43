"""One function per command: read DATA, get each video's logits, decide, write the files.

These are the Python API (`avaudit.bias(...)` and the others) and the CLI is a shell over them.
Logits come from the cache where a video was seen before with the same model, so re-audits do
no decoding.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import yaml

from avaudit.errors import UsageError
from avaudit.labels import check_labels, classes_note, label_names, labelled_rows, unlabelled_to_skipped
from avaudit.media.manifests import Manifest, read_manifest
from avaudit.outputs import write_csv, write_json, write_yaml
from avaudit.vocab import LAYERS, SKIPPED_COLUMNS, Confidence, NoAudio, Rule

DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "default.pt"
DEFAULT_RULE = Rule.sufficiency  # recovers planted truth better than the paper's rule (README)
DEFAULT_CONFIDENCE = Confidence.raw  # measured on planted data (README)
SUFFICIENCY_FRACTION = 0.9  # chosen on our own planted tuning set (README)
MIN_CANDIDATE_CONFIDENCE = 0.5  # missing-label candidates below this are left out (README)
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
    probabilities: np.ndarray  # softmax of logits, raw or temperature-scaled
    skipped: pd.DataFrame
    n_cached: int
    no_audio: str = "skip"
    notes: list[str] = field(default_factory=list)  # lines for the user: media found where, classes known

    @property
    def decoded(self) -> np.ndarray:
        return ~np.isnan(self.logits).any(axis=(1, 2))

    classes_file: Path | None = None
    allow_outside_root: bool = False

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
          on_event: Callable | None = None, **fields) -> Audit:
    """Read DATA and get the five-layer logits of every row, from the cache where possible.

    `labels`: `require` (the audit compares with DATA's labels and needs them: unlabelled videos are
    skipped as `no label`), `check` (compares where there are labels), `ignore` (a note says which
    classes the model knows when DATA's labels are not among them). Labels are checked before
    anything is decoded.

    Under torchrun (`torchrun --nproc_per_node N -m avaudit bias DATA`, with --nnodes and a
    rendezvous for several machines, and a --cache-dir they share) each rank first runs every N-th
    row into the shared cache; then rank 0 reads them all back and writes the outputs, which are
    the same files a single process writes. The other ranks raise NotRankZero.
    """
    from avaudit.inference.logits import checkpoint_info, infer_logits

    o = resolve_options(options, fields)
    model, root, device, batch_size, workers, cache_dir, confidence, no_audio = (
        o.model, o.root, o.device, o.batch_size, o.workers, o.cache_dir, str(o.confidence), str(o.no_audio))
    manifest = read_manifest(Path(data), root=root, classes=o.classes, allow_outside_root=o.allow_outside_root)
    model_path = Path(model) if model is not None else DEFAULT_MODEL
    checkpoint = checkpoint_info(model_path, cache_dir)
    notes = list(manifest.notes)
    if labels == "require":
        manifest = unlabelled_to_skipped(manifest)
    if labels in ("require", "check"):
        check_labels(manifest.table, checkpoint["classes"], required=labels == "require", named=manifest.labels_named)
    else:
        unknown = sorted(label_names(manifest.table) - set(checkpoint["classes"]))
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
    logits, skipped, n_cached = infer_logits(manifest.table, model_path, checkpoint, device=device,
                                             batch_size=batch_size, workers=workers, cache_dir=cache_dir,
                                             on_event=on_event, no_audio=no_audio)
    skipped = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], skipped], ignore_index=True)
    return Audit(manifest, model_path, checkpoint, list(checkpoint["classes"]), confidence, logits,
                 probabilities(logits, checkpoint, confidence), skipped, n_cached, no_audio, notes, o.classes,
                 o.allow_outside_root)


def decoded_rows(a: Audit) -> pd.DataFrame:
    return a.manifest.table.assign(position=np.arange(len(a.manifest.table)))[a.decoded]


def bias(data: Path, *, out: Path | None = None, rule: str = DEFAULT_RULE, fraction: float = SUFFICIENCY_FRACTION,
         options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """Which layer carries each video's and category's label (Tables 3 and 4).

    Writes bias_videos.csv, bias_categories.csv and bias_summary.json under `out` (default
    avaudit-out/bias); keyword `fields` set AuditOptions (model=..., device=...).
    """
    from avaudit.audits.bias import bias_audit
    from avaudit.audits.layerstats import layer_statistics

    check_range("--sufficiency", fraction, 0, 1, low_open=True)
    folder = output_dir(out, "bias")
    a = audit(data, resolve_options(options, fields), labels="require", on_event=on_event)
    rule = str(rule)
    rows = labelled_rows(decoded_rows(a), a.classes)
    position = rows["position"].to_numpy()
    per_video, categories, summary = bias_audit(rows, a.probabilities[position], a.classes, rule=rule,
                                                fraction=fraction)
    labels = rows["label"].map({c: i for i, c in enumerate(a.classes)}).to_numpy()
    summary["layer_statistics"] = layer_statistics(a.logits[position], labels)
    summary.update(n_rows=a.n_rows, n_skipped=len(a.skipped), confidence=a.confidence)
    run = AuditRun(folder, {"bias_videos.csv": per_video, "bias_categories.csv": categories}, summary,
                   a.skipped, a.n_rows, a.n_cached, a.manifest, a.notes)
    write_run(run, a.settings("bias", rule=rule, fraction=fraction))
    write_json(summary, run.out / "bias_summary.json")
    return run


def predict(data: Path, *, out: Path | None = None, export_probs: Path | None = None,
            options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """Each video's vote (eq. 6), multi-label set (eq. 7) and per-layer confidence: predictions.csv.

    With `export_probs`, also labels and per-class probabilities (.npz) as cleanlab takes them.
    """
    from avaudit.audits.decisions import multilabel, vote

    folder = output_dir(out, "predict")
    a = audit(data, resolve_options(options, fields), labels="ignore" if export_probs is None else "check",
              on_event=on_event)
    rows = decoded_rows(a)
    probs = a.probabilities[rows["position"].to_numpy()]
    names = np.asarray(a.classes)
    chosen = multilabel(probs)  # over confidences, as missing-labels does
    table = pd.DataFrame({"video_id": rows["video_id"].to_numpy(), "path": rows["path"].to_numpy(),
                          "label": rows["labels"].to_numpy(), "vote": names[vote(probs)],
                          "labels_eq7": pd.Series([";".join(names[m]) for m in chosen], dtype="str")})
    for i, layer in enumerate(LAYERS):
        table[f"conf_{layer}"] = probs[:, i].max(axis=-1)
    run = AuditRun(folder, {"predictions.csv": table}, {"n_videos": len(table)}, a.skipped,
                   a.n_rows, a.n_cached, notes=a.notes)
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


def missing_labels(data: Path, *, out: Path | None = None, min_confidence: float = MIN_CANDIDATE_CONFIDENCE,
                   options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """Labels a video shows (eq. 7) that its annotation lacks, most confident first: missing_labels.csv."""
    from avaudit.audits.missing_labels import missing_label_candidates

    check_range("--min-confidence", min_confidence, 0, 1)
    folder = output_dir(out, "missing-labels")
    a = audit(data, resolve_options(options, fields), labels="check", on_event=on_event)
    rows = decoded_rows(a)
    position = rows["position"].to_numpy()
    # Eq. 7 over confidences, not raw logits: the layers' logits live on different scales, and on
    # our planted tuning set comparing them found 5 of 8 planted second events, confidences 8 of 8.
    confidences = a.probabilities[position]
    candidates = missing_label_candidates(rows, confidences, a.classes, confidences=confidences,
                                          min_confidence=min_confidence)
    run = AuditRun(folder, {"missing_labels.csv": candidates},
                   {"n_videos": len(rows), "n_candidates": len(candidates),
                    "n_videos_with_candidates": int(candidates["video_id"].nunique())}, a.skipped, a.n_rows,
                   a.n_cached, notes=a.notes)
    write_run(run, a.settings("missing-labels", min_confidence=min_confidence))
    return run


def retarget(data: Path | None = None, *, keep: list[str], by: str = "category", out: Path | None = None,
             compare: str | None = None, bias_run: Path | None = None, rule: str = DEFAULT_RULE,
             options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """The rows whose category (or video) falls in `keep`, written in DATA's own format.

    With DATA, audits it first and writes that bias run in a `bias` folder beside `out`. Without
    DATA, uses the bias run in `bias_run`, or the newest one under avaudit-out/ (its run.yaml names
    DATA and root). The summary names the bias run used.
    """
    from avaudit.audits.retarget import compare as compare_with
    from avaudit.audits.retarget import select
    from avaudit.media.manifests import write_subset

    if data is None:
        folder = Path(bias_run) if bias_run is not None else newest_bias_run(OUTPUT_ROOT)
        settings = read_bias_settings(folder)
        manifest = read_manifest(Path(settings["data"]), root=Path(settings["root"]),
                                 classes=Path(settings["classes"]) if settings.get("classes") else None,
                                 allow_outside_root=bool(settings.get("allow_outside_root")))
        per_video = pd.read_csv(folder / "bias_videos.csv", dtype={"video_id": str, "label": str},
                                keep_default_na=False)
        categories = pd.read_csv(folder / "bias_categories.csv", dtype={"category": str}, keep_default_na=False)
        skipped, n_cached, notes = pd.DataFrame(columns=list(SKIPPED_COLUMNS)), 0, []
    else:
        out = Path(out) if out is not None else None
        folder = (out.parent if out is not None else output_dir(None, "retarget")) / "bias"
        run = bias(Path(data), out=folder, rule=rule, options=options, on_event=on_event, **fields)
        manifest, skipped, n_cached, notes = run.manifest, run.skipped, run.n_cached, run.notes
        per_video, categories = run.tables["bias_videos.csv"], run.tables["bias_categories.csv"]
    kept = select(per_video, categories, keep, by=by)
    rows = manifest.table[manifest.table["video_id"].isin(set(kept["video_id"]))]
    default_name = "subset.csv" if manifest.format in ("folder", "flat") else f"subset{manifest.source.suffix}"
    out = Path(out) if out is not None else output_dir(None, "retarget") / default_name
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: name the subset file to write, e.g. {out / default_name}")
    write_subset(manifest, rows["row"].to_numpy().tolist(), out)
    kept_categories = sorted(set(kept["label"]))
    n_rows = int(len(manifest.table) + len(manifest.skipped))
    summary = {"out": str(out), "bias_run": str(folder), "format": manifest.format, "keep": list(keep), "by": by,
               "n_videos": int(len(rows)), "n_input_rows": n_rows, "categories": kept_categories}
    if compare is not None:
        summary["compare"] = compare_with(kept_categories, compare)
    write_json(summary, out.with_name(out.name + ".json"))
    if data is not None and len(skipped):  # the bias run's skipped rows, beside the subset as well
        write_csv(skipped, out.parent / "skipped.csv")
    elif data is not None:
        (out.parent / "skipped.csv").unlink(missing_ok=True)
    return AuditRun(out.parent, {}, summary, skipped, n_rows, n_cached, manifest, notes)


def output_dir(out: Path | None, command: str) -> Path:
    """The folder a command writes to; --out naming something that is not a folder is refused."""
    folder = Path(out) if out is not None else OUTPUT_ROOT / command
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file: name a folder for the {command} outputs")
    return folder


def newest_bias_run(root: Path) -> Path:
    """The folder of the most recent `bias` run under `root` (by its run.yaml's modification time)."""
    runs = [path.parent for path in sorted(Path(root).glob("**/run.yaml"))
            if (path.parent / "bias_videos.csv").is_file()]
    if not runs:
        raise UsageError(f"no DATA given and no bias run under {root}/: run `avaudit bias DATA` first, "
                         f"pass DATA, or name a bias run's folder with --from")
    return max(runs, key=lambda folder: (folder / "run.yaml").stat().st_mtime)


def read_bias_settings(folder: Path) -> dict:
    """A bias run's run.yaml, checked: a clear error naming the file instead of a KeyError."""
    path = Path(folder) / "run.yaml"
    try:
        settings = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UsageError(f"{folder}: not a bias run ({path.name}: {err.strerror})") from None
    except yaml.YAMLError:
        raise UsageError(f"{path}: not readable YAML") from None
    if not isinstance(settings, dict) or settings.get("command") != "bias" \
            or not all(isinstance(settings.get(key), str) for key in ("data", "root")):
        raise UsageError(f"{path}: not the run.yaml of a bias run (needs command: bias, data and root)")
    if not (Path(folder) / "bias_videos.csv").is_file():
        raise UsageError(f"{folder}: bias_videos.csv is missing; rerun `avaudit bias`")
    return settings


def load_model(path: Path | None = None, *, device: str = "cpu"):
    """(model in eval mode, class names, config, checkpoint dict) of a checkpoint [default: the shipped one]."""
    from avaudit.model.checkpoint import load_model as load

    return load(Path(path) if path is not None else DEFAULT_MODEL, device=device)


def write_run(run: AuditRun, settings: dict) -> None:
    for name, frame in run.tables.items():
        write_csv(frame, run.out / name)
    skipped_path = run.out / "skipped.csv"
    if len(run.skipped):
        write_csv(run.skipped, skipped_path)
    else:
        skipped_path.unlink(missing_ok=True)
    write_yaml(settings, run.out / "run.yaml")
