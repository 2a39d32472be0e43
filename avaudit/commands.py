"""The public commands, one function each: read DATA and infer its logits (inference.pipeline), decide
(audits), write the run (runs). `avaudit.bias(...)` and the others; the CLI is a shell over them.

Every argument is checked at the door (options.py), in the caller's own parameter names, before
anything is read or decoded.
"""
from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from avaudit.errors import ParameterError, UsageError
from avaudit.inference.pipeline import Audit, audit, block_rows
from avaudit.media.listing import give_back_freed
from avaudit.options import (
    DEFAULT_MODEL,
    OUTPUT_ROOT,
    THRESHOLDS,
    AuditOptions,
    audit_options,
    check_by,
    check_number,
    check_path,
    check_range,
    check_rule,
    check_truth,
)
from avaudit.outputs import check_writes, output_set, write_json, write_yaml
from avaudit.runs import (
    RUN_FILES,
    AuditRun,
    BiasSummary,
    MissingLabelsSummary,
    PredictSummary,
    QualitySummary,
    RetargetSummary,
    check_bias_folder,
    flags_measured,
    newest_bias_run,
    planned_writes,
    read_bias_tables,
    read_run,
    run_names,
    write_run,
)
from avaudit.truthfiles import PACKAGE_NAME
from avaudit.vocab import QUALITY_FLAGS, By, LabelPolicy


def bias(data: Path, *, out: Path | None = None, rule: str = THRESHOLDS.rule, fraction: float = THRESHOLDS.fraction,
         type_margin: float = THRESHOLDS.type_margin, min_support: float = THRESHOLDS.min_support,
         truth: Sequence[Path | str] | Path | str | None = None, flagged_vote: bool = False,
         options: AuditOptions | None = None, on_event: Callable | None = None, also_writes: Sequence[Path] = (),
         **fields) -> AuditRun:
    """Which layer carries each video's and category's label (Tables 3 and 4).

    Writes bias_videos.csv, bias_categories.csv and bias_summary.json under `out` (default
    avaudit-out/bias); with `truth` (a VGGSounder CSV or `vggsounder`, or AVVP's audio and visual event
    files: truthfiles.read_truth), the bias_truth*.csv files too. Keyword `fields` set AuditOptions (model=...).
    Videos with a quality flag (avaudit.flags: still, silent, a duplicate's copy) get their own call but do
    not vote on their category's, unless `flagged_vote`.
    `also_writes`: files the caller writes afterwards, checked with the run's own before any work.
    """
    from avaudit.audits.bias import bias_audit
    from avaudit.audits.reduce import bias_inputs
    from avaudit.flags import row_flags
    from avaudit.truthfiles import read_truth

    rule, options = check_rule(rule), audit_options(options, fields)
    check_range("fraction", fraction, 0, 1, low_open=True)
    check_range("type_margin", type_margin, 0, 1)
    check_range("min_support", min_support, 0, 1)
    people = read_truth(check_truth(truth)) if truth is not None else None  # a bad file fails first
    folder = output_dir(out, "bias")
    a = audit(data, options, labels=LabelPolicy.require, on_event=on_event,  # read, infer
              writes=[*planned_writes(folder, "bias"), *also_writes], reads=truth_reads(people))
    rows, classes, window, n_rows = a.rows, a.classes, a.window, a.n_rows
    position = rows["position"].to_numpy()
    settings = run_record(a, "bias", rule=str(rule), fraction=fraction, type_margin=type_margin,
                          min_support=min_support, truth=truth_record(people), flagged_vote=bool(flagged_vote))
    flags, measured = row_flags(a.manifest.table, position, a.quality, memo=duplicates_memo(options))
    labels = rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)  # int even with no rows
    true_conf, evidence, statistics = bias_inputs(a.read, position, labels, rule=str(rule),
                                                  size=block_rows(len(classes)))
    give_back_freed()  # what the blocks' arrays left with glibc (120 MB in a run of a million rows)
    per_video, categories, decided = bias_audit(rows, None, classes,  # decide
                                                rule=str(rule), fraction=fraction, type_margin=type_margin,
                                                min_support=min_support, video_noise=THRESHOLDS.video_noise,
                                                false_call_rate=THRESHOLDS.false_call_rate,
                                                votes=None if flagged_vote else flags == "",
                                                reduced=(true_conf, evidence))
    evidence = None  # its margins, shifted in place by bias_audit: 40 B a row not held while the run is written
    give_back_freed()
    per_video = per_video.assign(**window, flags=flags)
    flagged = dict(zip(classes, np.bincount(labels, weights=flags != "", minlength=len(classes))))  # no text a row
    categories.insert(categories.columns.get_loc("n_videos") + 1, "n_flagged",
                      categories["category"].map(flagged).fillna(0).astype(int).to_numpy())
    tables = {"bias_videos.csv": per_video, "bias_categories.csv": categories}
    scores = people.score_bias(tables["bias_videos.csv"], categories, into=tables) if people is not None else None
    summary = BiasSummary(**decided, layer_statistics=statistics, n_rows=n_rows, n_skipped=len(a.skipped),  # write
                          confidence=settings["confidence"], truth=scores, flagged_vote=bool(flagged_vote),
                          n_flagged=flag_counts(flags) if measured else None)
    run = AuditRun(folder, tables, summary, a.skipped, n_rows, a.n_cached, a.manifest, notes=a.notes)
    write_run(run, settings, {"bias_summary.json": summary.document()})
    return run


