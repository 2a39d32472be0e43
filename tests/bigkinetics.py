"""A Kinetics-400 validation CSV of the real size (19,906 rows), in the release's byte layout, made from
the 300-row head in tests/data/manifests/: every row gets an id of its own, and the rows spread over
400 labels, so that a run on it meets as many label folders as the real file."""
from __future__ import annotations

import csv
import io
from pathlib import Path

HEAD = Path(__file__).parent / "data" / "manifests" / "kinetics-400_val_head300.csv"
ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_"


def write_big_kinetics(path: Path, n_rows: int = 19_906, n_labels: int = 400) -> Path:
    rows = list(csv.reader(io.StringIO(HEAD.read_text(), newline="")))
    header, body = rows[0], rows[1:]
    out = io.StringIO()
    out.write(",".join(header) + "\n")
    for i in range(n_rows):
        label, ytid, start, end, split, is_cc = body[i % len(body)]
        label = f"{label} {i % n_labels}"  # 400 labels; like the release, names with spaces are quoted
        digits, k = "", i
        for _ in range(3):
            digits, k = ALPHABET[k % 64] + digits, k // 64
        out.write(f'"{label}",{ytid[:8]}{digits},{start},{end},{split},{is_cc}\n')
    Path(path).write_text(out.getvalue())
    return Path(path)
