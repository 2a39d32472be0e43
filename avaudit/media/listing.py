"""A manifest's records into its table of videos and its skipped list, a column at a time.

Every listed video lands in exactly one of the two; a video's records after its first are merged into
it (AVE's multi-label videos, AVVP's events) or skipped as duplicates. Records are read one at a time
and kept as compact columns (Arrow strings, numbers) a block at a time, so ten million rows cost their
text and numbers, not ten million Python objects each; only the records of ids listed more than once
are gathered in Python. Each video's file is looked for at its first record.
"""
from __future__ import annotations

import math
import os
from array import array
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from avaudit.media.folders import PATH_ECHO, Finder, printable
from avaudit.media.formats import Format, Row, echo
from avaudit.media.records import Span, where
from avaudit.vocab import SKIPPED_COLUMNS, Skip, plural

BLOCK = 20_000  # records held as Python objects before they become compact columns
FOUND = ""  # the reason column of a record whose file was found


class Spans(Sequence):
    """Each row's (first, last) line, two integers a row (a list of tuples costs ten times that)."""

    def __init__(self) -> None:
        self.first, self.last = array("q"), array("q")

    def append(self, span: Span) -> None:
        self.first.append(span[0])
        self.last.append(span[1])

    def __len__(self) -> int:
        return len(self.first)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        return self.first[row], self.last[row]

    def __eq__(self, other) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented


class _Columns:
    """Values appended a record at a time, turned into pandas columns of `kinds` a block at a time."""

    def __init__(self, kinds: dict[str, object]) -> None:
        self.kinds = kinds
        self.values: list[list] = [[] for _ in kinds]
        self.blocks: list[list[pd.Series]] = [[] for _ in kinds]

    def add(self, values: Iterable) -> None:
        for column, value in zip(self.values, values):
            column.append(value)
        if len(self.values[0]) >= BLOCK:
            self._flush()

    def _flush(self) -> None:
        for i, kind in enumerate(self.kinds.values()):
            if self.values[i]:
                self.blocks[i].append(pd.Series(self.values[i], dtype=kind))
                self.values[i] = []

    def frame(self) -> dict[str, pd.Series]:
        self._flush()
        out = {}
        for i, (name, kind) in enumerate(self.kinds.items()):
            blocks, self.blocks[i] = self.blocks[i], []
            out[name] = (pd.concat(blocks, ignore_index=True) if len(blocks) > 1 else blocks[0] if blocks
                         else pd.Series([], dtype=kind))
        return out


class _Inside:
    """Whether a place is inside the media root; a folder is judged once, whatever its number of files."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self._folders = prefix, {}

    def __call__(self, place: tuple[str, str]) -> bool:
        folder, stem = place
        if not stem or stem in (".", "..") or os.sep in stem or (os.altsep and os.altsep in stem):
            return os.path.normpath(os.path.join(folder, stem)).startswith(self.prefix)
        if folder not in self._folders:  # a plain file name: its folder decides
            self._folders[folder] = os.path.normpath(os.path.join(folder, "x")).startswith(self.prefix)
        return self._folders[folder]


def named_path(p: Row) -> str:
    """The path a row names in the dataset's own layout: its first place."""
    return os.path.join(p.places[0][0], p.places[0][1] + p.exts[0])


def _tried(p: Row, places: tuple[tuple[str, str], ...], named: str) -> str:
    """Where a missing file was looked for: its path (the skipped row's own, unless the root ruled it out) and how
    many other places, not every place's path (~500 characters a row for Kinetics' six layouts, 5 GB at 10M rows)."""
    first = printable(os.path.join(places[0][0], places[0][1] + p.exts[0]))
    at = "its path" if first == named else echo(first, PATH_ECHO)
    others = f" or {plural(len(places) - 1, 'other place')}" if len(places) > 1 else ""
    return f"not found at {at}{others}" + (f" (also {' '.join(p.exts[1:])})" if len(p.exts) > 1 else "")


