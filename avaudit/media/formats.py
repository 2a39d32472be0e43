"""The manifest formats of the datasets avaudit reads, each as its authors release it.

A format turns one record of its manifest (a line; in a CSV, a quoted field may carry a record over
several lines) into a `Row`: the video's id, labels and split, and the places its media file may lie,
the release's own layout first. `detect` names a manifest's format from its first lines. Nothing here
touches the file system: manifests.py reads the files and looks for the media.
"""
from __future__ import annotations

import csv
import functools
import io
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from avaudit.errors import AvauditError

MEDIA_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v")  # earlier ones win a tie
KINETICS_HEADERS = (
    ("label", "youtube_id", "time_start", "time_end", "split", "is_cc"),
    ("label", "youtube_id", "time_start", "time_end", "split"),
    ("youtube_id", "time_start", "time_end", "split"),  # the older, label-less test file
)
AVE_HEADER = ("Category", "VideoID", "Quality", "StartTime", "EndTime")
LLP_HEADER = ("filename", "event_labels")
EVENTS_HEADER = ("filename", "onset", "offset", "event_labels")  # AVVP_eval_audio.csv, AVVP_eval_visual.csv
AUDIOSET_HEADER = ("YTID", "start_seconds", "end_seconds", "positive_labels")
CLASS_INDEX = "class_labels_indices.csv"  # AudioSet's names of its label ids: index,mid,display_name
CLASS_INDEX_HEADER = ("index", "mid", "display_name")
# Kinetics-700-2020 names its validation split `validate`; the release's extractor writes it to val/.
SPLIT_FOLDERS = {"validate": ("val", "validate")}
LLP_FOLDERS = (("LLP_dataset", "video"), ("video",))  # where AVVP's download script writes {youtube_id}.mp4
EXPECTED = (
    "expected a folder of clips (DATA/<label>/<clip>.mp4 or DATA/<clip>.mp4; mp4 mkv webm avi mov m4v), "
    "a Kinetics CSV (label,youtube_id,time_start,time_end,split[,is_cc]), a headerless VGGSound CSV "
    "(ytid,start_seconds,label,split) or list (ytid_start.mp4,label), AVE lines "
    "(Category&VideoID&Quality&StartTime&EndTime), an LLP/AVVP TSV (filename<TAB>event_labels, or "
    "filename<TAB>onset<TAB>offset<TAB>event_labels), an AudioSet segments CSV "
    "(# YTID, start_seconds, end_seconds, positive_labels) or a CSV with a path,label header"
)


class ManifestError(AvauditError, ValueError):
    """DATA cannot be used; the message names the file and the reason (never the file's content)."""


class BadLabel(ValueError):
    """A record's label that avaudit cannot hold as one label: it would read back as several, or
    spread over lines."""


def echo(text: str, limit: int = 200) -> str:
    """`text` short enough for an error line to repeat it: a label or path of any length is its
    start and end around an ellipsis, with its length."""
    if len(text) <= limit:
        return text
    return f"{text[: limit * 3 // 4]}...{text[-(limit // 4):]} ({len(text):,} characters)"


class Row(NamedTuple):
    """One parsed record."""
    video_id: str
    labels: str  # ';'-joined, in the order the record names them
    split: str
    places: tuple[tuple[str, str], ...]  # (folder, file stem) to look in, the release's own layout first
    start: float = math.nan  # the window inside the file, for files longer than the clip
    end: float = math.nan
    extras: tuple = ()  # the format's extra columns (Format.extras)
    exts: tuple[str, ...] = MEDIA_EXTENSIONS


@dataclass(frozen=True)
class Format:
    name: str
    split: Callable[[str], list[str]]  # one record -> fields
    n_fields: int
    parse: Callable[[list[str], str], Row]  # stripped fields, media root -> Row (ValueError if malformed)
    extras: tuple[str, ...] = ()
    quoted: bool = False  # CSV quoting: a quoted field may hold the separator or a line break
    skip_space: bool = False  # spaces after a separator are not part of the field (AudioSet's ", ")
    raw_fields: bool = False  # parse gets the fields as written, unstripped
    names_files: bool = False  # a record names its file, and the id drops the extension: files can share an id
    events: bool = False  # a record per event: an id's records are one video's events, never duplicates
    comment: str | None = None  # records starting with this are comments


def csv_fields(record: str, *, skip_space: bool = False) -> list[str]:
    if '"' not in record:  # the common case, without csv.reader's per-call cost
        return record.split(",")
    rows = list(csv.reader(io.StringIO(record, newline=""), strict=True, skipinitialspace=skip_space))
    if len(rows) > 1:  # a line break outside quotes: csv would read the rest as another record
        raise ValueError("a line break outside quotes")
    return rows[0] if rows else []


