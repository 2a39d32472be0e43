"""The window a clip is read from: when its T frames are sampled and which steps show a frame.

Shared by both decoders (media/decode.py for decord, media/pyav.py); times are seconds on the
file's timeline.
"""
from __future__ import annotations

import numpy as np


def frame_times(*, steps: int, seconds: float, start: float = 0.0) -> np.ndarray:
    """Sampling times (s) of the T frames: one at the start of every step. Shape (T,)."""
    return start + np.arange(steps) * (seconds / max(steps, 1))  # steps 0: a length check, no frames


def shown_steps(times: np.ndarray, *, first: float, stop: float) -> np.ndarray:
    """(T,) bool: the steps that show a frame. A step up to half a step before the first frame
    shows it (streams start a few ms apart); earlier steps, and those from `stop` on, are black."""
    slack = 0.5 * (times[1] - times[0]) if len(times) > 1 else 0.0
    return (times >= first - slack) & (times < stop - 1e-6)


def is_padded(duration, *, seconds: float, steps: int):
    """The window ran past the content (black and silent after it): `duration` (s, a float or an array) is
    short of `seconds` by over half a step. Half a step of slack: container end times are rounded and AAC
    adds priming samples."""
    return duration < seconds - 0.5 * seconds / steps
