"""People's labels that `bias --truth` and `missing-labels --truth` score against, read from their files.

- VGGSounder (ICCV 2025): one CSV, one row per (video, label), header
  `video_id,label,modality,background_music,static_image,voice_over`; modality `A` (heard only), `V`
  (seen only) or `AV`; ids `{ytid}_{start:06d}` as VGGSound's own list files name the clips, the ids
  avaudit gives VGGSound's rows. Both released variants read alike: `vggsounder+background-music.csv`
  (all 15,069 test videos) and `vggsounder.csv` (the 12,014 without background music). `vggsounder`
  names the first inside the installed `vggsounder` package, VGGSounder's own loader's default; the
  package is located, never imported (its code pulls in `datasets`).
- AVVP: the audio and the visual event files, in that order (`events`, `audits.truth`).
"""
from __future__ import annotations

import csv
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import pandas as pd

from avaudit.errors import UsageError

VGGSOUNDER_HEADER = ("video_id", "label", "modality", "background_music", "static_image", "voice_over")
PEOPLE_MODALITY = {"A": "audio", "V": "visual", "AV": "audiovisual"}
FLAG_VALUES = {"true": True, "false": False}
VGGSOUNDER_FILE = "vggsounder+background-music.csv"  # what `--truth vggsounder` reads
PACKAGE_NAME = "vggsounder"


class TruthError(UsageError):
    """A truth file cannot be used; the message names the file, the line and the reason, never its text."""


@dataclass(frozen=True)
class Truth:
    """People's labels: filename, label, key, truth (audio, visual, audiovisual) and the file's own columns."""
    table: pd.DataFrame
    about: dict = field(default_factory=dict)  # which files, for the run's summary
    files: list[str] = field(default_factory=list)  # as given, for the run's record
    window_fields: int = 2  # `_`-parts after the YouTube id in a filename (audits.truth.match_filenames)

    def score_bias(self, per_video: pd.DataFrame, categories: pd.DataFrame, *, into: dict) -> dict:
        """The bias audit's tables scored (audits.people.score_people): its bias_truth*.csv added to `into`,
        its summary returned."""
        from avaudit.audits.people import score_people

        tables, summary = score_people(per_video, categories, self.table, window_fields=self.window_fields)
        into.update(tables)
        return {**summary, **self.about}

    def score_candidates(self, videos: pd.DataFrame, candidates: pd.DataFrame, classes: list[str], *,
                         into: dict) -> dict:
        """missing-labels' candidates scored (audits.people.score_candidates): missing_labels_truth.csv added
        to `into`, the summary returned."""
        from avaudit.audits.people import score_candidates

        into["missing_labels_truth.csv"], summary = score_candidates(videos, candidates, self.table, classes,
                                                                     window_fields=self.window_fields)
        return {**summary, **self.about}


def vggsounder_file(option: str = "--truth") -> Path:
    """The CSV inside the installed vggsounder package, found without importing it."""
    spec = importlib.util.find_spec(PACKAGE_NAME)
    if spec is None or not spec.submodule_search_locations:
        raise TruthError(f"{option} vggsounder needs the vggsounder package: pip install 'avaudit[vggsounder]', "
                         "or give the CSV's path")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / VGGSOUNDER_FILE
    if not path.is_file():
        raise TruthError(f"{path}: not in the installed vggsounder package; give the CSV's path")
    return path


def _row_error(row: list[str], seen: dict, line: int) -> str | None:
    """Why a VGGSounder row cannot be used, or None."""
    if len(row) != len(VGGSOUNDER_HEADER):
        return f"has {len(row)} fields, not {len(VGGSOUNDER_HEADER)}"
    video_id, label, modality, *flags = (value.strip() for value in row)
    if not video_id or not label:
        return "has an empty video_id or label"
    if modality not in PEOPLE_MODALITY:
        return "has a modality other than A, V or AV"
    if any(flag.lower() not in FLAG_VALUES for flag in flags):
        return "has a flag other than True or False"
    first = seen.setdefault((video_id, label), line)
    return None if first == line else f"repeats the video_id and label of line {first}"


def read_vggsounder(path: Path) -> pd.DataFrame:
    """VGGSounder's CSV as a truth table: filename (the video_id), label, key, truth and the three flags."""
    from avaudit.audits.truth import normal_label

    path = Path(path)
    if not path.is_file():
        raise TruthError(f"{path}: no such truth file")
    rows, seen = [], {}
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = next(reader, [])
            if tuple(name.strip() for name in header) != VGGSOUNDER_HEADER:
                raise TruthError(f"{path}: line 1 is not VGGSounder's header {','.join(VGGSOUNDER_HEADER)}")
            for row in reader:
                if not row:
                    continue
                reason = _row_error(row, seen, reader.line_num)
                if reason:
                    raise TruthError(f"{path}: line {reader.line_num} {reason}")
                rows.append([value.strip() for value in row])
    except UnicodeDecodeError:
        raise TruthError(f"{path}: not UTF-8 text") from None
    except csv.Error:
        raise TruthError(f"{path}: line {reader.line_num} is not CSV") from None
    table = pd.DataFrame(rows, columns=list(VGGSOUNDER_HEADER), dtype=object)
    out = pd.DataFrame({"filename": table["video_id"], "label": table["label"], "key": normal_label(table["label"]),
                        "truth": table["modality"].map(PEOPLE_MODALITY)})
    for flag in VGGSOUNDER_HEADER[3:]:
        out[flag] = table[flag].str.lower().map(FLAG_VALUES).astype(bool)
    return out


def _first_line(path: Path) -> str:
    with open(path, "rb") as handle:
        return handle.readline().decode("utf-8", "replace").strip()


def read_truth(specs: Sequence) -> Truth:
    """`--truth`: one VGGSounder CSV (or `vggsounder`, the installed package's), or AVVP's audio and visual
    event files in that order."""
    from avaudit.media.formats import EVENTS_HEADER

    specs = [str(specs)] if isinstance(specs, (str, Path)) else [str(s) for s in specs]
    if len(specs) == 2:
        from avaudit.audits.truth import modality_truth
        from avaudit.events import read_events

        audio, visual = (read_events(Path(s)) for s in specs)
        return Truth(modality_truth(audio, visual), {"audio_events": specs[0], "visual_events": specs[1]}, specs)
    if len(specs) != 1:
        raise TruthError("--truth takes one VGGSounder CSV (or `vggsounder`), or AVVP's audio and visual event "
                         f"files, not {len(specs)} files")
    path = vggsounder_file() if specs[0] == PACKAGE_NAME else Path(specs[0])
    if path.is_file() and _first_line(path).split("\t") == list(EVENTS_HEADER):
        raise TruthError(f"{path}: an AVVP events file; give the audio and the visual file together "
                         "(--truth audio.csv --truth visual.csv)")
    mapping = {"A": "audio", "V": "visual", "AV": "audiovisual (agrees with group audiovisual or redundant)"}
    return Truth(read_vggsounder(path), {"people": str(path), "mapping": mapping}, specs, window_fields=1)