def number(value: str, name: str, kind: type = int) -> int | float:
    try:
        result = kind(value)
    except ValueError:
        result = math.nan
    if not math.isfinite(result):
        raise ValueError(f"{name} {echo(value)!r} is not {'an integer' if kind is int else 'a number'}") from None
    return result


def one_label(label: str) -> str:
    """`label` as one of avaudit's labels (BadLabel if not): they are ';'-joined, never span lines, and
    hold no NUL, which ends a C string (a file name, a plot's text)."""
    if ";" in label or "\n" in label or "\r" in label or "\x00" in label:
        what = ("';', which separates avaudit's labels" if ";" in label else "a NUL byte" if "\x00" in label
                else "a line break")
        raise BadLabel(f"the label {echo(label)!r} holds {what}")
    return label


def join_labels(text: str, sep: str) -> str:
    return ";".join(dict.fromkeys(one_label(s.strip()) for s in text.split(sep) if s.strip()))


@functools.cache
def folders(root: str, *layouts: tuple[str, ...]) -> tuple[str, ...]:
    """The folders of `layouts` (tuples of sub-folder names) under root, in order, once each."""
    return tuple(dict.fromkeys(os.path.join(root, *parts) for parts in layouts))


def _label_names(label: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys([label, label.replace(" ", "_")])) if label else ()


def _places(dirs: tuple[str, ...], stem: str) -> tuple[tuple[str, str], ...]:
    return tuple((d, stem) for d in dirs)


def _kinetics(cols: list[str]) -> Format:
    ix = {c: i for i, c in enumerate(cols)}

    def parse(f: list[str], root: str) -> Row:
        ytid, split = f[ix["youtube_id"]], f[ix["split"]]
        if not ytid:
            raise ValueError("empty youtube_id")
        label = one_label(f[ix["label"]]) if "label" in ix else ""
        start, end = number(f[ix["time_start"]], "time_start"), number(f[ix["time_end"]], "time_end")
        _window(start, end)  # the clip's window in its YouTube video: reversed, it is no window
        vid = f"{ytid}_{start:06d}_{end:06d}"
        splits, names = SPLIT_FOLDERS.get(split, (split,)) if split else (), _label_names(label)
        # torchvision's layout (split/label/clip) first, then label/, split/ and flat.
        dirs = folders(root, *((s, n) for s in splits for n in names), *((n,) for n in names),
                       *((s,) for s in splits), ())
        return Row(vid, label, split, _places(dirs, vid))

    return Format("kinetics", csv_fields, len(cols), parse, quoted=True)


def _vggsound(f: list[str], root: str) -> Row:
    ytid, start, label, split = f
    one_label(label)
    if not ytid:
        raise ValueError("empty youtube_id")
    vid = f"{ytid}_{number(start, 'start_seconds'):06d}"
    names = _label_names(label)
    dirs = folders(root, (), *((split, n) for n in names if split), *((n,) for n in names),
                   *([(split,)] if split else []))
    return Row(vid, label, split, _places(dirs, vid))


def _vggsound_list(f: list[str], root: str) -> Row:
    """The VGGSound authors' own lists (data/test.csv, data/AStest.csv): `{ytid}_{start:06d}.mp4,label`."""
    name, label = f
    stem, ext = os.path.splitext(name)
    one_label(label)
    if not stem or ext.lower() not in MEDIA_EXTENSIONS:
        raise ValueError(f"{echo(name)!r} is not a clip file name ({'/'.join(e[1:] for e in MEDIA_EXTENSIONS)})")
    dirs = folders(root, (), *((n,) for n in _label_names(label)))
    return Row(stem, label, "", _places(dirs, stem), exts=tuple(dict.fromkeys((ext, *MEDIA_EXTENSIONS))))


def _ave(f: list[str], root: str) -> Row:
    category, vid, _quality, start, end = f
    s, e = number(start, "StartTime"), number(end, "EndTime")
    one_label(category)
    if not vid or s < 0 or e < s:
        raise ValueError("empty VideoID" if not vid else f"StartTime {s} is negative" if s < 0
                         else f"EndTime {e} is before StartTime {s}")
    # The release ships the clips in an AVE/ folder beside Annotations.txt.
    dirs = folders(root, ("AVE",), (), *((n,) for n in _label_names(category)))
    return Row(vid, category, "", _places(dirs, vid), extras=(float(s), float(e)))