def _locate(p: Row, named: str, root: str, finder: Finder, inside: _Inside | None) -> tuple[str, str, str]:
    """(the path found, or ""; skip reason, or FOUND; why, without the lines)."""
    places = p.places if inside is None else tuple(filter(inside, p.places))
    if not places:
        return "", Skip.outside_root, (f"{echo(named, PATH_ECHO)} is outside the media root {root}; pass a "
                                       f"--root that holds it, or --allow-outside-root")
    path, refused = finder.find(places, p.exts)
    if path is None:
        return ("", Skip.unreadable_file, refused) if refused else ("", Skip.missing_file, _tried(p, places, named))
    if printable(path) != path:
        return printable(path), Skip.bad_name, printable(
            f"{echo(path, PATH_ECHO)}: the path is not UTF-8; rename it to audit it")
    return path, FOUND, ""


def _named(cols: dict, at: int) -> str:
    """The path record `at` names (kept only where it is not the path found)."""
    return cols["named"].iat[at] or cols["path"].iat[at]


def _repeat(fmt: Format, cols: dict, at: int, seen: int, seen_labels: list[str], seen_span: Span) -> str | None:
    """Why record `at` of an id first listed at record `seen` is not merged into its video; None to merge it."""
    named, before = (os.path.basename(_named(cols, i)) for i in (at, seen))
    video_id = cols["video_id"].iat[at]
    if fmt.names_files and named != before:
        return (f"{echo(named)} has the id {echo(video_id)} of {echo(before)} on {where(seen_span)} "
                f"(an id is the path without its extension); rename one to audit both")
    new = [label for label in cols["labels"].iat[at].split(";") if label and label not in seen_labels]
    same = all(a == b or (math.isnan(a) and math.isnan(b))
               for a, b in ((cols[k].iat[at], cols[k].iat[seen]) for k in ("start", "end")))
    if fmt.events or (new and same):  # another event, or the same clip under another label
        return None
    why = "already listed" if same else "already listed with another window"
    return f"{echo(video_id)} {why} on {where(seen_span)}"


def _gather(entries, fmt: Format, root: str, finder: Finder, allow_outside_root: bool):
    """Every record's columns (parsed ones), its span, and the records that did not parse."""
    # named: the path the record names, "" where its file was found there (then `path` says it)
    kinds = {"row": np.int64, "video_id": "str", "named": "str", "labels": "str", "start": float, "end": float,
             "split": "str", **{name: "str" if name == "youtube_id" else float for name in fmt.extras},
             "raw": "str", "path": "str", "reason": "str", "detail": "str"}
    columns, spans, unparsed = _Columns(kinds), Spans(), []
    inside = None if allow_outside_root else _Inside(os.path.join(root, ""))
    for row, (span, raw, p) in enumerate(entries):
        spans.append(span)
        if not isinstance(p, Row):
            unparsed.append((row, "", "", *p))
            continue
        named = printable(named_path(p))
        path, reason, detail = _locate(p, named, root, finder, inside)
        labels = p.labels if ";;" not in p.labels and p.labels[:1] != ";" and p.labels[-1:] != ";" else \
            ";".join(label for label in p.labels.split(";") if label)  # no empty labels
        columns.add((row, p.video_id, "" if path == named else named, labels, p.start, p.end, p.split, *p.extras,
                     raw, path, reason, printable(f"{where(span)}: {detail}") if reason else ""))
    return columns.frame(), spans, unparsed


def _merge(fmt: Format, cols: dict, spans: Spans):
    """The ids listed more than once, in Python: (first record -> merged labels, first record -> its further
    records' spans, first record -> further records (row, text), skipped duplicates, records merged or skipped)."""
    ids = cols["video_id"]
    repeated = np.flatnonzero(ids.duplicated(keep=False).to_numpy())
    labels, also, more, duplicates, later = {}, {}, {}, [], []
    first: dict[str, int] = {}
    rows = cols["row"].to_numpy()
    for at in repeated.tolist():
        video_id, row = ids.iat[at], int(rows[at])
        span = spans[row]
        if video_id not in first:
            first[video_id] = at
            labels[at] = [label for label in cols["labels"].iat[at].split(";") if label]
            continue
        seen = first[video_id]
        later.append(at)
        why = _repeat(fmt, cols, at, seen, labels[seen], spans[int(rows[seen])])
        if why is None:
            labels[seen] += [name for name in cols["labels"].iat[at].split(";") if name and name not in labels[seen]]
            also.setdefault(seen, []).append(span)
            more.setdefault(seen, []).append((row, cols["raw"].iat[at]))
            continue
        duplicates.append((row, video_id, _named(cols, at), Skip.duplicate_id, f"{where(span)}: {why}"))
    return labels, also, more, duplicates, np.asarray(later, dtype=np.int64)


