"""A manifest's records into its table of videos and its skipped list, a column at a time.

Every listed video lands in exactly one of the two; a video's records after its first are merged into
it (AVE's multi-label videos, AVVP's events) or skipped as duplicates. Records are read one at a time
and kept as compact columns a block at a time (Arrow strings for what differs from record to record,
an integer code for what repeats: labels, split, reason, a skip's why), so ten million rows cost their
text and numbers, not ten million Python objects each; only the records of ids listed more than once
are gathered in Python. Each video's file is looked for at its first record. The read is two steps:
gather (which needs the file's text) and build (which does not, so the caller drops it in between).
"""
from __future__ import annotations

import ctypes
import math
import os
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from avaudit.media.folders import PATH_ECHO, Finder, printable
from avaudit.media.formats import Format, Row, echo
from avaudit.media.records import Span, where
from avaudit.vocab import SKIPPED_COLUMNS, Skip, plural

BLOCK = 20_000  # records held as Python objects before they become compact columns
FOUND = ""  # the reason column of a record whose file was found
DETAILS_BLOCK = 1 << 16  # skipped rows whose details are made at once (Arrow's string kernels take ~150 B a row)
# The columns' memory: malloc's, which gives freed blocks back to numpy and Python; Arrow's default (mimalloc) kept
# ~100 MiB a million rows of the blocks the read made and freed (benchmarks/README.md, issue 22's third round).
POOL = pa.system_memory_pool()


def give_back_freed() -> None:
    """Memory a read freed, back to the system: glibc keeps the blocks of the read's Python objects and columns in
    its arenas (~90 bytes a row at a million rows: Arrow's release_unused does not trim them), where every later
    stage's resident memory counts them."""
    POOL.release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: its allocator gives back what it will
        pass


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

    def lines(self, rows: np.ndarray) -> pa.Array:
        """'line 3' or 'lines 3-5' of each of `rows`, as `where` writes them, in one vectorized pass."""
        first, last = (pa.array(np.frombuffer(column, np.int64)[rows]) for column in (self.first, self.last))
        first_text = pc.cast(first, pa.large_string(), memory_pool=POOL)
        line, lines, dash, none = (pa.scalar(text, pa.large_string()) for text in ("line ", "lines ", "-", ""))
        return pc.if_else(pc.equal(first, last), pc.binary_join_element_wise(line, first_text, none, memory_pool=POOL),
                          pc.binary_join_element_wise(lines, first_text, dash, pc.cast(last, pa.large_string()), none,
                                                      memory_pool=POOL), memory_pool=POOL)


class _Codes(dict):
    """Each distinct value of a column that repeats (labels, split, reason, why) and its number, in order of
    first sight: ten million records hold a small integer each, not a string."""

    def __init__(self, *values: str) -> None:
        super().__init__((str(value), i) for i, value in enumerate(values))
        self.names = [str(value) for value in values]

    def code(self, value: str) -> int:
        code = self.get(value)
        if code is None:
            code = self[value] = len(self.names)
            self.names.append(str(value))
        return code

    def values_of(self, codes: np.ndarray) -> pa.Array:
        return pc.take(pa.array(self.names, pa.large_string()), pa.array(codes), memory_pool=POOL)


def _text(values) -> pd.Series:
    """Arrow strings (an array, or a chunked one a block a chunk) as a pandas `str` column, without a copy."""
    return pd.Series(pd.array(values, dtype="str"), copy=False)


def _take(column: pd.Series, positions: np.ndarray) -> pd.Series:
    """A text column's values at `positions` (ascending), a block at a time: Arrow's take of a chunked array first
    joins its blocks into one copy of the whole column."""
    values = pa.array(column.array)
    chunks = values.chunks if isinstance(values, pa.ChunkedArray) else [values]
    bounds = np.cumsum([0, *map(len, chunks)])
    cuts = np.searchsorted(positions, bounds)
    taken = [pc.take(chunk, pa.array(positions[cuts[i] : cuts[i + 1]] - bounds[i]), memory_pool=POOL)
             for i, chunk in enumerate(chunks) if cuts[i + 1] > cuts[i]]
    return _text(pa.chunked_array(taken, pa.large_string()))


