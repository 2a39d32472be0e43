"""A planted audio-visual sample set: clips whose modality truth is known by construction.

The audits claim to tell which modality carries a label; a set where that is planted lets
training and tests check the claim. The fusion is concat(z^V, z^A) + a linear classifier, so
the audio-visual categories are a 2 x 2 design per event type (sounds {A, B} x sights {X, Y}):
sound alone or sight alone leaves two candidates, both together name one. Pure tones are
about eight mel bins apart (of 80 over 0-8 kHz); sights differ in hue first, shape second.
"""
from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from avaudit.errors import AvauditError, ParameterError, UsageError

from .media.encode import write_clip

SOUNDS = {  # name -> tone frequency (Hz), evenly spaced in mel between 200 Hz and 3.45 kHz
    "tone200": 200.0, "tone420": 420.0, "tone690": 690.0, "tone1030": 1030.0,
    "tone1450": 1450.0, "tone1970": 1970.0, "tone2620": 2620.0, "tone3450": 3450.0,
}
SIGHTS = {  # name -> (RGB colour, shape); every shape covers its own centre
    "red_square": ((220, 30, 30), "square"), "cyan_diamond": ((20, 210, 220), "diamond"),
    "orange_disc": ((245, 140, 0), "disc"), "blue_cross": ((30, 60, 230), "cross"),
    "yellow_triangle": ((235, 225, 20), "triangle"), "purple_square": ((130, 40, 200), "square"),
    "green_diamond": ((30, 190, 40), "diamond"), "magenta_disc": ((225, 30, 200), "disc"),
}
_SHAPES = {  # shape -> mask of pixels at offset (dx, dy) px from the centre, half-width r px
    "square": lambda dx, dy, r: (abs(dx) <= r) & (abs(dy) <= r),
    "disc": lambda dx, dy, r: dx**2 + dy**2 <= r**2,
    "diamond": lambda dx, dy, r: abs(dx) + abs(dy) <= r,
    "cross": lambda dx, dy, r: (np.minimum(abs(dx), abs(dy)) <= r / 3) & (np.maximum(abs(dx), abs(dy)) <= r),
    "triangle": lambda dx, dy, r: (abs(dy) <= r) & (abs(dx) <= (dy + r) / 2),
}
_DESIGN = {  # modality -> (name prefix, its sounds, its sights); "" means none planted
    "audio": ("audio", ("tone200", "tone1450"), ("",)),
    "visual": ("visual", ("",), ("red_square", "cyan_diamond")),
    "continuous": ("cont", ("tone420", "tone1970"), ("orange_disc", "blue_cross")),
    "instant": ("instant", ("tone690", "tone2620"), ("yellow_triangle", "purple_square")),
    "onset": ("onset", ("tone1030", "tone3450"), ("green_diamond", "magenta_disc")),
}
ONSET_FLASH = 0.2  # s an onset sight stays on, and its tone burst's decay window


class Category(NamedTuple):
    name: str
    modality: str  # audio, visual, continuous, instant or onset
    sound: str  # key of SOUNDS, "" for visual-only
    sight: str  # key of SIGHTS, "" for audio-only


CATEGORIES = tuple(
    Category("_".join(p for p in (prefix, s, v) if p), modality, s, v)
    for modality, (prefix, sounds, sights) in _DESIGN.items() for s in sounds for v in sights
)


class ClipPlan(NamedTuple):
    """Everything drawn at random for one clip, so that rendering is a pure function of it."""

    path: str  # relative to the set's root, forward slashes
    label: str
    modality: str
    sound: str  # planted sound, "" if none
    sight: str  # planted sight, "" if none
    missing: str  # a category also planted but not labelled, "" if none
    freq: float  # Hz, the tone after jitter
    amp: float  # peak amplitude of the planted sound (full scale 1)
    event_times: tuple[float, ...]  # s; empty: sound and sight are present all along
    event_dur: float  # s each event's sight shows and its sound takes to decay
    x: float  # px (column) of the object's centre; steady objects circle round it
    y: float  # px (row)
    radius: float  # px, half the object's width
    seed: int  # seeds the clip's background


class SampleSet(NamedTuple):
    root: Path
    truth: Path  # truth.csv: category,modality,group
    clips: Path  # clips.csv: one row per clip with what was planted where
    missing_truth: Path  # missing_truth.csv: path,label,missing_label
    n_clips: int

    def __str__(self) -> str:
        return (f"{self.n_clips:,} clips in {len(CATEGORIES)} category folders; the planted truth is in "
                f"{self.truth.name}, {self.missing_truth.name} and {self.clips.name}")


