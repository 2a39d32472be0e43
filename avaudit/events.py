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

import re
import warnings
from pathlib import Path

import pandas as pd

from avaudit.errors import UsageError
from avaudit.media.formats import EVENTS_HEADER as EVENT_COLUMNS

HEADER = "\t".join(EVENT_COLUMNS)


class EventsError(UsageError):
    """An events file cannot be used; the message names the file, the line and the reason, and never
    quotes the file (an events path can name any file: its first line may be a secret)."""


def read_events(path: Path) -> pd.DataFrame:
    """One row per (filename, label, onset, offset): columns filename, label, onset, offset (seconds)."""
    path = Path(path)
    if not path.is_file():
        raise EventsError(f"{path}: no such events file")
    try:
        with warnings.catch_warnings():  # pandas warns, and drops fields, when every row has too many
            warnings.simplefilter("error", pd.errors.ParserWarning)
            table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, skip_blank_lines=False,
                                index_col=False)
    except UnicodeDecodeError:
        raise EventsError(f"{path}: not an events file (not UTF-8 text)") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning) as err:
        line = re.search(r"\bline (\d+)", str(err))  # pandas names the line; its content is never quoted
        raise EventsError(f"{path}: not a tab-separated events file ("
                          + (f"line {line[1]}" if line else "a line")
                          + " has more fields than the header, or a quote that is never closed)") from None
    except pd.errors.EmptyDataError:
        raise EventsError(f"{path}: empty; an events file starts with the header {HEADER!r}") from None
    if tuple(c.strip() for c in table.columns) != EVENT_COLUMNS:
        raise EventsError(f"{path}: line 1 is not the header {HEADER!r} (tab-separated, as AVVP_eval_audio.csv "
                          f"and AVVP_eval_visual.csv have)")
    table.columns = list(EVENT_COLUMNS)
    table = table[(table != "").any(axis=1)]  # blank lines; the index still counts them
    times = table[["onset", "offset"]].apply(pd.to_numeric, errors="coerce")
    bad = times.isna().any(axis=1) | (table["filename"].str.strip() == "")
    if bad.any():
        line = int(table.index[bad.to_numpy().argmax()]) + 2  # the header is line 1
        raise EventsError(f"{path}: line {line} is not filename<TAB>onset<TAB>offset<TAB>labels with times in "
                          f"seconds")
    events = pd.DataFrame({"filename": table["filename"].str.strip(),
                           "label": table["event_labels"].str.split(","),
                           "onset": times.min(axis=1).astype(float), "offset": times.max(axis=1).astype(float)})
    events = events.explode("label", ignore_index=True)
    events["label"] = events["label"].str.strip()
    return events[events["label"] != ""].reset_index(drop=True)
