"""A small corpus of broken and awkward media files, with the skip reason each one should get.

`write_bad_corpus(root)` writes a folder-of-category-folders dataset (`root/alpha/...`,
`root/beta/...`) and returns a table `path` (absolute str), `label`, `expected`; `expected` is
one of the fixed skip reasons below, or "" for a clip that must be audited.
`write_bad_manifest(root, corpus)` adds a generic `path,label` CSV over the same files plus the
manifest-level faults (missing file, duplicate id, malformed row).

Everything is tiny (10 fps, small frames, solid colours) so that the whole corpus is written in a
few seconds.
"""
from __future__ import annotations

import csv
import io
import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd
from conftest import write_clip
from oddmedia import mux_tone, sound_stream

REASONS = (
    "missing file", "unreadable file", "unreadable container", "no video stream",
    "no audio stream", "too short", "decode error",
)
FPS = 10
SIZE = (48, 64)  # (height, width)


def _write_special(path: Path, *, seconds: float, fps: int, size: tuple[int, int], pix_fmt: str,
                   options: dict[str, str] | None = None, gray: bool = False,
                   pts_ms: list[int] | None = None, audio: bool = True) -> Path:
    """A libx264 mp4 with a chosen pix_fmt / encoder options; solid colour frames (cheap to encode).

    `pts_ms` gives explicit frame times in ms (time_base 1/1000) for a variable frame rate file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = size
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.height, video.width = h, w
        video.pix_fmt = pix_fmt
        video.options = dict(options or {})
        if pts_ms is not None:
            video.codec_context.time_base = Fraction(1, 1000)
            video.time_base = Fraction(1, 1000)
        sound = sound_stream(out) if audio else None
        n = len(pts_ms) if pts_ms is not None else int(round(seconds * fps))
        for i in range(n):
            if gray:
                frame = av.VideoFrame.from_ndarray(np.full((h, w), (i * 7) % 256, np.uint8), format="gray")
            else:
                img = np.zeros((h, w, 3), np.uint8)
                img[..., 0] = (i * 7) % 256
                img[..., 2] = 255 - (i * 7) % 256
                frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if sound is not None:
            mux_tone(out, sound, seconds)
    return path


def _write_audio_only(path: Path, seconds: float = 10.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        mux_tone(out, sound_stream(out), seconds)
    return path


def _top_level_boxes(data: bytes) -> list[tuple[str, int, int]]:
    """(type, offset, size) of the top-level ISO-BMFF boxes of an mp4."""
    boxes, at = [], 0
    while at + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[at : at + 8])
        if size == 1:
            size = struct.unpack(">Q", data[at + 8 : at + 16])[0]
        elif size == 0:
            size = len(data) - at
        boxes.append((kind.decode("latin-1"), at, size))
        if size < 8:
            break
        at += size
    return boxes


def _truncate(path: Path, share: float = 0.4) -> Path:
    """Keep the first `share` of the bytes of a PyAV-written mp4.

    PyAV's mp4 muxer (no +faststart) writes `ftyp`, `free`, `mdat` and only then `moov`, at the END
    of the file; keeping the first 40% keeps `ftyp` and part of `mdat` but loses `moov`, so there is
    no sample table and the file cannot be opened at all (decord: "unreadable container", not a
    decode error). Checked here rather than assumed.
    """
    data = path.read_bytes()
    cut = int(len(data) * share)
    moov = [off for kind, off, _ in _top_level_boxes(data) if kind == "moov"]
    assert moov and moov[0] >= cut, f"{path}: moov at {moov}, cut at {cut}: truncation would keep it"
    path.write_bytes(data[:cut])
    return path


def _good(path: Path, seconds: float = 10.0, audio: bool = True) -> Path:
    return write_clip(path, seconds=seconds, fps=FPS, size=SIZE, audio=audio)


def write_bad_corpus(root: Path) -> pd.DataFrame:
    """Write the corpus under `root/<category>/<file>`; return `path`, `label`, `expected` per file.

    `root` should be a fresh folder (the symlinks and the chmod-000 file are not rewritten).
    Runs as root ignore permissions: `noperm.mp4` then expects "" instead of "unreadable file".
    The symlink loop is two directory entries (`loop.mp4` -> `loop2.mp4` -> `loop.mp4`), both
    listed, both "unreadable file".
    """
    root = Path(root)
    alpha, beta = root / "alpha", root / "beta"
    alpha.mkdir(parents=True, exist_ok=True)
    beta.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[Path, str]] = []

    def add(path: Path, expected: str) -> None:
        assert expected in REASONS or expected == "", expected
        rows.append((path, expected))

    # good clips, two per category
    for folder in (alpha, beta):
        for k in (1, 2):
            add(_good(folder / f"good{k}.mp4"), "")

    # --- alpha: container-level faults
    zero = alpha / "zero.mp4"
    zero.write_bytes(b"")
    add(zero, "unreadable container")

    # moov atom cut off (see _truncate): decord cannot open it at all
    add(_truncate(_good(alpha / "truncated.mp4")), "unreadable container")

    notes = alpha / "notes.mp4"
    notes.write_text("These are my notes, not a video.\nSecond line.\n", encoding="utf-8")
    add(notes, "unreadable container")

    add(_good(alpha / "silent.mp4", audio=False), "no audio stream")
    add(_write_audio_only(alpha / "audio_only.mp4"), "no video stream")
    add(_good(alpha / "one_second.mp4", seconds=1.0), "too short")

    # --- beta: awkward but auditable, plus file-system faults
    add(_write_special(beta / "uhd.mp4", seconds=3.0, fps=5, size=(2160, 3840), pix_fmt="yuv420p",
                       options={"preset": "ultrafast"}), "")
    add(_write_special(beta / "odd.mp4", seconds=10.0, fps=FPS, size=(77, 113), pix_fmt="yuv444p",
                       options={"preset": "ultrafast"}), "")  # 113 wide x 77 high
    # libx264 accepts pix_fmt gray: a true 4:0:0 stream (SPS chroma_format_idc 0, High profile);
    # FFmpeg's h264 decoder (PyAV, decord) still hands it out as yuv420p with neutral chroma.
    add(_write_special(beta / "gray.mp4", seconds=10.0, fps=FPS, size=SIZE, pix_fmt="gray",
                       options={"preset": "ultrafast"}, gray=True), "")
    # variable frame rate: frame gaps alternate 50 ms / 150 ms (mean 10 fps) over 10 s
    vfr_pts = [0]
    while vfr_pts[-1] < 9900:
        vfr_pts.append(vfr_pts[-1] + (50 if len(vfr_pts) % 2 else 150))
    vfr_pts = [p for p in vfr_pts if p < 10000]
    add(_write_special(beta / "vfr.mp4", seconds=10.0, fps=FPS, size=SIZE, pix_fmt="yuv444p",
                       options={"preset": "ultrafast"}, pts_ms=vfr_pts), "")
    add(_good(beta / "name with spaces é ü.mp4"), "")

    noperm = _good(beta / "noperm.mp4")
    noperm.chmod(0)
    add(noperm, "" if os.access(noperm, os.R_OK) else "unreadable file")

    loop, loop2 = beta / "loop.mp4", beta / "loop2.mp4"
    loop.symlink_to(loop2.name)
    loop2.symlink_to(loop.name)
    add(loop, "unreadable file")
    add(loop2, "unreadable file")

    return pd.DataFrame({
        "path": [str(p.absolute()) for p, _ in rows],
        "label": [p.parent.name for p, _ in rows],
        "expected": [e for _, e in rows],
    })


def write_bad_manifest(root: Path, corpus: pd.DataFrame) -> tuple[Path, pd.DataFrame]:
    """Write `root/manifest.csv` (generic `path,label`, paths relative to `root`) over `corpus`,
    plus three manifest-level faults, in this order after the corpus rows:

    - `alpha/ghost.mp4`: no such file -> "missing file";
    - `beta/malformed.mp4,beta,surplus`: three fields under a two-column header -> "malformed row"
      (placed before the duplicate, so a reader must go on past it);
    - a repeat of the first good corpus row -> "duplicate id".

    Returns the manifest path and `path`, `label`, `expected` per manifest row, the extra rows'
    paths as written in the file (for the malformed row, its first field).
    """
    root = Path(root)
    manifest = root / "manifest.csv"
    base = root.absolute()
    rel = [Path(p).relative_to(base).as_posix() for p in corpus["path"]]
    labels, expected = list(corpus["label"]), list(corpus["expected"])
    first_good = next(i for i, e in enumerate(expected) if e == "")

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["path", "label"])
    rows: list[tuple[str, str, str]] = []
    for r, lab, exp in zip(rel, labels, expected):
        writer.writerow([r, lab])
        rows.append((r, lab, exp))
    writer.writerow(["alpha/ghost.mp4", "alpha"])
    rows.append(("alpha/ghost.mp4", "alpha", "missing file"))
    buf.write("beta/malformed.mp4,beta,surplus\n")
    rows.append(("beta/malformed.mp4", "beta", "malformed row"))
    writer.writerow([rel[first_good], labels[first_good]])
    rows.append((rel[first_good], labels[first_good], "duplicate id"))
    manifest.write_text(buf.getvalue(), encoding="utf-8")

    table = pd.DataFrame(rows, columns=["path", "label", "expected"])
    return manifest, table