def duplicates_memo(options: AuditOptions) -> Path:
    """Where the duplicate pairs an audit found are kept for its re-audits (flags.find_copies): in the cache."""
    from avaudit.inference.cache import default_cache_dir

    return Path(options.cache_dir or default_cache_dir()) / "duplicates"


def flag_counts(flags) -> dict[str, int]:
    """How many rows hold each quality flag (`;`-joined flags per row), and how many hold any."""
    held = [set(text.split(";")) - {""} for text in flags]
    return {**{flag: sum(flag in own for own in held) for flag in QUALITY_FLAGS}, "any": sum(map(bool, held))}


def quality(data: Path, *, out: Path | None = None, options: AuditOptions | None = None,
            on_event: Callable | None = None, **fields) -> AuditRun:
    """Each clip's quality flags (still picture, silent sound, duplicate of another clip) from the audit's own
    decode: quality_videos.csv (one row per clip, with its measured levels), quality_duplicates.csv (one row
    per duplicate pair: which streams, how similar, in the same split or not) and quality_summary.json."""
    from avaudit.flags import measure_flags
    from avaudit.inference.logits import signals_enabled

    options = audit_options(options, fields)
    if not signals_enabled():
        raise UsageError("quality needs the clips' signals, which AVAUDIT_SIGNALS=0 turns off: unset it")
    folder = output_dir(out, "quality")
    a = audit(data, options, labels=LabelPolicy.ignore, on_event=on_event,  # read, infer
              writes=planned_writes(folder, "quality"))
    found = measure_flags(a.manifest.table, a.rows["position"].to_numpy(), a.quality,  # decide
                          memo=duplicates_memo(options))
    pairs = found.duplicates
    summary = QualitySummary(len(found.videos), flag_counts(found.videos["flags"]), len(pairs),
                             {s: int((pairs["streams"] == s).sum()) for s in ("audiovisual", "audio", "visual")},
                             int((~pairs["same_split"].astype(bool)).sum()), a.n_rows, len(a.skipped))
    tables = {"quality_videos.csv": found.videos.drop(columns="position"), "quality_duplicates.csv": pairs}
    run = AuditRun(folder, tables, summary, a.skipped, a.n_rows, a.n_cached, a.manifest, notes=a.notes)  # write
    write_run(run, run_record(a, "quality"), {"quality_summary.json": asdict(summary)})
    return run


