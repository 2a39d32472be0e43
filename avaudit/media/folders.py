"""Media on disk: directory listings, each read once, and the clips of a folder given as DATA.

A folder DATA is `DATA/<label>/<clip>` (category folders) or `DATA/<clip>`. Every media file found
comes out somewhere: a clip, a skipped clip with its reason, or, for files in folders below the
category folders, a note with their count and an example.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from avaudit.media.formats import MEDIA_EXTENSIONS, BadLabel, ManifestError, echo, one_label
from avaudit.vocab import Skip, plural

PATH_ECHO = 1000  # paths a detail repeats whole (a real one is shorter); a longer text is shortened


def _is_dir(entry: os.DirEntry) -> bool:
    """A symlink loop raises here; it is a (broken) file entry, and must not end the listing."""
    try:
        return entry.is_dir()
    except OSError:
        return False


class Finder:
    """Directory listings, each read once with os.scandir."""

    def __init__(self) -> None:
        self._listings: dict[str, tuple[frozenset[str], list[str], str]] = {}

    def scan(self, folder: str) -> tuple[frozenset[str], list[str], str]:
        """(file names, sorted sub-folder names, why it could not be listed) of `folder`; a folder that
        does not exist is empty, one that exists but refuses listing says why."""
        if folder not in self._listings:
            files, dirs, error = set(), [], ""
            try:
                with os.scandir(folder) as entries:
                    for e in entries:
                        (dirs.append if _is_dir(e) else files.add)(e.name)
            except (FileNotFoundError, NotADirectoryError, ValueError):  # ValueError: a NUL in the name
                pass
            except OSError as err:
                error = err.strerror or type(err).__name__
            self._listings[folder] = (frozenset(files), sorted(dirs), error)
        return self._listings[folder]

    def find(self, places: Sequence[tuple[str, str]], exts: Sequence[str]) -> tuple[str | None, str]:
        """(the first file of places x exts, ''), or (None, why a folder to look in could not be listed)."""
        refused = ""
        for folder, stem in places:
            files, _, error = self.scan(folder)
            if error:
                refused = refused or f"cannot list {echo(folder, PATH_ECHO)} ({error})"
            for ext in exts:
                if stem + ext in files:
                    return os.path.join(folder, stem + ext), ""
        return None, refused


def printable(text: str) -> str:
    """`text` as UTF-8 can hold it: the undecodable bytes of a file name as \\x escapes."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_media(name: str) -> bool:
    return name[name.rfind("."):].lower() in MEDIA_EXTENSIONS


@dataclass
class FolderClips:
    """What a folder DATA holds: its clips (id, path, label), the media files that are not clips,
    and the notes for the user."""
    ids: list[str] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    skipped: list[tuple] = field(default_factory=list)  # SKIPPED_COLUMNS
    categories: bool = False  # a category folder holds media (or could not be listed)
    notes: list[str] = field(default_factory=list)


def _below(folder: str, subfolders: list[str]) -> tuple[int, str]:
    """(how many media files lie in `subfolders` of `folder` at any depth, the first of them); a folder
    named like one (`x.mp4/`) is looked in, not counted; hidden folders are not looked in, symlinked
    ones not followed."""
    count, example = 0, ""
    for sub in subfolders:
        if sub.startswith("."):
            continue
        for top, dirs, files in os.walk(os.path.join(folder, sub)):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            found = sorted(name for name in files if is_media(name))
            count, example = count + len(found), example or (os.path.join(top, found[0]) if found else "")
    return count, example


def _label_problem(label: str) -> str:
    """Why the clips of the category folder `label` cannot carry its name as their label ('' if they can)."""
    try:
        one_label(label)
    except BadLabel as e:
        return f"{e}; rename the folder to audit its clips"
    return ""


def _add_clips(clips: FolderClips, folder: str, label: str, names: frozenset[str]) -> None:
    bad_label = _label_problem(label)
    prefix = f"{label}/" if label else ""
    for name in sorted(filter(is_media, names)):
        vid, path = prefix + name[: name.rfind(".")], os.path.join(folder, name)
        if printable(path) != path:
            clips.skipped.append((vid, path, Skip.bad_name,
                                  f"{path}: the file name is not UTF-8; rename it to audit it"))
        elif name.startswith("._"):
            clips.skipped.append((vid, path, Skip.unreadable_container,
                                  f"{path}: a macOS resource fork (AppleDouble ._ file), not a video"))
        elif bad_label:
            clips.skipped.append((vid, path, Skip.bad_label, f"{path}: {bad_label}"))
        else:
            clips.ids.append(vid)
            clips.paths.append(path)
            clips.labels.append(label)


def list_clips(data: Path) -> FolderClips:
    """The clips of category folders (or one flat folder). Loose clips beside the category folders are
    unlabelled, hidden clips are clips; macOS's `._` resource forks, names that are not UTF-8, clips
    of a folder whose name cannot be one label and category folders that cannot be listed are skipped.
    Hidden folders (.git, .cache) are not categories."""
    finder = Finder()
    files, dirs, error = finder.scan(str(data))
    if error:
        raise ManifestError(f"{data}: cannot list the folder ({error})")
    clips, deeper, example = FolderClips(), 0, ""
    for label in ["", *(d for d in dirs if not d.startswith("."))]:
        folder = os.path.join(data, label) if label else str(data)
        names, subfolders, error = finder.scan(folder) if label else (files, [], "")
        clips.categories = clips.categories or bool(label and (error or any(map(is_media, names))))
        if error:
            clips.skipped.append((f"{label}/", folder, Skip.unreadable_file,
                                  f"{folder}: cannot list the category folder ({error}); its clips are not counted"))
            continue
        _add_clips(clips, folder, label, names)
        n, first = _below(folder, subfolders)
        deeper, example = deeper + n, example or first
    if deeper:
        clips.notes.append(f"{plural(deeper, 'media file')} in folders below the category folders not read, e.g. "
                           f"{printable(example)}: avaudit reads DATA/<label>/<clip>; for a split layout "
                           f"(DATA/<split>/<label>/<clip>), give DATA/<split>")
    return clips