def _llp_id(name: str) -> str:
    """The YouTube id of an LLP file name `{youtube_id}_{start}_{end}` (ids may be under 11 characters,
    windows fractional: AP0061o0Nvk_101.8_111.8)."""
    parts = name.rsplit("_", 2)
    if len(parts) != 3 or not parts[0]:
        raise ValueError(f"filename {echo(name)!r} is not <youtube_id>_<start>_<end>")
    number(parts[1], "window start", float)  # checked, not kept: the id is what the name gives
    number(parts[2], "window end", float)
    return parts[0]


def _llp_places(name: str, root: str) -> tuple[tuple[str, str], ...]:
    """AVVP's download script writes the trimmed clip to video/ as its name's first 11 characters + .mp4
    (the YouTube id, for all but the shorter ids); a flat {filename}.mp4 is looked for last."""
    stems = tuple(dict.fromkeys([_llp_id(name), name[:11]]))
    return tuple((d, s) for d in folders(root, *LLP_FOLDERS) for s in stems) + ((root, name),)


def _llp(f: list[str], root: str) -> Row:
    name, labels = f
    return Row(name, join_labels(labels, ","), "", _llp_places(name, root), extras=(_llp_id(name),))


def _llp_events(f: list[str], root: str) -> Row:
    name, onset, offset, labels = f
    number(onset, "onset", float)  # checked, not kept: the events are read by avaudit/events.py
    number(offset, "offset", float)
    return _llp([name, labels], root)


def reversed_event(record: str) -> str | None:
    """Why a parsed AVVP events record's times are reversed, or None. Such a record stays an event of
    its video: the release has one (`8DF2PxdT5tE_390_400<TAB>9<TAB>0<TAB>Cheering`, a label its weak
    labels confirm), and the truth reader reads it as the interval between the two times (events.py)."""
    fields = record.split("\t")
    onset, offset = float(fields[1]), float(fields[2])
    return f"offset {offset:g} is before onset {onset:g}" if offset < onset else None


def audioset(names: Mapping[str, str], subfolder: str) -> Format:
    """AudioSet segment CSVs; label ids are named by the class index (`names`) where it has them."""

    def parse(f: list[str], root: str) -> Row:
        ytid, start, end, mids = f
        if not ytid:
            raise ValueError("empty YTID")
        s, e = number(start, "start_seconds", float), number(end, "end_seconds", float)
        labels = ";".join(dict.fromkeys(one_label(names.get(m, m)) for m in (m.strip() for m in mids.split(",")) if m))
        vid = f"{ytid}_{s:g}_{e:g}"
        # Downloaders name clips {ytid}_{start}_{end} as the CSV writes the times, or in whole seconds or
        # milliseconds (audiosetdl); PANNs' wav layout uses Y{ytid}.
        stems = dict.fromkeys([f"{ytid}_{start}_{end}", vid, f"{ytid}_{round(s * 1000)}_{round(e * 1000)}",
                               f"Y{ytid}", ytid])
        return Row(vid, labels, "", tuple((d, st) for d in folders(root, (), (subfolder,)) for st in stems))

    return Format("audioset", lambda record: csv_fields(record, skip_space=True), 4, parse, quoted=True,
                  skip_space=True, comment="#")


def _window(start: float, end: float) -> None:
    """A generic CSV's window inside its file: from 0 s on, and ending after it starts (ValueError if not)."""
    if start < 0:
        raise ValueError(f"start {start:g} is before the file starts")
    if end <= (0 if math.isnan(start) else start):
        raise ValueError(f"end {end:g} is not after start {0 if math.isnan(start) else start:g}")


def _generic(cols: list[str]) -> Format:
    ix = {c: i for i, c in enumerate(cols)}

    def parse(written: list[str], root: str) -> Row:
        f = [field.strip() for field in written]
        p = f[ix["path"]]
        if not p:
            raise ValueError("empty path")
        start, end = (number(f[ix[k]], k, float) if k in ix and f[ix[k]] else math.nan for k in ("start", "end"))
        _window(start, end)
        vid = os.path.splitext(p.replace("\\", "/"))[0]
        split = f[ix["split"]] if "split" in ix else ""
        # The path as written first (a file may be named "\tclip.mp4"), then without its spaces; " /abs.mp4"
        # is only the absolute path.
        paths = (written[ix["path"]], p) if os.path.isabs(written[ix["path"]]) == os.path.isabs(p) else (p,)
        places = dict.fromkeys(os.path.split(os.path.normpath(os.path.join(root, path))) for path in paths)
        return Row(vid, join_labels(f[ix["label"]], ";"), split, tuple(places), start, end, exts=("",))

    return Format("generic", csv_fields, len(cols), parse, quoted=True, raw_fields=True, names_files=True)


