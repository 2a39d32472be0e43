"""WebDataset shards as DATA: `.tar` files whose members `KEY.mp4`, `KEY.json`, `KEY.cls` are one sample.

Read with the standard library's tarfile rather than the `webdataset` package: webdataset streams each
tar from its start to its end, an iterable that a map-style DataLoader cannot index, while the audit's
decoding is map-style with crash-isolated workers (media/workers.py), which must decode one row again
alone after a crash. So each shard is read once for its headers (tarfile seeks past the members' data),
which gives every video member's byte offset and size; a worker then reads that one member by offset,
into memory. Nothing is unpacked to disk, and one shard's listing is held at a time.

A sample is the run of consecutive members sharing a key (the member name up to the first dot of its
base name), as WebDataset groups them. Where that rule bites, the user is told: members of a key that
come after another sample are a skipped row (WebDataset reads them as a second sample, never with the
first), a second video of one key is a skipped row, and a label member whose name has a second dot
(`a.b.cls`: key `a`, field `b.cls`) is a note. Its label is a field of its `.json` member (`label_field`), or else
its `.cls`, `.txt` or the `.json`'s `label`; a list of labels is a multi-label video. Its split is the
`.json`'s `split`, or else the shard name's first word when that names a split (`train-000001.tar`).
"""
from __future__ import annotations

import json
import math
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path

from avaudit.media.folders import printable
from avaudit.media.formats import MEDIA_EXTENSIONS, BadLabel, ManifestError, echo, one_label
from avaudit.vocab import Skip, plural

SHARD_SUFFIX = ".tar"
COMPRESSED = (".tar.gz", ".tgz", ".tar.zst", ".tar.xz", ".tar.bz2")
LABEL_MEMBERS = ("cls", "txt")  # read in this order, before the .json's `label`
SPLIT_WORDS = ("train", "val", "valid", "validate", "validation", "test")  # as training.split reads them
_BRACES = re.compile(r"\{[^{}]*(\.\.|,)[^{}]*\}")
_BLOCK = tarfile.BLOCKSIZE
LINK = -1  # the offset and size _members gives a hard or symbolic link member
SPECIAL = -2  # ... and a FIFO or device member: no bytes of its own either


def expand(data: str | os.PathLike) -> list[Path] | None:
    """The shard files DATA names (a `.tar`, a folder holding `.tar` files and no clips, or brace
    notation `train-{000000..000099}.tar`), in order; None when DATA is not shards."""
    text = os.fspath(data)
    if text.endswith(COMPRESSED):
        raise ManifestError(_compressed(text))
    if _BRACES.search(text):
        from braceexpand import UnbalancedBracesError, braceexpand

        try:
            paths = [Path(p) for p in braceexpand(text)]
        except UnbalancedBracesError:
            raise ManifestError(f"{text}: unbalanced braces; shards are named like train-{{000000..000099}}.tar") \
                from None
        return paths if all(p.suffix == SHARD_SUFFIX for p in paths) else None
    path = Path(text)
    if path.is_file():
        return [path] if path.suffix == SHARD_SUFFIX else None
    if path.is_dir():  # read_shards skips the compressed ones, naming each
        return stored_files(path, (SHARD_SUFFIX, *COMPRESSED), what="shards",
                            instead=f"name the shards alone ({path}/{{a,b}}.tar)")
    return None


def stored_files(path: Path, suffixes: tuple[str, ...], *, what: str, instead: str) -> list[Path] | None:
    """The files of folder `path` ending in `suffixes`, in name order, where it holds them and no clips; None
    where it holds none (or clips beside them); a ManifestError where it also holds folders of clips, which
    would be passed over without a word. `what` names the files, `instead` the other way to audit them."""
    try:
        names = sorted(entry.name for entry in os.scandir(path) if not entry.name.startswith("."))
    except OSError:
        return None
    files = [path / name for name in names if name.endswith(suffixes)]
    clips = [name for name in names if name.lower().endswith(MEDIA_EXTENSIONS)]
    if not files or clips:
        return None
    folder = next((name for name in names if holds_clips(path / name)), None)
    if folder is not None:
        raise ManifestError(f"{path}: holds both {what} ({files[0].name}) and folders of clips ({folder}/); "
                            f"move the {what} out to audit the clips, or {instead}")
    return files


def holds_clips(folder: Path) -> bool:
    """Whether `folder` is a folder with a clip in it: a category folder of a folder layout."""
    try:
        return folder.is_dir() and any(entry.name.lower().endswith(MEDIA_EXTENSIONS) for entry in os.scandir(folder))
    except OSError:
        return False


