"""What DATA's labels mean to a model: the one check every command that compares predictions with
DATA's labels makes, the note of the commands that do not, and the rows an audit against labels
cannot judge."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from avaudit.errors import UsageError
from avaudit.media.formats import echo
from avaudit.media.manifests import Manifest
from avaudit.vocab import LabelPolicy, Skip, plural


def labelled_rows(table: pd.DataFrame) -> pd.DataFrame:
    """One row per (video, label): a multi-label video counts for each of its categories (whose labels
    the audit checked against the model's classes before decoding: check_labels)."""
    labels = table["labels"].fillna("")  # a manifest's: categorical, so neither this nor `label` is text a row
    values = labels.cat.categories if isinstance(labels.dtype, pd.CategoricalDtype) else labels
    if values.str.contains(";", regex=False).any():
        rows = table.assign(label=labels.str.split(";")).explode("label")
    else:  # one label a row, the common case: no lists to explode
        rows = table.assign(label=labels)
    rows = rows[rows["label"] != ""]
    if isinstance(rows["label"].dtype, pd.CategoricalDtype):  # the labels of these rows only, as text has them
        rows = rows.assign(label=_present_only(rows["label"]))
    return rows


def _present_only(column: pd.Series) -> pd.Series:
    """A categorical column with only the categories its rows hold (not those of rows dropped before), its codes
    looked at a block at a time (remove_unused_categories makes ~27 bytes a row)."""
    codes = column.cat.codes.to_numpy()
    present = np.zeros(len(column.cat.categories) + 1, bool)  # the last for NaN's code, -1
    for start in range(0, len(codes), 1 << 16):
        present[codes[start : start + (1 << 16)]] = True
    unused = column.cat.categories[~present[:-1]]
    return column.cat.remove_categories(unused) if len(unused) else column


def apply_label_policy(manifest: Manifest, classes: list[str], policy: LabelPolicy) -> tuple[Manifest, list[str]]:
    """(the manifest to audit, notes for the user) under an audit's label policy: the one place an
    audit checks DATA's labels against the model's classes, before anything is decoded."""
    if policy == LabelPolicy.require:
        refuse_unreadable_labels(manifest)
        manifest = unlabelled_to_skipped(manifest)
    if policy in (LabelPolicy.require, LabelPolicy.check):
        check_labels(manifest.table, classes, required=policy == LabelPolicy.require, named=manifest.labels_named)
        return manifest, []
    unknown = sorted(label_names(manifest.table["labels"]) - set(classes))
    no_labels = unreadable_labels(manifest) or "DATA has no labels"
    return manifest, [classes_note(classes, unknown, no_labels)] if unknown or not manifest.labels_named else []


def unreadable_labels(manifest: Manifest) -> str | None:
    """Why DATA names no label, where that is because its rows could not be read (malformed rows, labels
    that cannot be avaudit's): the file, the counts and the first such row's line and reason. None where
    DATA names labels, or its rows simply have none."""
    if label_names(manifest.table["labels"]) | manifest.labels_named:
        return None
    unread = manifest.skipped[manifest.skipped["reason"].isin([str(Skip.malformed_row), str(Skip.bad_label)])]
    if unread.empty:
        return None
    what = " and ".join(plural(int(n), reason) for reason, n in unread["reason"].value_counts().items())
    n_rows = len(manifest.table) + len(manifest.skipped)
    others = n_rows - len(unread)
    rest = f", {plural(others, 'row')} without a label" if others else ""
    return (f"{manifest.source}: no label could be read ({what} of {plural(n_rows, 'row')}{rest}), "
            f"e.g. {unread['detail'].iloc[0]}")


def refuse_unreadable_labels(manifest: Manifest) -> None:
    """An audit or training that needs labels refuses DATA whose rows could not be read as that, not as
    DATA without labels: the fix is in those rows."""
    why = unreadable_labels(manifest)
    if why is not None:
        raise UsageError(why)


def label_names(labels: pd.Series) -> set[str]:
    """Every label that appears in a `labels` column (";"-joined where a row has several)."""
    return set(";".join(labels.fillna("").unique()).split(";")) - {""}


def check_labels(table: pd.DataFrame, classes: list[str], *, required: bool = True,
                 named: frozenset[str] | None = None) -> None:
    """The one answer of every command that compares predictions with DATA's labels: labels of the
    videos to audit (`table`) that the model was not trained on are an error naming them, since the
    model cannot judge them. With `required`, DATA that names no label at all (`named`, every label
    of DATA whether its media were found or not [default: the table's]) is an error too."""
    if required and not (label_names(table["labels"]) | set(named or ())):
        raise UsageError("DATA has no labels: this audit needs category folders, a labelled manifest, or shards or "
                         "Parquet with labels (--label-field names their field or column)")
    unknown = sorted(label_names(table["labels"]) - set(classes))
    if unknown:
        raise UsageError(f"{plural(len(unknown), 'label')} the model was not trained on: {shown_names(unknown)}; "
                         f"train on this data first (`avaudit train DATA`) and pass --model")


def shown_names(names: list[str], n: int = 8) -> str:
    return ", ".join(repr(echo(u)) for u in names[:n]) + (" ..." if len(names) > n else "")


def known_classes(classes: list[str]) -> str:
    return f"the model knows {plural(len(classes), 'class')}: {shown_names(list(classes), 10)}"


def classes_note(classes: list[str], unknown: list[str], no_labels: str = "DATA has no labels") -> str:
    """The note of a command that runs without comparing labels: which classes the model knows."""
    known = known_classes(classes)
    if unknown:
        return f"{plural(len(unknown), 'label')} of DATA the model was not trained on ({shown_names(unknown)}); {known}"
    return f"{no_labels}; {known}"


def unlabelled_to_skipped(manifest: Manifest) -> Manifest:
    """`manifest` with its videos that have no label moved to skipped (`no label`): an audit against
    the labels cannot judge them, and they are never decoded."""
    none = (manifest.table["labels"].fillna("") == "").to_numpy()
    if not none.any():
        return manifest
    rows = manifest.table[none]
    moved = pd.DataFrame({"video_id": rows["video_id"], "path": rows["path"], "reason": str(Skip.no_label),
                          "detail": rows["video_id"] + ": no label; this audit judges each video against its label"})
    skipped = pd.concat([manifest.skipped, moved.astype("str")], ignore_index=True)
    return replace(manifest, table=manifest.table[~none].reset_index(drop=True), skipped=skipped)