def background_video(rng: np.random.Generator, *, n_frames: int, size: int) -> np.ndarray:
    """Gray level plus slowly drifting gray blobs, the same law for every clip. (T, H, W) float."""
    n_blobs = 4
    start = rng.uniform(0, size, (n_blobs, 2))
    drift = rng.uniform(-size / 4, size / 4, (n_blobs, 2))  # px over the whole clip
    centre = start + np.linspace(0, 1, n_frames)[:, None, None] * drift  # (T, n_blobs, 2)
    sigma = size * rng.uniform(0.15, 0.3, n_blobs)[:, None]
    depth = rng.uniform(-40, 40, n_blobs)
    # a gaussian blob is separable: (T, n_blobs, size) profiles along x and y, then their outer product
    gx, gy = (np.exp(-((np.arange(size) - centre[..., i, None]) ** 2) / (2 * sigma**2)) for i in (0, 1))
    blobs = np.einsum("b,tby,tbx->tyx", depth, gy, gx)
    return rng.uniform(100, 150) + blobs


def background_audio(rng: np.random.Generator, *, n_samples: int) -> np.ndarray:
    """Low white noise, the same law for every clip. (N,) float."""
    return rng.uniform(0.006, 0.012) * rng.standard_normal(n_samples)


def steady_tone(t: np.ndarray, *, freq: float, amp: float, phase: float) -> np.ndarray:
    """A tone present all along. `t` (N,) s -> (N,)."""
    return amp * np.sin(2 * np.pi * freq * t + phase)


def tone_bursts(t: np.ndarray, *, onsets: tuple[float, ...], dur: float, freq: float, amp: float) -> np.ndarray:
    """Percussive tone bursts: 5 ms attack at each onset (s), then decay to 5 % over `dur` s. (N,)."""
    y = np.zeros_like(t)
    for t0 in onsets:
        on = (t >= t0) & (t < t0 + dur)
        s = t[on] - t0
        y[on] += amp * np.minimum(s / 0.005, 1) * np.exp(-3 * s / dur) * np.sin(2 * np.pi * freq * s)
    return y


def event_frames(n_frames: int, *, onsets: tuple[float, ...], dur: float, fps: int) -> np.ndarray:
    """Frames whose step [k, k + 1) / fps overlaps an event [onset, onset + dur) s. (T,) bool.

    Bounds are rounded to 1e-6 frame so that an event ending on a step boundary stays half-open.
    """
    start = np.round(np.asarray(onsets) * fps, 6)[:, None]
    end = np.round((np.asarray(onsets) + dur) * fps, 6)[:, None]
    k = np.arange(n_frames)
    return ((k < end) & (k + 1 > start)).any(axis=0)


def draw_object(frames: np.ndarray, *, sight: str, cx: np.ndarray, cy: np.ndarray, radius: float,
                visible: np.ndarray) -> None:
    """Paint `sight` in place onto `frames` (T, H, W, 3) at centres `cx`, `cy` (T,) px where `visible`."""
    colour, shape = SIGHTS[sight]
    idx = np.flatnonzero(visible)
    yy, xx = np.mgrid[: frames.shape[1], : frames.shape[2]].astype(float)
    mask = _SHAPES[shape](xx - cx[idx, None, None], yy - cy[idx, None, None], radius)
    shown = frames[idx]
    shown[mask] = colour
    frames[idx] = shown