def _compressed(shard: str) -> str:
    return (f"{shard}: a compressed shard cannot be read member by member (by offset); decompress it (gunzip, or "
            f"zstd -d) and give the .tar")


def key_and_suffix(name: str) -> tuple[str, str]:
    """WebDataset's split of a member name: the key up to the first dot of the base name, and the rest."""
    folder, _, base = name.rpartition("/")
    stem, dot, suffix = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), suffix.lower() if dot else ""


def split_of(shard: Path) -> str:
    """The split a shard's name starts with (`train-000001.tar` -> train), or ''."""
    word = re.split(r"[-_.]", shard.name, maxsplit=1)[0].lower()
    return word if word in SPLIT_WORDS else ""


def _members(shard: Path, size: int, skipped: list) -> Iterator[tuple[str, int, int]]:
    """(name, data offset, data size) of each regular member (LINK, LINK for a link; SPECIAL, SPECIAL for a FIFO
    or device), one header at a time, up to a member the shard ends inside (the caller's skipped row); a shard
    that is damaged elsewhere is one skipped row naming the shard and the byte."""
    try:
        tar = tarfile.open(shard, mode="r:")
    except (tarfile.TarError, OSError) as err:
        why = "not a tar file" if isinstance(err, tarfile.TarError) else err.strerror or type(err).__name__
        skipped.append(("", str(shard), Skip.unreadable_file, f"{shard}: cannot read the shard ({why})"))
        return
    with tar:
        while True:
            try:
                info = tar.next()
            except (tarfile.TarError, OSError) as err:  # a header past the first that is not one
                skipped.append(("", str(shard), Skip.unreadable_file,
                                f"{shard}: unreadable after byte {tar.offset:,} ({err}); the members before it "
                                f"are read"))
                return
            tar.members.clear()  # the listing is ours to keep, or not: one member at a time
            if info is None:
                break
            if info.isfile():
                yield info.name, info.offset_data, info.size
            elif info.islnk() or info.issym():  # no bytes of its own: the sample's skipped row says so
                yield info.name, LINK, LINK
            elif not info.isdir():  # a FIFO or device: its sample vanished
                yield info.name, SPECIAL, SPECIAL
            if info.offset_data + info.size > size:  # truncated inside this member: nothing follows it
                return
        if size - tar.offset >= _BLOCK and _has_data(shard, tar.offset):
            skipped.append(("", str(shard), Skip.unreadable_file,
                            f"{shard}: truncated or damaged after byte {tar.offset:,} of {size:,}; the members "
                            f"before it are read"))


def _has_data(shard: Path, offset: int) -> bool:
    """Whether the block at `offset` (where tarfile stopped) holds anything but a tar's zero end blocks."""
    with open(shard, "rb") as handle:
        handle.seek(offset)
        return handle.read(_BLOCK).strip(b"\0") != b""


def read_member(shard: str, offset: int, size: int) -> bytes:
    """The `size` bytes of a member at `offset`, or OSError when the shard ends before them."""
    with open(shard, "rb") as handle:
        handle.seek(offset)
        data = handle.read(size)
    if len(data) < size:
        raise OSError(f"the shard ends {size - len(data):,} bytes before the member's end")
    return data


def _label(fields: dict[str, tuple[int, int]], shard: Path, label_field: str | None) -> tuple[str, dict]:
    """(';'-joined labels, the .json's content) of one sample's small members."""
    meta: dict = {}
    if "json" in fields:
        try:
            meta = json.loads(read_member(str(shard), *fields["json"]).decode("utf-8"))
        except RecursionError:  # json's parser recurses once per level of nesting
            raise ValueError("the .json member is nested too deep") from None
        if not isinstance(meta, dict):
            raise ValueError("the .json member is not an object")
    if label_field is None:
        for suffix in LABEL_MEMBERS:
            if suffix in fields:
                return one_label(read_member(str(shard), *fields[suffix]).decode("utf-8").strip()), meta
        label_field = "label"
    value = meta.get(label_field)
    values = [v for v in (value if isinstance(value, list) else [value]) if v is not None]
    for v in values:
        if not isinstance(v, (str, int, float)) or isinstance(v, bool) or v != v or v in (math.inf, -math.inf):
            raise BadLabel(f"the field {label_field!r} holds {echo(json.dumps(value))}, not a label (a string, a "
                           f"number or a list of them)")
    return ";".join(dict.fromkeys(one_label(str(v).strip()) for v in values if str(v).strip())), meta


