"""Event-level annotations as AVVP (LLP) releases them: the audio events and the visual events of the same
videos, each in its own file (`AVVP_eval_audio.csv`, `AVVP_eval_visual.csv`).

Each file is tab-separated with the header `filename<TAB>onset<TAB>offset<TAB>event_labels`, one event a
row: `KSRjje7GH44_60_70<TAB>8<TAB>10<TAB>Blender` (onset and offset in seconds of the 10 s window; one
label a row in the release, though a comma-joined list is read as one event per label). The release has
rows whose offset equals their onset (the event is annotated, for no length of time) and one whose offset
comes before its onset (`8DF2PxdT5tE_390_400<TAB>9<TAB>0<TAB>Cheering`): that one is read as the interval
between the two times.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from avaudit.errors import UsageError
from avaudit.media.formats import EVENTS_HEADER as EVENT_COLUMNS


class EventsError(UsageError):
    """An events file cannot be used; the message names the file and the reason."""


def read_events(path: Path) -> pd.DataFrame:
    """One row per (filename, label, onset, offset): columns filename, label, onset, offset (seconds)."""
    path = Path(path)
    if not path.is_file():
        raise EventsError(f"{path}: no such events file")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, skip_blank_lines=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise EventsError(f"{path}: not a tab-separated events file ({err})") from None
    if tuple(c.strip() for c in table.columns) != EVENT_COLUMNS:
        raise EventsError(f"{path}: expected the header {chr(9).join(EVENT_COLUMNS)!r} (tab-separated, as "
                          f"AVVP_eval_audio.csv and AVVP_eval_visual.csv), got {chr(9).join(table.columns)!r}")
    table.columns = list(EVENT_COLUMNS)
    times = table[["onset", "offset"]].apply(pd.to_numeric, errors="coerce")
    bad = times.isna().any(axis=1) | (table["filename"].str.strip() == "")
    if bad.any():
        line = int(bad.to_numpy().argmax()) + 2  # the header is line 1
        raise EventsError(f"{path}: line {line} is not filename<TAB>onset<TAB>offset<TAB>labels with times in "
                          f"seconds: {chr(9).join(table.iloc[line - 2])!r}")
    events = pd.DataFrame({"filename": table["filename"].str.strip(),
                           "label": table["event_labels"].str.split(","),
                           "onset": times.min(axis=1).astype(float), "offset": times.max(axis=1).astype(float)})
    events = events.explode("label", ignore_index=True)
    events["label"] = events["label"].str.strip()
    return events[events["label"] != ""].reset_index(drop=True)