VGGSOUND = Format("vggsound", csv_fields, 4, _vggsound, quoted=True)
VGGSOUND_LIST = Format("vggsound-list", csv_fields, 2, _vggsound_list, quoted=True, names_files=True)
AVE = Format("ave", lambda record: record.split("&"), 5, _ave, ("event_start", "event_end"))
LLP = Format("llp", lambda record: record.split("\t"), 2, _llp, ("youtube_id",))
LLP_EVENTS = Format("llp-events", lambda record: record.split("\t"), 4, _llp_events, ("youtube_id",), events=True)
FORMATS = ("folder", "flat", "kinetics", "vggsound", "vggsound-list", "ave", "llp", "llp-events", "audioset",
           "generic")


def _plain(line: str, sep: str) -> tuple[str, ...]:
    return tuple(f.strip() for f in line.split(sep))


def detect(lines: list[str], data: Path) -> tuple[Format, int]:
    """The format of a manifest from its first non-blank line (`lines[0]`) and how many header lines it
    has. AudioSet's comment lines count as header lines. The error never quotes the file: DATA may be
    any file at all."""
    first = lines[0]
    if first.startswith("#") or _plain(first.lstrip("#"), ",") == AUDIOSET_HEADER:
        n = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
        n += n < len(lines) and _plain(lines[n], ",") == AUDIOSET_HEADER  # a copy whose header lost its '#'
        if any(_plain(line.lstrip("#"), ",") == AUDIOSET_HEADER for line in lines[:n]):
            return audioset({}, data.stem), n
    elif "\t" in first:
        if _plain(first, "\t") == LLP_HEADER:
            return LLP, 1
        if _plain(first, "\t") == EVENTS_HEADER:
            return LLP_EVENTS, 1
    else:
        amp = _plain(first, "&")
        if amp == AVE_HEADER:
            return AVE, 1
        if len(amp) == 5 and amp[3].isdigit() and amp[4].isdigit():
            return AVE, 0
        try:
            cols = [c.strip() for c in csv_fields(first)]
        except (csv.Error, ValueError):
            cols = []
        if tuple(cols) in KINETICS_HEADERS:
            return _kinetics(cols), 1
        if "path" in cols and "label" in cols:
            twice = next((c for c in cols if cols.count(c) > 1), None)
            if twice is not None:
                raise ManifestError(f"{data}: the header names the column {echo(twice)!r} twice; name each "
                                    f"column once")
            return _generic(cols), 1
        if len(cols) == 4 and cols[1].isdigit():
            return VGGSOUND, 0
        if len(cols) == 2 and os.path.splitext(cols[0])[1].lower() in MEDIA_EXTENSIONS:
            return VGGSOUND_LIST, 0
    raise ManifestError(f"{data}: not a manifest avaudit knows (its first line matches none of the layouts); "
                        f"{EXPECTED}")


def read_class_index(path: Path) -> dict[str, str]:
    """AudioSet's class_labels_indices.csv: label id (mid) -> display name. A file that is not one is
    refused naming the line that shows it."""
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        why = err.strerror if isinstance(err, OSError) else "not UTF-8 text"
        raise ManifestError(f"{path}: cannot read the class index ({why})") from None
    expected = f"a CSV with the header {','.join(CLASS_INDEX_HEADER)}, as AudioSet's {CLASS_INDEX}"
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    names, first = {}, 1  # first: where the record being read starts
    try:
        for row in reader:
            if reader.line_num == 1 and tuple(c.strip() for c in row) != CLASS_INDEX_HEADER:
                raise ManifestError(f"{path}: not a class index: line 1 is not its header ({expected})")
            if reader.line_num > 1 and row and len(row) != len(CLASS_INDEX_HEADER):
                raise ManifestError(f"{path}: not a class index: line {reader.line_num} has {len(row)} fields, "
                                    f"not {len(CLASS_INDEX_HEADER)} ({expected})")
            if reader.line_num > 1 and row:
                names[row[1].strip()] = row[2].strip()
            first = reader.line_num + 1
    except csv.Error:
        raise ManifestError(f"{path}: not a class index: line {first} is not CSV (a quote never closed, or text "
                            f"after a closing one) ({expected})") from None
    if reader.line_num == 0:
        raise ManifestError(f"{path}: not a class index: the file is empty ({expected})")
    return names