def _sample(key: str, members: list[tuple[str, str, int, int]], shard: Path, label_field: str | None):
    """One sample's row (video_id, path, labels, split, member, offset, size), or its skipped row."""
    if not key.rpartition("/")[2]:  # members named .mp4, .cls: no id to give the sample
        return None, (printable(key), str(shard), Skip.malformed_row,
                      f"{shard}/{printable(members[0][0])}: the member's name has no key (the name before its first "
                      f"dot); rename it to audit it")
    named = [m for m in members if os.path.splitext(m[0])[1].lower() in MEDIA_EXTENSIONS]
    videos = [m for m in named if m[3] >= 0]
    if named and not videos:
        how = ("a link, not the video's bytes; pack the shard with tar --dereference --hard-dereference"
               if named[0][3] == LINK else "a FIFO or device, not the video's bytes; pack the video file itself")
        return None, (key, str(shard), Skip.unreadable_file, f"{shard}/{printable(named[0][0])}: {how}")
    if not videos:
        held = ", ".join(sorted({f".{suffix}" if suffix else f"{printable(name)}, without an extension"
                                 for name, suffix, _, _ in members}))
        return None, (key, str(shard), Skip.no_video_stream,
                      f"{shard}: the sample {key} has no video member (it holds {held})")
    name, _, offset, size = videos[0]
    if printable(name) != name:
        return None, (printable(key), str(shard), Skip.bad_name,
                      f"{shard}/{printable(name)}: the member name is not UTF-8; rename it to audit it")
    small = {suffix: (at, n) for _, suffix, at, n in members if 0 <= n < 1 << 20}  # labels, never media or links
    try:
        labels, meta = _label(small, shard, label_field)
    except BadLabel as err:
        return None, (key, str(shard), Skip.bad_label, f"{shard}/{name}: {err}")
    except (ValueError, UnicodeDecodeError, OSError) as err:
        return None, (key, str(shard), Skip.malformed_row, f"{shard}: the sample {key}'s label is unreadable ({err})")
    split = str(meta.get("split", "")) or split_of(shard)
    return (key, str(shard), labels, split, name, offset, size), None


def read_shards(shards: list[Path], *, label_field: str | None = None,
                notes: list[str] | None = None) -> tuple[list[tuple], list[tuple]]:
    """(rows, skipped rows) of every sample in `shards`, read header by header; a shard that is missing
    or unreadable is one skipped row, a sample without video or label is one skipped row, and the rest
    of the shard is read. Where WebDataset's grouping bites (members of a key apart, a second video of a
    key, a label member whose key has a dot), a skipped row or a line of `notes` says so."""
    rows: list[tuple] = []
    skipped: list[tuple] = []
    dotted: list = [0, None]  # label members whose key has a dot: how many, and the first (shard, key, name)
    for shard in shards:
        shard = Path(os.path.abspath(shard))
        if printable(str(shard)) != str(shard):
            skipped.append(("", printable(str(shard)), Skip.bad_name,
                            f"{printable(str(shard))}: the path is not UTF-8; rename it to audit it"))
            continue
        if shard.name.endswith(COMPRESSED):  # beside plain shards in a folder
            skipped.append(("", str(shard), Skip.unreadable_file, _compressed(str(shard))))
            continue
        try:
            size = shard.stat().st_size
        except OSError as err:
            reason = Skip.missing_file if isinstance(err, FileNotFoundError) else Skip.unreadable_file
            skipped.append(("", str(shard), reason, f"{shard}: cannot read the shard ({err.strerror})"))
            continue
        closed: dict[str, str] = {}  # key -> the first member of its sample
        for key, members in _samples(shard, size, skipped):
            if key in closed:
                skipped.append(_apart(key, members, closed[key], shard))
                continue
            closed[key] = members[0][0]
            _add(_sample(key, members, shard, label_field), rows, skipped)
            skipped += _second_videos(key, members, shard)
            for name, suffix, _, _ in members:
                if "." in suffix and suffix.rpartition(".")[2] in (*LABEL_MEMBERS, "json"):
                    dotted = [dotted[0] + 1, dotted[1] or (shard, key, name)]
    if dotted[0] and notes is not None:
        notes.append(_dotted_note(*dotted))
    if not rows and not skipped:
        raise ManifestError(f"{shards[0]}: no samples in the shards named")
    return rows, skipped


