"""Planted confounders: still pictures, silent and inaudible sound, and duplicate clips, known by construction.

`make-samples --confounders` adds them to a planted set so that the quality signals (avaudit/quality/) can be
scored kind by kind. Every confounder is a new clip beside the set's own, in its label's folder:

- still, silent, inaudible: a freshly drawn clip of the source's category (so it duplicates nothing) whose
  picture is one frame held for the whole clip (half of them with a faint grain, as a camera or an encoder
  leaves on a still), whose sound is digital silence, or whose sound is turned down to -85..-65 dBFS;
- exact: a byte-identical copy of the source file;
- reencoded: the source re-encoded at another size, picture quality, sound bit rate and loudness;
- audio: the source's sound (at another AAC bit rate) under a fresh picture of another category;
- visual: the source's picture (at another x264 quality) over a fresh sound of another category.

Each duplicate has its own source, and half of them land in the other split than their source: the leaks.
The set gains `manifest.csv` (path,label,split for every clip) and `confounders_truth.csv`
(path,kind,source,split). This module never imports avaudit.planted: the planted set hands it the two
functions it needs, one that draws a fresh clip like a given one and one that renders a clip.
"""
from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from avaudit.errors import UsageError

from .media.encode import write_clip

FLAG_KINDS = ("still", "silent", "inaudible")
DUPLICATE_KINDS = ("exact", "reencoded", "audio", "visual")
KINDS = FLAG_KINDS + DUPLICATE_KINDS
PER_KIND = 20  # confounders of each kind that `make-samples --confounders` plants
TEST_SHARE = 0.25  # share of the set's own clips in the test split
STILL_GRAIN = 1.0  # std (of 255) of the grain on half the still pictures
INAUDIBLE_DBFS = (-85.0, -65.0)  # range of the turned-down sound's RMS level
REENCODE_SIZES = (48, 80, 96)  # px, the re-encoded copies' sides (the set's own are 64 by default)
REENCODE_CRF = (26, 30)  # x264 quality of the copies (the set's own: 20)
REENCODE_BIT_RATES = (32000, 48000)  # b/s of the copies' AAC sound (the set's own: 24000)


class Confounder(NamedTuple):
    path: str  # relative to the set's root
    label: str
    kind: str  # one of KINDS
    source: str  # path of the clip it duplicates, "" for a flag kind
    split: str  # train or test


class Plan(NamedTuple):
    """What add_confounders needs of a planted clip (avaudit.planted.ClipPlan has these fields)."""

    path: str
    label: str


def add_confounders(root: Path, plans: list, *, per_kind: int, seed: int,
                    redraw: Callable[[np.random.Generator, Plan], Plan],
                    render: Callable[[Plan], tuple[np.ndarray, np.ndarray]],
                    fps: int, sample_rate: int) -> list[Confounder]:
    """Write per_kind clips of every KINDS into the set at `root` (whose clips are `plans`) and the two tables.

    redraw(rng, plan) draws a new clip of plan's category; render(plan) gives its frames (T, H, W, 3) uint8
    and sound (N,) float32. Same seed, same confounders.
    """
    if per_kind * len(DUPLICATE_KINDS) > len(plans):
        raise UsageError(f"{per_kind} confounders of each kind need {per_kind * len(DUPLICATE_KINDS)} clips to "
                         f"duplicate, and the set has {len(plans)}")
    rng = np.random.default_rng([seed, 19])
    splits = {p.path: "test" if rng.random() < TEST_SHARE else "train" for p in plans}
    sources = [plans[i] for i in rng.permutation(len(plans))[: per_kind * len(DUPLICATE_KINDS)]]
    made = []
    for kind in FLAG_KINDS:
        for n in range(per_kind):
            fresh = redraw(rng, plans[rng.integers(len(plans))])
            made.append(_flag_clip(root, kind, n, fresh, rng=rng, render=render, fps=fps, sample_rate=sample_rate,
                                   split=splits[fresh.path]))
    for k, kind in enumerate(DUPLICATE_KINDS):
        for n, source in enumerate(sources[k * per_kind : (k + 1) * per_kind]):
            split = splits[source.path] if n % 2 else {"train": "test", "test": "train"}[splits[source.path]]
            other = redraw(rng, _other_category(rng, plans, source.label))
            made.append(_duplicate_clip(root, kind, n, source, other, rng=rng, render=render, fps=fps,
                                        sample_rate=sample_rate, split=split))
    _write_tables(root, plans, splits, made)
    return made


def _other_category(rng: np.random.Generator, plans: list, label: str):
    others = [p for p in plans if p.label != label]
    return others[rng.integers(len(others))]


def _name(plan, kind: str, n: int) -> str:
    return f"{plan.label}/{plan.label}_{kind}_{n:03d}.mp4"


def _flag_clip(root: Path, kind: str, n: int, fresh, *, rng, render, fps, sample_rate, split) -> Confounder:
    frames, audio = render(fresh)
    if kind == "still":
        frames = np.repeat(frames[len(frames) // 2 : len(frames) // 2 + 1], len(frames), axis=0)
        if n % 2:
            frames = np.clip(frames + rng.normal(0, STILL_GRAIN, frames.shape), 0, 255).astype(np.uint8)
    elif kind == "silent":
        audio = np.zeros_like(audio)
    else:
        level = rng.uniform(*INAUDIBLE_DBFS)
        audio = (audio / np.sqrt(np.mean(np.square(audio))) * 10 ** (level / 20)).astype(np.float32)
    path = _name(fresh, kind, n)
    write_clip(root / path, frames=frames, audio=audio, fps=fps, sample_rate=sample_rate)
    return Confounder(path, fresh.label, kind, "", split)


def _duplicate_clip(root: Path, kind: str, n: int, source, other, *, rng, render, fps, sample_rate,
                    split) -> Confounder:
    path = _name(source, kind, n)
    if kind == "exact":
        shutil.copyfile(root / source.path, root / path)
        return Confounder(path, source.label, kind, source.path, split)
    frames, audio = render(source)
    options = {}
    if kind == "reencoded":
        side = int(rng.choice(REENCODE_SIZES))
        options = {"size": (side, side), "crf": int(rng.choice(REENCODE_CRF)),
                   "audio_bit_rate": int(rng.choice(REENCODE_BIT_RATES))}
        audio = np.clip(audio * rng.uniform(0.7, 1.3), -1, 1).astype(np.float32)
    elif kind == "audio":  # the sound re-encoded at another bit rate, as a re-upload does
        frames = render(other)[0]
        options = {"audio_bit_rate": int(rng.choice(REENCODE_BIT_RATES))}
    else:
        audio = render(other)[1]
        options = {"crf": int(rng.choice(REENCODE_CRF))}
    write_clip(root / path, frames=frames, audio=audio, fps=fps, sample_rate=sample_rate, **options)
    return Confounder(path, source.label, kind, source.path, split)


def _write_tables(root: Path, plans: list, splits: dict[str, str], made: list[Confounder]) -> None:
    with open(root / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "label", "split"])
        writer.writerows([[p.path, p.label, splits[p.path]] for p in plans])
        writer.writerows([[c.path, c.label, c.split] for c in made])
    with open(root / "confounders_truth.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "kind", "source", "split"])
        writer.writerows([[c.path, c.kind, c.source, c.split] for c in made])