def render_clip(plan: ClipPlan, *, size: int, seconds: float, fps: int, sample_rate: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Frames (T, size, size, 3) uint8 RGB and audio (N,) float32 in [-1, 1] of one planned clip."""
    rng = np.random.default_rng(plan.seed)
    frame_t = np.arange(round(seconds * fps)) / fps
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    frames = np.repeat(background_video(rng, n_frames=len(frame_t), size=size)[..., None], 3, axis=-1)
    audio = background_audio(rng, n_samples=len(t))
    if plan.event_times:
        if plan.sight:
            cx, cy = np.full_like(frame_t, plan.x), np.full_like(frame_t, plan.y)
            visible = event_frames(len(frame_t), onsets=plan.event_times, dur=plan.event_dur, fps=fps)
            draw_object(frames, sight=plan.sight, cx=cx, cy=cy, radius=plan.radius, visible=visible)
        if plan.sound:
            audio += tone_bursts(t, onsets=plan.event_times, dur=plan.event_dur, freq=plan.freq, amp=plan.amp)
    else:
        if plan.sight:
            # one slow turn round (x, y) at 0.4 radius, so the object always covers its centre
            angle = 2 * np.pi * frame_t / seconds + rng.uniform(0, 2 * np.pi)
            cx, cy = plan.x + 0.4 * plan.radius * np.cos(angle), plan.y + 0.4 * plan.radius * np.sin(angle)
            draw_object(frames, sight=plan.sight, cx=cx, cy=cy, radius=plan.radius, visible=np.ones(len(frame_t), bool))
        if plan.sound:
            audio += steady_tone(t, freq=plan.freq, amp=plan.amp, phase=rng.uniform(0, 2 * np.pi))
    return np.clip(frames, 0, 255).astype(np.uint8), np.clip(audio, -1, 1).astype(np.float32)


def plan_clip(rng: np.random.Generator, *, path: str, label: str, modality: str, sound: str, sight: str,
              missing: str, size: int, seconds: float) -> ClipPlan:
    """Draw one clip's jitter: tone +-3 %, amplitude, event times, object place and size."""
    freq = round(SOUNDS[sound] * rng.uniform(0.97, 1.03), 1) if sound else 0.0
    amp = round(rng.uniform(0.2, 0.3), 3)
    if modality == "instant":
        t0 = round(rng.uniform(0.1 * seconds, 0.9 * seconds), 3)
        events, dur = (t0,), round(min(rng.uniform(0.5, 1.0), seconds - t0), 3)
    elif modality == "onset":
        period = rng.uniform(0.5, 1.0)
        onsets = np.arange(rng.uniform(0, period), seconds - ONSET_FLASH, period)
        events, dur = tuple(round(float(o), 3) for o in onsets), ONSET_FLASH
    else:
        events, dur = (), 0.0
    radius = round(size * rng.uniform(0.11, 0.16), 2)
    margin = 1.4 * radius + 1  # room for the steady object's circling
    x, y = (round(float(v), 2) for v in rng.uniform(margin, size - 1 - margin, 2))
    return ClipPlan(path, label, modality, sound, sight, missing, freq, amp, events, dur, x, y, radius,
                    int(rng.integers(2**63)))


def co_occurring(n: int) -> dict[str, Category]:
    """The first `n` visual-only categories, each to the audio-only category (same position) whose
    sound every one of its clips carries, unlabelled: a label annotators left off a whole class."""
    visual, audio = ([c for c in CATEGORIES if c.modality == m] for m in ("visual", "audio"))
    return {cat.name: partner for cat, partner in list(zip(visual, audio))[:n]}


def plan_clips(rng: np.random.Generator, *, clips_per_category: int, two_event_per_category: int,
               size: int, seconds: float, co_occur: int = 0) -> list[ClipPlan]:
    """Plans of every clip: the plain ones, then per unimodal category its two-event clips,
    which also carry the other modality's category (paired round-robin) without its label.
    A co-occurring category's clips (co_occurring) all carry its partner, and it has no others."""
    partners = {"audio": [c for c in CATEGORIES if c.modality == "visual"],
                "visual": [c for c in CATEGORIES if c.modality == "audio"]}
    always = co_occurring(co_occur)
    plans = []
    for cat in CATEGORIES:
        contents = [(cat.sound, cat.sight, "")] * clips_per_category
        if cat.name in always:
            contents = [(always[cat.name].sound, cat.sight, always[cat.name].name)] * clips_per_category
        elif cat.modality in partners:
            i = [c for c in CATEGORIES if c.modality == cat.modality].index(cat)
            others = partners[cat.modality]
            for j in range(two_event_per_category):
                other = others[(i + j) % len(others)]
                contents.append((cat.sound or other.sound, cat.sight or other.sight, other.name))
        for n, (sound, sight, missing) in enumerate(contents):
            plans.append(plan_clip(rng, path=f"{cat.name}/{cat.name}_{n:03d}.mp4", label=cat.name,
                                   modality=cat.modality, sound=sound, sight=sight, missing=missing,
                                   size=size, seconds=seconds))
    return plans


def _make_clip(plan: ClipPlan, *, root: Path, size: int, seconds: float, fps: int, sample_rate: int) -> None:
    frames, audio = render_clip(plan, size=size, seconds=seconds, fps=fps, sample_rate=sample_rate)
    write_clip(root / plan.path, frames=frames, audio=audio, fps=fps, sample_rate=sample_rate)


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def _write_tables(root: Path, plans: list[ClipPlan], *, seed: int, command: str) -> None:
    groups = {"audio": "audio", "visual": "visual"}
    _write_csv(root / "truth.csv", ["category", "modality", "group"],
               [[c.name, c.modality, groups.get(c.modality, "audiovisual")] for c in CATEGORIES])
    _write_csv(root / "missing_truth.csv", ["path", "label", "missing_label"],
               [[p.path, p.label, p.missing] for p in plans if p.missing])
    _write_csv(root / "clips.csv",
               ["path", "label", "modality", "sound", "sight", "event_times", "object_x", "object_y", "object_size"],
               [[p.path, p.label, p.modality, p.sound, p.sight, ";".join(f"{t:.3f}" for t in p.event_times),
                 *((p.x, p.y, round(2 * p.radius, 2)) if p.sight else ("", "", ""))] for p in plans])
    (root / "README.md").write_text(
        f"Planted audio-visual sample set written by avaudit.planted.make_samples with seed {seed}; "
        "truth.csv, clips.csv and missing_truth.csv say what was planted where.\n"
        f"Remake it with `{command}`.\n")


def make_samples(out: Path, *, seed: int = 0, clips_per_category: int = 20, two_event_per_category: int = 2,
                 size: int = 64, seconds: float = 10.0, fps: int = 10, sample_rate: int = 16000,
                 co_occur: int = 0, on_event: Callable[[str, dict], None] | None = None,
                 confounders: int = 0) -> SampleSet:
    """Write the planted set to `out` (new or empty folder): `<category>/<category>_<nnn>.mp4` plus
    truth.csv, missing_truth.csv, clips.csv and README.md. Same seed, same truth files. `co_occur`
    (0-2) visual-only categories carry an audio-only category's sound in every clip, unlabelled
    (co_occurring). `on_event` hears ("start", {"total": clips}) and then ("advance", {"n": 1}) per clip.
    `confounders` > 0 adds that many clips of each avaudit.planted_confounders.KINDS, with manifest.csv
    and confounders_truth.csv.

    The set is built in a hidden folder beside `out` and renamed into place, so an interrupted
    run never leaves a half set at `out`; a location that cannot be written is an AvauditError.
    """
    out = Path(out)
    if clips_per_category < 1 or two_event_per_category < 0:
        raise UsageError(f"clips_per_category must be 1 or more and two_event_per_category 0 or more, not "
                         f"{clips_per_category} and {two_event_per_category}")
    if size < 16 or size % 2 or seconds <= 0 or fps < 1 or sample_rate < 8000:
        raise UsageError("need an even size >= 16 px, seconds > 0, fps >= 1 and sample_rate >= 8000 Hz")
    most = len(co_occurring(len(CATEGORIES)))
    if not 0 <= co_occur <= most:
        raise ParameterError("co_occur", f"must be 0 to {most} (there are {most} visual-only categories), "
                                         f"not {co_occur}")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists and is not an empty folder; give a new or empty one")
    plans = plan_clips(np.random.default_rng(seed), clips_per_category=clips_per_category,
                       two_event_per_category=two_event_per_category, size=size, seconds=seconds,
                       co_occur=co_occur)
    command = f"avaudit make-samples OUT --seed {seed}" + (f" --co-occur {co_occur}" if co_occur else "") \
        + (" --confounders" if confounders else "")
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
    except OSError as e:
        raise AvauditError(f"cannot write the sample set to {out}: {e.strerror or e}") from None
    try:
        _write_set(tmp, plans, size=size, seconds=seconds, fps=fps, sample_rate=sample_rate, seed=seed,
                   command=command, on_event=on_event or (lambda kind, info: None))
        if confounders:
            _plant_confounders(tmp, plans, per_kind=confounders, size=size, seconds=seconds, fps=fps,
                               sample_rate=sample_rate, seed=seed)
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError):
            raise AvauditError(f"cannot write the sample set to {out}: {e.strerror or e}") from None
        raise
    return SampleSet(out, out / "truth.csv", out / "clips.csv", out / "missing_truth.csv", len(plans))