def _samples(shard: Path, size: int, skipped: list) -> Iterator[tuple[str, list[tuple[str, str, int, int]]]]:
    """(key, [(name, suffix, offset, size)]) of each run of consecutive members sharing a key; a member the
    shard ends inside loses its sample whole, one skipped row."""
    key, members = None, []
    for name, offset, n in _members(shard, size, skipped):
        member_key, suffix = key_and_suffix(name)
        if member_key != key and members:
            yield key, members
            members = []
        key = member_key
        if offset + n > size:  # the last member
            skipped.append((member_key, str(shard), Skip.unreadable_file,
                            f"{shard}/{name}: truncated (the shard ends {offset + n - size:,} bytes before the "
                            f"member's end)"))
            return
        members.append((name, suffix, offset, n))
    if members:
        yield key, members


def _apart(key: str, members: list[tuple[str, str, int, int]], first: str, shard: Path) -> tuple:
    """The skipped row of a run of members whose key a sample before it in the shard already had: WebDataset
    reads them as another sample of that key, never with that sample."""
    has_video = any(os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS for name, *_ in members)
    names = ", ".join(printable(name) for name, *_ in members[:3]) + (", ..." if len(members) > 3 else "")
    return (printable(key), str(shard), Skip.duplicate_id if has_video else Skip.malformed_row,
            f"{shard}/{printable(members[0][0])}: not next to the other members of the sample {printable(key)} "
            f"({printable(first)}, earlier in the shard), so WebDataset reads {names} as a sample of its own, not "
            f"audited; pack each sample's members together (tar --sort=name)")


def _second_videos(key: str, members: list[tuple[str, str, int, int]], shard: Path) -> list[tuple]:
    """A skipped row for each video member of a sample after its first, which is the one audited."""
    videos = [name for name, _, _, n in members
              if os.path.splitext(name)[1].lower() in MEDIA_EXTENSIONS and n >= 0]
    return [(printable(key), str(shard), Skip.duplicate_id,
             f"{shard}/{printable(name)}: a second video of the sample {printable(key)} (a sample is the members "
             f"whose names share the key, up to the first dot), so only {printable(videos[0])} is audited; give "
             f"each video its own key") for name in videos[1:]]


def _dotted_note(count: int, first: tuple[Path, str, str]) -> str:
    """The note on label members not read as labels because their key has a dot (`a.b.cls`: key a, field b.cls)."""
    shard, key, name = first
    field = key_and_suffix(name)[1]
    stem, _, extension = field.rpartition(".")
    return (f"{plural(count, 'label member')} not read as a label: a dot in the name before the extension (first: "
            f"{shard}/{printable(name)}: its sample is {printable(key)}, its field {field}, not .{extension}, as "
            f"WebDataset keys it); give each key no dot ({printable(name)} -> "
            f"{printable(key)}_{stem.replace('.', '_')}.{extension})")


def _add(result: tuple, rows: list, skipped: list) -> None:
    row, skip = result
    (rows.append(row) if skip is None else skipped.append(skip))


def copy_samples(kept: dict[str, set[int]], handle) -> None:
    """Every member of the kept samples (shard path -> byte offsets of their video members), shard by shard
    in their order, copied by offset into one new tar written to `handle`: no sample is held in memory
    whole. A sample is known by its video's offset, not its key, so a later sample of the same key (a
    duplicate id, never audited) is not copied with it."""
    with tarfile.open(fileobj=handle, mode="w", format=tarfile.PAX_FORMAT) as out:
        for shard, offsets in kept.items():
            size = os.stat(shard).st_size
            with open(shard, "rb") as source:
                for run in _runs(_members(Path(shard), size, [])):
                    if any(offset in offsets for _, offset, _ in run):
                        for name, offset, n in run:
                            if n >= 0 and offset + n <= size:
                                info = tarfile.TarInfo(name)
                                info.size, info.mode = n, 0o644
                                source.seek(offset)
                                out.addfile(info, source)


def _runs(members: Iterator[tuple[str, int, int]]) -> Iterator[list[tuple[str, int, int]]]:
    """The members grouped as WebDataset groups them into samples: runs of consecutive members sharing a key."""
    run: list[tuple[str, int, int]] = []
    for member in members:
        if run and key_and_suffix(member[0])[0] != key_and_suffix(run[0][0])[0]:
            yield run
            run = []
        run.append(member)
    if run:
        yield run