def _details(cols: dict, lost: np.ndarray, every: bool, spans: Spans, also: dict) -> pd.Series:
    """'line 3: why' of the records `lost`, or 'line 3 (also lines 7-8): why' where further records merged."""
    details = cols["detail"].reset_index(drop=True) if every else cols["detail"].take(lost).reset_index(drop=True)
    if also:
        at, rows = {position: i for i, position in enumerate(lost.tolist())}, cols["row"].to_numpy()
        for position, spans_also in also.items():
            if position in at:
                lines = where(spans[int(rows[position])])
                why = details.iat[at[position]][len(lines) + 2 :]
                details.iat[at[position]] = f"{lines} (also {', '.join(map(where, spans_also))}): {why}"
    return details


def build(entries, fmt: Format, root: str, finder: Finder, *, allow_outside_root: bool):
    """(table, skipped, more_lines, labels named, found-files note, spans) of a manifest's records."""
    cols, spans, unparsed = _gather(entries, fmt, root, finder, allow_outside_root)
    labels, also, more, duplicates, later = _merge(fmt, cols, spans)
    first = np.ones(len(cols["row"]), bool)
    first[later] = False
    found = first & (cols["reason"] == FOUND).to_numpy()
    lost = np.flatnonzero(first & ~found)
    missing = lost[(cols["reason"].take(lost) == Skip.missing_file).to_numpy()]
    n_found = int(found.sum())
    note = (f"{n_found:,} of {plural(n_found + len(missing), 'file')} found under {root}; "
            f"e.g. {echo(cols['named'].iat[missing[0]], PATH_ECHO)}" if len(missing) else None)
    named = set(";".join(cols["labels"].unique()).split(";")) - {""}
    every = len(lost) == len(first)  # every record a video whose file is not there: no copies

    def column(name: str):
        return cols[name].array if every else cols[name].take(lost).array

    path, named_there = (pd.Series(column(name), copy=False) for name in ("path", "named"))
    own = (path != "").to_numpy()  # a bad name's own path; the named one for every other skip
    failed = pd.DataFrame({"row": column("row"), "video_id": column("video_id"),
                           "path": path.where(own, named_there).array if own.any() else named_there.array,
                           "reason": column("reason"),
                           "detail": _details(cols, lost, every, spans, also).array}, copy=False)
    rest = pd.DataFrame(unparsed + duplicates, columns=["row", *SKIPPED_COLUMNS])
    skipped = pd.concat([failed, rest.astype({c: "str" for c in SKIPPED_COLUMNS})], ignore_index=True) \
        if len(rest) else failed
    skipped = skipped.sort_values("row", kind="stable")[list(SKIPPED_COLUMNS)].reset_index(drop=True)
    rows = cols["row"].to_numpy()
    more = {int(rows[position]): records for position, records in more.items() if found[position]}
    return _table(cols, found, labels, fmt), skipped, more, frozenset(named), note, spans


def _table(cols: dict, found: np.ndarray, labels: dict, fmt: Format) -> pd.DataFrame:
    """The videos whose file was found: COLUMNS (+ the format's extras), merged labels joined."""
    every = bool(found.all())
    keep = np.flatnonzero(found)

    def column(name: str) -> pd.Series:
        return cols[name].reset_index(drop=True) if every else cols[name].take(keep).reset_index(drop=True)

    merged = column("labels")
    if labels:
        at = {position: i for i, position in enumerate(keep.tolist())} if not every else None
        for position, names in labels.items():
            i = position if every else at.get(position)
            if i is not None:
                merged.iat[i] = ";".join(names)
    names = ("video_id", "path", "labels", "start", "end", "split", "row", "raw", *fmt.extras)
    return pd.DataFrame({name: merged if name == "labels" else column(name) for name in names}, copy=False)
