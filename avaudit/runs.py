"""A run folder, its one owner: what an audit command writes there (its tables, its summary, its
skipped list and its record) and how a run is read back from its record (report, retarget --from).

Each command names its own skipped list and record (`bias_skipped.csv`, `bias_run.yaml`), so commands
that share an --out folder never delete or overwrite each other's files, nor a user's `skipped.csv`.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import pandas as pd
import yaml

from avaudit.errors import UsageError
from avaudit.media.listing import give_back_freed
from avaudit.media.manifests import Manifest
from avaudit.outputs import output_set, read_csv, read_csv_blocks, write_csv, write_json, write_yaml
from avaudit.vocab import QUALITY_FLAGS, SKIPPED_COLUMNS, plural

# The tables each audit writes; beside them <command>_run.yaml and, when some rows were skipped,
# <command>_skipped.csv: named per command, so commands sharing an --out keep each other's files.
RUN_FILES = {"bias": ("bias_videos.csv", "bias_categories.csv", "bias_summary.json", "bias_truth.csv",
                      "bias_truth_categories.csv", "bias_truth_scores.csv", "bias_truth_matrix.csv",
                      "bias_truth_unmatched.csv"),
             "predict": ("predictions.csv",),
             "missing-labels": ("missing_labels.csv", "confusions.csv", "missing_labels_truth.csv",
                                "missing_labels_truth.json"),
             "quality": ("quality_videos.csv", "quality_duplicates.csv", "quality_summary.json")}
BIAS_TABLES = {"bias_videos.csv": ("video_id", "label", "layer", "group"),
               "bias_categories.csv": ("category", "layer", "group")}  # what retarget reads of a bias run


def run_names(command: str) -> tuple[str, str]:
    """(skipped list, record) of a command's run: bias_skipped.csv and bias_run.yaml for `bias`."""
    prefix = command.replace("-", "_")
    return f"{prefix}_skipped.csv", f"{prefix}_run.yaml"


def planned_writes(folder: Path, command: str) -> list[Path]:
    return [folder / name for name in (*RUN_FILES[command], *run_names(command))]


@dataclass
class BiasSummary:
    """bias_summary.json: Table 3's counts, Table 4's statistics and the settings they came from."""
    rule: str
    fraction: float | None  # the sufficiency fraction; None under the paper's rule
    type_margin: float
    min_support: float | None  # a category's call less sure than this is unclear; None under the paper's rule
    video_noise: float  # a video's margin under this is not `clear`
    categories_per_layer: dict[str, int]
    categories_per_group: dict[str, int]
    total: int  # categories
    n_videos: int  # audited (video, label) rows
    layer_statistics: dict
    n_rows: int  # rows of DATA
    n_skipped: int
    confidence: str
    truth: dict | None = None  # the scores against people's modalities, with --truth (or --truth-audio/-visual)
    n_flagged: dict[str, int] | None = None  # audited rows by quality flag (QUALITY_FLAGS) and `any`; None unmeasured
    flagged_vote: bool = False  # flagged videos voted on their categories' calls (--flagged-vote)

    def document(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not (k == "truth" and v is None)}

    def flagged_line(self) -> str | None:
        """What `bias` prints of its flagged videos, when some were."""
        if not self.n_flagged or not self.n_flagged["any"]:
            return None
        held = ", ".join(f"{self.n_flagged[flag]:,} {flag}" for flag in QUALITY_FLAGS if self.n_flagged[flag])
        return (f"{plural(self.n_flagged['any'], 'video')} with a quality flag ({held}) "
                + ("voted on their categories' calls" if self.flagged_vote else
                   "did not vote on their categories' calls (--flagged-vote lets them)")
                + "; see the flags column of bias_videos.csv")


@dataclass
class QualitySummary:
    """quality_summary.json: how many clips each flag holds and how many duplicate pairs, by stream."""
    n_videos: int  # decoded clips
    n_flagged: dict[str, int]  # clips by flag (flags.FLAGS), and `any`
    n_duplicate_pairs: int
    pairs_per_streams: dict[str, int]  # audiovisual, audio, visual
    n_cross_split_pairs: int  # pairs whose two clips are in different splits: a leak
    n_rows: int
    n_skipped: int

    def line(self) -> str:
        """What `avaudit quality` prints."""
        flags = ", ".join(f"{self.n_flagged[flag]:,} {flag}" for flag in QUALITY_FLAGS)
        streams = ", ".join(f"{n:,} {name}" for name, n in self.pairs_per_streams.items())
        return (f"{plural(self.n_videos, 'clip')} measured; {self.n_flagged['any']:,} flagged ({flags}); "
                f"{plural(self.n_duplicate_pairs, 'duplicate pair')} ({streams}), {self.n_cross_split_pairs:,} "
                f"across splits")


