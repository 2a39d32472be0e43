"""An audit run's files in its --out folder: their names, writing them as one set, reading a bias run back.

Each command names its own skipped list and record (`bias_skipped.csv`, `bias_run.yaml`), so commands
that share an --out folder never delete or overwrite each other's files, nor a user's `skipped.csv`.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from avaudit.errors import UsageError
from avaudit.outputs import output_set, write_csv, write_json, write_yaml

# The tables each audit writes; beside them <command>_run.yaml and, when some rows were skipped,
# <command>_skipped.csv: named per command, so commands sharing an --out keep each other's files.
RUN_FILES = {"bias": ("bias_videos.csv", "bias_categories.csv", "bias_summary.json", "bias_truth.csv",
                      "bias_truth_categories.csv", "bias_truth_scores.csv", "bias_truth_matrix.csv",
                      "bias_truth_unmatched.csv"),
             "predict": ("predictions.csv",),
             "missing-labels": ("missing_labels.csv", "confusions.csv", "missing_labels_truth.csv",
                                "missing_labels_truth.json")}


def run_names(command: str) -> tuple[str, str]:
    """(skipped list, record) of a command's run: bias_skipped.csv and bias_run.yaml for `bias`."""
    prefix = command.replace("-", "_")
    return f"{prefix}_skipped.csv", f"{prefix}_run.yaml"


def planned_writes(folder: Path, command: str) -> list[Path]:
    return [folder / name for name in (*RUN_FILES[command], *run_names(command))]


def write_run(run, settings: dict, documents: dict[str, dict] | None = None) -> None:
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


def newest_bias_run(root: Path) -> Path:
    """The folder of the most recent `bias` run under `root` (by its bias_run.yaml's modification time)."""
    runs = [path.parent for path in sorted(Path(root).glob("**/bias_run.yaml"))
            if (path.parent / "bias_videos.csv").is_file()]
    if not runs:
        raise UsageError(f"no DATA given and no bias run under {root}/: run `avaudit bias DATA` first, "
                         f"pass DATA, or name a bias run's folder with --from")
    return max(runs, key=lambda folder: (folder / "bias_run.yaml").stat().st_mtime)


def read_bias_settings(folder: Path) -> dict:
    """A bias run's bias_run.yaml, checked: a clear error naming the file instead of a KeyError."""
    path = Path(folder) / run_names("bias")[1]
    try:
        settings = yaml.safe_load(path.read_text())
    except OSError as err:
        raise UsageError(f"{folder}: not a complete bias run ({path.name}: {err.strerror})") from None
    except yaml.YAMLError:
        raise UsageError(f"{path}: not readable YAML") from None
    if not isinstance(settings, dict) or settings.get("command") != "bias" \
            or not all(isinstance(settings.get(key), str) for key in ("data", "root")):
        raise UsageError(f"{path}: not the record of a bias run (needs command: bias, data and root)")
    for name, columns in (("bias_videos.csv", ("video_id", "label", "layer", "group")),
                          ("bias_categories.csv", ("category", "layer", "group"))):
        try:
            header = pd.read_csv(Path(folder) / name, nrows=0).columns
        except (OSError, ValueError):
            raise UsageError(f"{Path(folder) / name}: missing or unreadable; rerun `avaudit bias`") from None
        if not set(columns) <= set(header):
            raise UsageError(f"{Path(folder) / name}: not a bias table (needs columns {', '.join(columns)}); "
                             f"rerun `avaudit bias`")
    return settings