def predict(data: Path, *, out: Path | None = None, export_probs: Path | None = None,
            options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """Each video's vote (eq. 6), multi-label set (eq. 7) and per-layer confidence: predictions.csv.

    With `export_probs`, also labels and per-class probabilities (.npz) as cleanlab takes them.
    """
    from avaudit.audits.reduce import predict_columns

    options = audit_options(options, fields)
    check_path("export_probs", export_probs)
    folder = output_dir(out, "predict")
    writes = [*planned_writes(folder, "predict"), *([Path(export_probs)] if export_probs is not None else [])]
    a = audit(data, options, labels=LabelPolicy.ignore if export_probs is None else LabelPolicy.check,  # read, infer
              on_event=on_event, writes=writes)
    rows, window, settings = a.rows, a.window, run_record(a, "predict")
    position = rows["position"].to_numpy()
    # decide, a block at a time: over confidences, as missing-labels does
    columns = predict_columns(a.read, position, a.classes, size=block_rows(len(a.classes)))
    # the manifest's own text columns, shared: to_numpy() would make a Python string of every cell
    table = pd.DataFrame({"video_id": rows["video_id"].array, "path": rows["path"].array,
                          "label": rows["labels"].array, **columns}, copy=False)
    table = table.assign(**window)
    run = AuditRun(folder, {"predictions.csv": table}, PredictSummary(len(table)), a.skipped,  # write
                   settings["n_rows"], a.n_cached, notes=a.notes)
    if export_probs is not None:  # a file of its own, wherever the user put it: written before the set
        export_for_cleanlab(rows, a.probabilities_of(position), list(a.classes), Path(export_probs))
    write_run(run, settings)
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


def missing_labels(data: Path, *, out: Path | None = None, min_confidence: float = THRESHOLDS.min_confidence,
                   max_confusion: float | None = THRESHOLDS.max_confusion,
                   min_precision: float = THRESHOLDS.min_precision,
                   truth: Sequence[Path | str] | Path | str | None = None, groups: Path | str | None = None,
                   options: AuditOptions | None = None, on_event: Callable | None = None, **fields) -> AuditRun:
    """Labels a video shows (eq. 7) that its annotation lacks, most confident first (missing_labels.csv),
    less those estimated under `min_precision` or a layer's confusion (confusions.csv); with `truth` (as
    `bias` takes it), scored against people's label sets (missing_labels_truth.csv and .json). `groups`: a
    file of the categories' groups (groupfiles) that replace, where it names them, those the run's own `bias`
    call gives."""
    from avaudit.audits.missing_labels import candidates_of, split_confusions, with_videos
    from avaudit.groupfiles import category_groups, class_groups, read_groups, unjudged_class_wide
    from avaudit.truthfiles import read_truth

    options = audit_options(options, fields)
    check_range("min_confidence", min_confidence, 0, 1)
    check_range("min_precision", min_precision, 0, 1)
    people = read_truth(check_truth(truth)) if truth is not None else None  # a bad file fails first
    named = read_groups(groups) if groups is not None else None
    if max_confusion is not None:
        check_number("max_confusion", max_confusion)
    folder = output_dir(out, "missing-labels")
    a = audit(data, options, labels=LabelPolicy.check, on_event=on_event,  # read, infer
              writes=planned_writes(folder, "missing-labels"), reads=truth_reads(people))
    rows, classes, position, size = a.rows, a.classes, a.rows["position"].to_numpy(), block_rows(len(a.classes))

    def read(at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Eq. 7 over confidences, not raw logits: the layers' logits live on different scales, and on our
        planted tuning set comparing them found 5 of 8 planted second events, confidences 8 of 8. In float64,
        the rules' dtype, a block of rows at a time (audits.missing_scan)."""
        confidences = np.asarray(a.read(position[at])[1], float)
        return confidences, confidences

    given, unmatched = class_groups(named, classes) if named is not None else ({}, [])
    settings = run_record(a, "missing-labels", min_confidence=min_confidence, max_confusion=max_confusion,
                          min_precision=min_precision, truth=truth_record(people),
                          groups=None if groups is None else {"file": str(groups), "classes_named": len(given),
                                                              "names_matching_no_class": unmatched})
    notes = a.notes + ([f"--groups {groups}: {len(unmatched)} name(s) match no class of the model, e.g. "
                        f"{unmatched[0]!r}"] if unmatched else [])
    used = given if len(given) == len(classes) else {**category_groups(rows, read, classes, size=size), **given}
    found = candidates_of(read, rows, classes, min_confidence=min_confidence, groups=used,  # decide
                          fraction=THRESHOLDS.fraction, size=size, narrow=a.read(position[:0])[1].dtype == np.float32)
    give_back_freed()  # the blocks' and the medians' arrays, before the table is split in two
    candidates, confusions = split_confusions(found, max_confusion=max_confusion, min_precision=min_precision)
    del found
    candidates = with_videos(candidates, rows)  # the kept ones' video_id and path
    notes += [] if named is not None else unjudged_class_wide(confusions, used)
    tables = {"missing_labels.csv": candidates, "confusions.csv": confusions}
    scores = people.score_candidates(rows, candidates, classes, into=tables) if people is not None else None
    summary = MissingLabelsSummary(len(rows), len(candidates), int(candidates["video_id"].nunique()),  # write
                                   int(confusions["n_videos"].sum()), scores)
    run = AuditRun(folder, tables, summary, a.skipped, settings["n_rows"], a.n_cached, notes=notes)
    write_run(run, settings, {"missing_labels_truth.json": scores} if scores is not None else None)
    return run


def retarget(data: Path | None = None, *, keep: Sequence[str], by: str = By.category, out: Path | None = None,
             compare: str | None = None, bias_run: Path | None = None, rule: str = THRESHOLDS.rule,
             drop: Sequence[str] | str | None = None, options: AuditOptions | None = None,
             on_event: Callable | None = None, **fields) -> AuditRun:
    """The rows whose category (or video) falls in `keep`, written in DATA's own format; with `drop` (quality
    flags: still, silent, duplicate), less the videos flagged so (a group of duplicates keeps one copy).

    With DATA, audits it first and writes that bias run in a `bias` folder beside `out` (never over a
    bias run of other DATA). Without DATA, uses the bias run in `bias_run`, or the newest one under
    avaudit-out/ (its bias_run.yaml names DATA and root). Beside the subset: its summary (`out`.json,
    naming the bias run used) and retarget_run.yaml, the record `report` finds it by.
    """
    from avaudit.audits.retarget import check_drop, check_keep, check_reference, select_blocks
    from avaudit.audits.retarget import compare as compare_with
    from avaudit.inference.logits import signals_enabled
    from avaudit.media.sources import STORED, check_new_shard, read_data

    keep, by, rule, options = check_keep(keep), check_by(by), check_rule(rule), audit_options(options, fields)
    drop = check_drop(drop)
    if drop and data is not None and not signals_enabled():
        raise UsageError(f"--drop {', '.join(drop)} needs the clips' signals, which AVAUDIT_SIGNALS=0 turns off: the "
                         f"bias run would have measured no quality signals; unset it")
    check_path("data", data)
    check_path("out", out)
    check_path("bias_run", bias_run)
    if compare is not None:
        check_reference(compare)
    if data is None:
        record = read_run(Path(bias_run) if bias_run is not None else newest_bias_run(OUTPUT_ROOT), "bias")
        video_blocks, categories = read_bias_tables(record)
        source = Path(record.settings["data"])
    else:
        source = Path(data)
    out = subset_path(out, source)
    check_new_shard(source, out)
    writes = [out, out.with_name(out.name + ".json"), out.with_name(run_names("retarget")[1])]
    if data is None:
        folder, settings = record.folder, record.settings
        stored = settings.get("format") in STORED  # shards and Parquet take no --root
        manifest = read_data(source, root=None if stored else Path(settings["root"]), allow_outside_root=bool(
            settings.get("allow_outside_root")), classes=Path(settings["classes"]) if settings.get("classes") else None,
            label_field=settings.get("label_field"), video_column=settings.get("video_column"))
        check_writes(writes, data=source, media=manifest.table["path"],
                     inputs={folder / name: "a table of the bias run read" for name in RUN_FILES["bias"][:2]})
        run = AuditRun(out.parent, n_rows=int(len(manifest.table) + len(manifest.skipped)), manifest=manifest)
    else:
        folder = out.parent / "bias"
        replaced_model = check_bias_folder(folder, source)
        run = bias(source, out=folder, rule=rule, options=options, on_event=on_event, also_writes=writes)
        video_blocks, categories = [run.tables["bias_videos.csv"]], run.tables["bias_categories.csv"]
        run.notes.append(f"the bias run of DATA written to {folder} (`retarget --from {folder}` reuses it)")
        model = os.path.abspath(options.model_file)
        if replaced_model is not None and os.path.abspath(replaced_model) != model:
            run.notes.append(f"{folder} held the bias run of DATA made with the model {replaced_model}: replaced by "
                             f"this one, made with {model}")
    selected, kept = select_blocks(video_blocks, categories, keep, by=by, drop=drop,
                                   named=str(folder / "bias_videos.csv"))  # first: its own error on no `flags`
    if drop and data is None and not flags_measured(record):
        raise UsageError(f"{folder}: the bias run measured no quality signals (AVAUDIT_SIGNALS=0), so no video is "
                         f"flagged {', '.join(drop)}; rerun `avaudit bias` without it")
    kept_ids = kept["video_id"].unique()  # compared as arrays: no Python string a row
    kept_categories = sorted(kept["label"].unique())
    summary = RetargetSummary(str(out), str(folder), run.manifest.format, list(keep), str(by),
                              int(run.manifest.table["video_id"].isin(kept_ids).sum()), run.n_rows,
                              kept_categories, compare_with(kept_categories, compare) if compare else None,
                              drop, int(selected.nunique() - len(kept_ids)))
    record = {"command": "retarget", "data": os.path.abspath(source), "bias_run": os.path.abspath(folder),
              "keep": list(keep), "by": str(by), "compare": compare, "drop": drop}
    write_retarget(run.manifest, kept_ids, summary, record, writes)
    return AuditRun(out.parent, {}, summary, run.skipped, run.n_rows, run.n_cached, run.manifest, run.skipped_path,
                    run.notes)


def write_retarget(manifest, video_ids: Sequence[str], summary: RetargetSummary, record: dict,
                   writes: list[Path]) -> None:
    """The subset (DATA's rows of `video_ids`, in DATA's format), its summary and its record (retarget_run.yaml,
    naming the other two), written together (outputs.output_set)."""
    from avaudit.media.sources import write_subset

    subset, summary_path, record_path = writes
    table = manifest.table  # its `row` column alone filtered: a filter of the table copied its text too (90 B a row)
    rows = table["row"].to_numpy()[table["video_id"].isin(video_ids).to_numpy()]
    record = {**record, "subset": os.path.abspath(subset), "summary": summary_path.name,
              "outputs": sorted([subset.name, summary_path.name])}
    with output_set(subset.parent, record=record_path.name) as staged:
        write_subset(manifest, rows.tolist(), staged / subset.name)
        write_json(summary.document(), staged / summary_path.name)
        write_yaml(record, staged / record_path.name)
    give_back_freed()  # what reading and filtering freed: a 10M run held 730 MB of it after retarget


def subset_path(out: Path | None, source: Path) -> Path:
    """The subset file retarget writes: `out`, or avaudit-out/retarget/subset.<DATA's extension>."""
    listed = source.is_file() and source.suffix not in (".tar", ".parquet")  # shards' subset: a list of keys
    default_name = f"subset{source.suffix}" if listed else "subset.csv"
    out = Path(out) if out is not None else output_dir(None, "retarget") / default_name
    if out.is_dir():
        raise ParameterError("out", f"{out} is a folder: name the subset file to write, e.g. {out / default_name}")
    return out


def run_record(a: Audit, command: str, **extra) -> dict:
    """The run record's settings (runs.write_run): DATA's and the model's (Audit.record), the command's own,
    then the resolved config."""
    return {"command": command, **a.record, **extra, "config": a.checkpoint["config"]}


def truth_reads(people) -> dict[Path, str]:
    """The truth files a run reads, by what they are: none may be one of its outputs (outputs.check_writes)."""
    what = {"people": "the --truth file", "audio_events": "the --truth-audio events",
            "visual_events": "the --truth-visual events"}
    return {Path(path): what[key] for key, path in (people.about.items() if people else ()) if key in what}


def truth_record(people) -> list[str] | None:
    """The truth files of a run as its record names them: absolute paths (`vggsounder` as given)."""
    if people is None:
        return None
    return [spec if spec == PACKAGE_NAME else os.path.abspath(spec) for spec in people.files]


def output_dir(out: Path | None, command: str) -> Path:
    check_path("out", out)
    return Path(out) if out is not None else OUTPUT_ROOT / command


def load_model(path: Path | None = None, *, device: str = "cpu"):
    """(network in eval mode, class names, config, checkpoint dict) of a checkpoint [default: the shipped one]."""
    from avaudit.model.checkpoint import load_network

    return load_network(Path(path) if path is not None else DEFAULT_MODEL, device=device)