@dataclass
class PredictSummary:
    n_videos: int


@dataclass
class MissingLabelsSummary:
    n_videos: int
    n_candidates: int
    n_videos_with_candidates: int
    n_confused: int  # candidates set apart as unlikely (estimated precision) or a layer's confusion (confusions.csv)
    truth: dict | None = None  # the scores against people's label sets, with --truth (missing_labels_truth.json)


@dataclass
class RetargetSummary:
    """`<subset>.json` beside the subset: what was kept, from which bias run."""
    out: str
    bias_run: str
    format: str
    keep: list[str]
    by: str
    n_videos: int
    n_input_rows: int
    categories: list[str]
    compare: dict | None = None  # how many of a Kinetics-Sounds list's classes the subset holds
    drop: list[str] = field(default_factory=list)  # quality flags whose videos were left out (--drop)
    n_dropped: int = 0  # videos of the kept categories left out for those flags

    def document(self) -> dict:
        return {k: v for k, v in asdict(self).items() if not (k == "compare" and v is None)}


@dataclass
class AuditRun:
    """What an audit command produced: its tables by output file name, its summary, and the skipped rows."""
    out: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    summary: BiasSummary | PredictSummary | MissingLabelsSummary | RetargetSummary | QualitySummary | None = None
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


def write_run(run: AuditRun, settings: dict, documents: dict[str, dict] | None = None) -> None:
    """An AuditRun's tables, JSON documents, skipped list (<command>_skipped.csv, when some rows were
    skipped) and record (<command>_run.yaml, listing the others) as one output set: written all
    together or not at all (outputs.output_set)."""
    documents = documents or {}
    skipped_name, record = run_names(settings["command"])
    skipped = [skipped_name] if len(run.skipped) else []
    names = sorted([*run.tables, *documents, *skipped])
    with output_set(run.out, record=record, remove=[] if skipped else [skipped_name]) as staged:
        for name, frame in run.tables.items():
            write_csv(frame, staged / name)
        for name, data in documents.items():
            write_json(data, staged / name)
        if skipped:
            write_csv(run.skipped, staged / skipped_name)
        config = settings.get("config")
        write_yaml({**{k: v for k, v in settings.items() if k != "config"}, "outputs": names,
                    **({"config": config} if config is not None else {})}, staged / record)
    run.skipped_path = run.out / skipped_name if skipped else None
    give_back_freed()  # what deciding and writing freed: the next command of a process starts without it


@dataclass
class RunRecord:
    """A run as its record (<command>_run.yaml) names it: the settings it ran with and its outputs."""
    folder: Path
    command: str
    settings: dict  # the record as written

    @property
    def path(self) -> Path:
        return self.folder / run_names(self.command)[1]

    def file(self, name: str) -> Path:
        return self.folder / name


# Settings another command reads back from a record, and what each must hold.
PATH_SETTINGS = ("data", "root", "classes", "bias_run", "subset")
REQUIRED = {"bias": ("data", "root"), "retarget": ("bias_run", "subset", "summary")}


def load_record(path: Path) -> dict | None:
    """A record's YAML mapping, None when it is not UTF-8 YAML holding a mapping with its command."""
    try:
        record = yaml.safe_load(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("command"), str) else None