class _Columns:
    """Values appended a record at a time, kept as compact columns of `kinds` (Arrow strings, numpy numbers) a
    block at a time; a text column stays in its blocks (a chunked array), never copied into one."""

    def __init__(self, kinds: dict[str, object]) -> None:
        self.kinds = kinds
        self.values: list[list] = [[] for _ in kinds]
        self.blocks: list[list] = [[] for _ in kinds]

    def add(self, values: Iterable) -> None:
        for column, value in zip(self.values, values):
            column.append(value)
        if len(self.values[0]) >= BLOCK:
            self._flush()

    def _flush(self) -> None:
        for i, kind in enumerate(self.kinds.values()):
            if self.values[i]:
                self.blocks[i].append(pa.array(self.values[i], pa.large_string(), memory_pool=POOL) if kind == "str"
                                      else np.asarray(self.values[i], dtype=kind))
                self.values[i] = []

    def frame(self) -> dict[str, pd.Series | np.ndarray]:
        """Each column: a pandas `str` column for text, a numpy array for numbers."""
        self._flush()
        out = {}
        for i, (name, kind) in enumerate(self.kinds.items()):
            blocks, self.blocks[i] = self.blocks[i], []
            out[name] = _text(pa.chunked_array(blocks, pa.large_string())) if kind == "str" else \
                np.concatenate(blocks) if blocks else np.zeros(0, kind)
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


@dataclass
class Listed:
    """A manifest's records gathered (gather), its repeated ids merged: what build needs, without the file's text."""
    cols: dict  # the parsed records' columns (_gather)
    codes: dict[str, _Codes]  # the coded columns' values: labels, split, reason, why
    spans: Spans  # row -> its record's lines
    unparsed: list[tuple]  # (row, "", "", skip reason, detail) of the records that did not parse
    labels: dict[int, list[str]]  # first record of a repeated id -> its merged labels
    also: dict[int, list[Span]]  # first record -> the spans of the further records merged into it
    more: dict[int, list[tuple[int, str]]]  # first record -> those records' (row, text)
    duplicates: list[tuple]  # further records skipped as duplicates, as unparsed
    later: np.ndarray  # positions of every further record of a repeated id, merged or skipped

    def label_text(self, at: int) -> str:
        return self.codes["labels"].names[self.cols["labels"][at]]

    def named(self, at: int) -> str:
        """The path record `at` names (kept only where it is not the path found)."""
        return self.cols["named"].iat[at] or self.cols["path"].iat[at]


def _repeat(fmt: Format, listed: Listed, at: int, seen: int, seen_labels: list[str], seen_span: Span) -> str | None:
    """Why record `at` of an id first listed at record `seen` is not merged into its video; None to merge it."""
    cols = listed.cols
    named, before = (os.path.basename(listed.named(i)) for i in (at, seen))
    video_id = cols["video_id"].iat[at]
    if fmt.names_files and named != before:
        return (f"{echo(named)} has the id {echo(video_id)} of {echo(before)} on {where(seen_span)} "
                f"(an id is the path without its extension); rename one to audit both")
    new = [label for label in listed.label_text(at).split(";") if label and label not in seen_labels]
    same = all(a == b or (math.isnan(a) and math.isnan(b))
               for a, b in ((float(cols[k][at]), float(cols[k][seen])) for k in ("start", "end")))
    if fmt.events or (new and same):  # another event, or the same clip under another label
        return None
    why = "already listed" if same else "already listed with another window"
    return f"{echo(video_id)} {why} on {where(seen_span)}"


def _gather(entries, fmt: Format, root: str, finder: Finder, allow_outside_root: bool):
    """Every parsed record's columns, the coded columns' values, every record's span, and the records that did not
    parse. A record's text is not kept (Manifest.records reads it again where a subset is written), and a skip's
    detail is kept as its reason's `why` code: the line numbers are put in front when the skipped list is made."""
    # named: the path the record names, "" where its file was found there (then `path` says it)
    kinds = {"row": np.int64, "video_id": "str", "id_hash": np.int64, "named": "str", "labels": np.int32,
             "start": float, "end": float,
             "split": np.int32, **{name: "str" if name == "youtube_id" else float for name in fmt.extras},
             "path": "str", "reason": np.int8, "why": np.int32}
    columns, spans, unparsed = _Columns(kinds), Spans(), []
    codes = {"labels": _Codes(), "split": _Codes(), "reason": _Codes(FOUND, *Skip), "why": _Codes("")}
    labels_code, split_code, reason_code, why_code = (codes[name].code for name in codes)
    inside = None if allow_outside_root else _Inside(os.path.join(root, ""))
    for row, (span, _, p) in enumerate(entries):
        spans.append(span)
        if not isinstance(p, Row):
            unparsed.append((row, "", "", *p))
            continue
        named = printable(named_path(p))
        path, reason, detail = _locate(p, named, root, finder, inside)
        labels = p.labels if ";;" not in p.labels and p.labels[:1] != ";" and p.labels[-1:] != ";" else \
            ";".join(label for label in p.labels.split(";") if label)  # no empty labels
        columns.add((row, p.video_id, hash(p.video_id), "" if path == named else named, labels_code(labels),
                     p.start, p.end, split_code(p.split), *p.extras, path, reason_code(reason),
                     why_code(printable(detail)) if reason else 0))
    return columns.frame(), codes, spans, unparsed