def _write_set(root: Path, plans: list[ClipPlan], *, size: int, seconds: float, fps: int, sample_rate: int,
               seed: int, command: str, on_event: Callable[[str, dict], None]) -> None:
    for cat in CATEGORIES:
        (root / cat.name).mkdir()
    on_event("start", {"total": len(plans)})
    for plan in plans:
        _make_clip(plan, root=root, size=size, seconds=seconds, fps=fps, sample_rate=sample_rate)
        on_event("advance", {"n": 1})
    _write_tables(root, plans, seed=seed, command=command)


def _plant_confounders(root: Path, plans: list[ClipPlan], *, per_kind: int, size: int, seconds: float, fps: int,
                       sample_rate: int, seed: int) -> None:
    from avaudit.planted_confounders import add_confounders

    def redraw(rng: np.random.Generator, plan: ClipPlan) -> ClipPlan:
        return plan_clip(rng, path=plan.path, label=plan.label, modality=plan.modality, sound=plan.sound,
                         sight=plan.sight, missing="", size=size, seconds=seconds)

    add_confounders(root, plans, per_kind=per_kind, seed=seed, redraw=redraw, fps=fps, sample_rate=sample_rate,
                    render=lambda plan: render_clip(plan, size=size, seconds=seconds, fps=fps, sample_rate=sample_rate))