def read_run(folder: Path, command: str) -> RunRecord:
    """The run of `command` in `folder`, from its record, checked: a one-line UsageError naming the file
    where it is missing, not YAML, another command's, or holds a setting of the wrong type."""
    folder = Path(folder)
    path = folder / run_names(command)[1]
    try:
        text = path.read_bytes()
    except OSError as err:
        raise UsageError(f"{folder}: not a complete {command} run ({path.name}: {err.strerror})") from None
    try:
        settings = yaml.safe_load(text.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not readable YAML (not UTF-8 text)") from None
    except yaml.YAMLError:
        raise UsageError(f"{path}: not readable YAML") from None
    needs = REQUIRED.get(command, ())
    if not isinstance(settings, dict) or settings.get("command") != command \
            or not all(isinstance(settings.get(key), str) for key in needs):
        raise UsageError(f"{path}: not the record of a {command} run (needs command: {command}"
                         + (f", {', '.join(needs[:-1])} and {needs[-1]})" if needs else ")"))
    for key in PATH_SETTINGS:
        if not isinstance(settings.get(key), (str, type(None))):
            raise UsageError(f"{path}: `{key}` must be a path, not {type(settings[key]).__name__} "
                             f"{str(settings[key])[:60]!r}; rerun `avaudit {command}`")
    return RunRecord(folder, command, settings)


def find_runs(folder: Path) -> list[RunRecord]:
    """Every run recorded in `folder` or one level below (avaudit-out/<command>/), each by its record."""
    folder = Path(folder)
    runs = []
    for path in (*sorted(folder.glob("*/*_run.yaml")), *sorted(folder.glob("*_run.yaml"))):
        record = load_record(path)
        if record is None:
            raise UsageError(f"{path}: not the record of an avaudit run (a mapping with its command); "
                             f"rerun that command or remove the file")
        runs.append(RunRecord(path.parent, record["command"], record))
    return runs


def newest_bias_run(root: Path) -> Path:
    """The folder of the most recent `bias` run under `root` (by its bias_run.yaml's modification time)."""
    runs = [path.parent for path in sorted(Path(root).glob("**/bias_run.yaml"))
            if (path.parent / "bias_videos.csv").is_file()]
    if not runs:
        raise UsageError(f"no DATA given and no bias run under {root}/: run `avaudit bias DATA` first, "
                         f"pass DATA, or name a bias run's folder with --from")
    return max(runs, key=lambda folder: (folder / "bias_run.yaml").stat().st_mtime)


def read_bias_tables(run: RunRecord) -> tuple[Iterator[pd.DataFrame], pd.DataFrame]:
    """(bias_videos.csv a block of rows at a time, bias_categories.csv) of a bias run, each checked for the columns
    retarget reads; of bias_videos.csv only those and `flags` (its confidences and paths are ~100 bytes a row of
    ten million, and retarget only selects rows of it)."""
    for name, columns in BIAS_TABLES.items():
        try:
            header = pd.read_csv(run.file(name), nrows=0).columns
        except (OSError, ValueError):
            raise UsageError(f"{run.file(name)}: missing or unreadable; rerun `avaudit bias`") from None
        if not set(columns) <= set(header):
            raise UsageError(f"{run.file(name)}: not a bias table (needs columns {', '.join(columns)}); "
                             f"rerun `avaudit bias`")
    videos = run.file("bias_videos.csv")
    wanted = {*BIAS_TABLES["bias_videos.csv"], "flags"}
    return (read_csv_blocks(videos, dtype={"video_id": str, "label": str}, usecols=lambda name: name in wanted),
            read_csv(run.file("bias_categories.csv"), dtype={"category": str}))


def flags_measured(run: RunRecord) -> bool:
    """Whether a bias run measured its videos' quality flags (its summary's n_flagged; null with
    AVAUDIT_SIGNALS=0, absent from an older avaudit's), so that no flag means no such video."""
    import json

    try:
        return json.loads(run.file("bias_summary.json").read_text()).get("n_flagged") is not None
    except (OSError, ValueError, AttributeError):
        return False


def check_bias_folder(folder: Path, data: Path) -> str | None:
    """Before `retarget DATA` writes DATA's bias run into `folder`: a bias run of other DATA there is
    never replaced, nor one whose record cannot be read (it may be anyone's). Returns the model of the
    run of DATA it will replace, when its record names one, so that retarget can say so."""
    if not (Path(folder) / run_names("bias")[1]).exists():
        theirs = [name for name in (*RUN_FILES["bias"], run_names("bias")[0]) if (Path(folder) / name).exists()]
        if theirs:  # files of the run's names with no record: someone's, not a run avaudit wrote
            raise UsageError(f"{folder} holds {theirs[0]} but no bias run record; retarget writes DATA's bias run "
                             f"there: give an --out in another folder")
        return None
    try:
        settings = read_run(folder, "bias").settings
    except UsageError as err:
        raise UsageError(f"{folder} holds a bias run avaudit cannot read ({err}); retarget writes DATA's bias "
                         f"run there: give an --out in another folder") from None
    there = settings["data"]
    if os.path.abspath(there) != os.path.abspath(data):
        raise UsageError(f"{folder} holds the bias run of other DATA ({there}); retarget writes the bias run of "
                         f"{data} there: give an --out in another folder, or use that run with --from {folder}")
    return settings.get("model") if isinstance(settings.get("model"), str) else None