def gather(entries, fmt: Format, root: str, finder: Finder, *, allow_outside_root: bool, text_of) -> Listed:
    """A manifest's records, each file looked for, its repeated ids merged. `text_of(span)` is a record's text
    (only the further records merged into a video need it): the caller may drop the file's text afterwards."""
    cols, codes, spans, unparsed = _gather(entries, fmt, root, finder, allow_outside_root)
    listed = Listed(cols, codes, spans, unparsed, {}, {}, {}, [], np.zeros(0, np.int64))
    _merge(fmt, listed, text_of)
    return listed


def _repeated(id_hashes: np.ndarray) -> np.ndarray:
    """Positions of the records whose id's hash is another's: every id listed more than once, and the rare id
    whose hash merely collides (_merge compares the ids themselves). Sorting eight bytes a record costs less
    than a hash table of the ids (pandas' first makes each a Python string: 1.4 GB at ten million rows)."""
    ordered = np.sort(id_hashes)
    shared = ordered[1:][ordered[1:] == ordered[:-1]]
    return np.flatnonzero(np.isin(id_hashes, shared)) if len(shared) else np.zeros(0, np.int64)


def _merge(fmt: Format, listed: Listed, text_of) -> None:
    """The ids listed more than once, in Python: their merged labels, further records (spans and text), skipped
    duplicates and every further record's position, into `listed`."""
    cols = listed.cols
    ids, rows = cols["video_id"], cols["row"]
    repeated = _repeated(cols["id_hash"])
    labels, also, more, duplicates, later = listed.labels, listed.also, listed.more, listed.duplicates, []
    first: dict[str, int] = {}
    for at in repeated.tolist():
        video_id, row = ids.iat[at], int(rows[at])
        span = listed.spans[row]
        if video_id not in first:
            first[video_id] = at
            labels[at] = [label for label in listed.label_text(at).split(";") if label]
            continue
        seen = first[video_id]
        later.append(at)
        why = _repeat(fmt, listed, at, seen, labels[seen], listed.spans[int(rows[seen])])
        if why is None:
            labels[seen] += [name for name in listed.label_text(at).split(";") if name and name not in labels[seen]]
            also.setdefault(seen, []).append(span)
            more.setdefault(seen, []).append((row, text_of(span)))
            continue
        duplicates.append((row, video_id, listed.named(at), Skip.duplicate_id, f"{where(span)}: {why}"))
    listed.later = np.asarray(later, dtype=np.int64)


def _details(listed: Listed, lost: np.ndarray) -> pd.Series:
    """'line 3: why' of the records `lost`, or 'line 3 (also lines 7-8): why' where further records merged; made
    DETAILS_BLOCK records at a time, so that only the finished column is as long as the skipped list."""
    blocks = [_block_details(listed, lost[start : start + DETAILS_BLOCK])
              for start in range(0, len(lost), DETAILS_BLOCK)]
    return _text(pa.chunked_array(blocks, pa.large_string()))


def _block_details(listed: Listed, lost: np.ndarray) -> pa.Array:
    cols = listed.cols
    lines = listed.spans.lines(cols["row"][lost])
    details = pc.binary_join_element_wise(lines, listed.codes["why"].values_of(cols["why"][lost]),
                                          pa.scalar(": ", pa.large_string()), memory_pool=POOL)
    merged = np.flatnonzero(np.isin(lost, np.fromiter(listed.also, np.int64, len(listed.also))))
    if len(merged):
        mask = np.zeros(len(lost), bool)
        mask[merged] = True
        also = [f"{lines[i].as_py()} (also {', '.join(map(where, listed.also[int(lost[i])]))}): "
                f"{details[i].as_py()[len(lines[i].as_py()) + 2 :]}" for i in merged.tolist()]
        details = pc.replace_with_mask(details, pa.array(mask), pa.array(also, pa.large_string()), memory_pool=POOL)
    return details


def build(listed: Listed, fmt: Format, root: str):
    """(table, skipped, more_lines, labels named, found-files note, spans) of a gathered manifest."""
    cols, reasons = listed.cols, listed.codes["reason"]
    first = np.ones(len(cols["row"]), bool)
    first[listed.later] = False
    found = first & (cols["reason"] == reasons[FOUND])
    lost = np.flatnonzero(first & ~found)
    missing = cols["reason"][lost] == reasons[Skip.missing_file]
    n_found, n_missing = int(found.sum()), int(np.count_nonzero(missing))
    note = (f"{n_found:,} of {plural(n_found + n_missing, 'file')} found under {root}; "
            f"e.g. {echo(cols['named'].iat[lost[np.argmax(missing)]], PATH_ECHO)}" if n_missing else None)
    named = set(";".join(listed.codes["labels"]).split(";")) - {""}
    table = _table(cols, found, listed, fmt)
    rows = cols["row"]
    more = {int(rows[position]): records for position, records in listed.more.items() if found[position]}
    for name in ("labels", "start", "end", "split", "id_hash", *fmt.extras):
        del cols[name]  # only the table's: gone before the skipped list's details take their room
    every = len(lost) == len(first)  # every record a video whose file is not there: no copies

    def column(name: str):
        return cols[name].array if every else _take(cols[name], lost).array

    path, named_there = (pd.Series(column(name), copy=False) for name in ("path", "named"))
    own = (path != "").to_numpy()  # a bad name's own path; the named one for every other skip
    rest = pd.DataFrame(listed.unparsed + listed.duplicates, columns=["row", *SKIPPED_COLUMNS])
    failed = pd.DataFrame({**({"row": cols["row"][lost]} if len(rest) else {}), "video_id": column("video_id"),
                           "path": path.where(own, named_there).array if own.any() else named_there.array,
                           "reason": _text(reasons.values_of(cols["reason"][lost])).array,
                           "detail": _details(listed, lost).array}, copy=False)
    if len(rest):  # records that did not parse and duplicates, among the others in line order
        skipped = pd.concat([failed, rest.astype({c: "str" for c in SKIPPED_COLUMNS})], ignore_index=True)
        failed = skipped.sort_values("row", kind="stable").reset_index(drop=True)
    skipped = failed[list(SKIPPED_COLUMNS)]
    return table, skipped, more, frozenset(named), note, listed.spans


def categorical(codes: np.ndarray, names: Sequence[str]) -> pd.Series:
    """A repeated column (labels, split) as a pandas categorical: a byte or two a row and each value present once
    (as text, 19 and 14 bytes a row: ~330 MB at ten million rows), its categories sorted as text sorts, so that
    sorting and grouping by it order its values as before."""
    present = np.flatnonzero(np.bincount(codes, minlength=len(names)))
    values = [names[code] for code in present.tolist()]
    order = sorted(range(len(values)), key=values.__getitem__)
    renumber = np.zeros(len(names), np.int32)
    renumber[present[order]] = np.arange(len(order), dtype=np.int32)
    categories = pd.Index([values[i] for i in order], dtype="str")
    return pd.Series(pd.Categorical.from_codes(renumber[codes], dtype=pd.CategoricalDtype(categories)), copy=False)


def _table(cols: dict, found: np.ndarray, listed: Listed, fmt: Format) -> pd.DataFrame:
    """The videos whose file was found: COLUMNS (+ the format's extras), merged labels joined, labels and split
    as categoricals."""
    keep = np.flatnonzero(found)
    every = len(keep) == len(found)

    def column(name: str) -> pd.Series:
        values = cols[name]
        if name == "split":
            return categorical(values[keep], listed.codes[name].names)
        if isinstance(values, np.ndarray):
            return pd.Series(values if every else values[keep])
        return values.reset_index(drop=True) if every else _take(values, keep)

    labels, codes = cols["labels"][keep], listed.codes["labels"]
    positions = np.fromiter(listed.labels, np.int64, len(listed.labels))  # the repeated ids' first records
    at = np.searchsorted(keep, positions)
    kept = at < len(keep)
    kept[kept] = keep[at[kept]] == positions[kept]
    for position, row in zip(positions[kept].tolist(), at[kept].tolist()):  # their labels, merged over their records
        labels[row] = codes.code(";".join(listed.labels[position]))
    names = ("video_id", "path", "labels", "start", "end", "split", "row", *fmt.extras)
    return pd.DataFrame({name: categorical(labels, codes.names) if name == "labels" else column(name)
                         for name in names}, copy=False)
