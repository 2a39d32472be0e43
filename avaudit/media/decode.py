"""Decoding one clip: the T frames and the mono waveform of a 10-s window, both from decord.

decord is imported inside the functions so that `avaudit --help` stays fast.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from avaudit.errors import AvauditError
from avaudit.vocab import Skip

# decord silently repeats frames it could not decode unless told otherwise; more than this
# share of recovered frames makes the file a decode error instead of an audit of garbage.
FAULT_TOLERANCE = 0.05


class MediaError(AvauditError):
    """A clip that cannot be audited; `reason` is one of a fixed list, `str()` the detail."""

    reason = Skip.decode_error


class MissingFile(MediaError):
    reason = Skip.missing_file


class NoVideoStream(MediaError):
    reason = Skip.no_video_stream


class NoAudioStream(MediaError):
    reason = Skip.no_audio_stream


class DecodeError(MediaError):
    reason = Skip.decode_error


class UnreadableFile(MediaError):
    """The file system refuses it: no permission, a symlink loop, an I/O error."""
    reason = Skip.unreadable_file


class UnreadableContainer(MediaError):
    """The bytes are no media container decord can open: empty, truncated, not a video at all."""
    reason = Skip.unreadable_container


class TooShort(MediaError):
    reason = Skip.too_short


class TooLong(MediaError):
    """Guards memory: decord's audio reader decodes the whole file's sound at once."""
    reason = Skip.too_long


class DecodeTimeout(MediaError):
    reason = Skip.decode_timeout


# The fixed list of reasons a video can be skipped for (manifest rows add their own three).
REASONS = tuple(cls.reason for cls in (MissingFile, UnreadableFile, UnreadableContainer, NoVideoStream,
                                       NoAudioStream, TooShort, TooLong, DecodeError, DecodeTimeout))
MIN_SECONDS = 2.0  # shorter clips are skipped: under a fifth of the window is too little to judge
MAX_SECONDS = 3600.0  # longer files are skipped before their sound is decoded (memory guard)


class Clip(NamedTuple):
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, T frames at `steps / seconds` fps
    audio: np.ndarray  # (N,) float32 mono waveform at the model's sample rate
    padded: bool  # the window ran past the end of the file; the rest is black / silent
    duration: float  # seconds of real content inside the window


def frame_times(*, steps: int, seconds: float, start: float = 0.0) -> np.ndarray:
    """Sampling times (s) of the T frames: one at the start of every step. Shape (T,)."""
    return start + np.arange(steps) * (seconds / steps)


def _centre_crop(frames: np.ndarray, side: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return frames[:, top : top + side, left : left + side]


def _open_video(path: str | Path, *, resize: tuple[int, int] | None = None):
    """A decord VideoReader (resizing inside the decoder when `resize` is given), or the MediaError
    that says why the file cannot be one."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # FFmpeg's own log lines never reach the terminal
    size = {} if resize is None else {"width": resize[1], "height": resize[0]}
    try:
        reader = decord.VideoReader(str(path), fault_tol=FAULT_TOLERANCE, **size)
    except (decord.DECORDError, RuntimeError) as err:  # decord raises RuntimeError when it cannot open
        if "stream" in str(err).lower():
            raise NoVideoStream(f"{path}: no video stream") from None
        raise UnreadableContainer(f"{path}: cannot open ({_short(err)})") from None
    if len(reader) == 0:
        raise NoVideoStream(f"{path}: video stream has no frames")
    return reader


def read_frames(
    path: str | Path, *, steps: int, seconds: float, resize: tuple[int, int], crop: int,
    start: float = 0.0, end: float | None = None, min_seconds: float = 0.0, max_seconds: float = math.inf,
) -> tuple[np.ndarray, float]:
    """(T, crop, crop, 3) uint8 frames of the window and the seconds of it the file covers.

    Frames are resized inside the decoder (cheap) and only the T needed ones are decoded.
    Steps past the end of the file (or past `end`) are black. A file with more than
    `max_seconds` of video, or less than `min_seconds` from `start`, is refused before any
    frame is decoded.
    """
    import decord

    reader = _open_video(path, resize=resize)
    n_frames = len(reader)
    starts = reader.get_frame_timestamp(np.arange(n_frames))[:, 0]
    file_end = float(reader.get_frame_timestamp([n_frames - 1])[0, 1])
    if file_end > max_seconds:
        raise TooLong(f"{path}: {file_end:.0f} s of video, over the {max_seconds:.0f} s limit")
    if file_end - start < min_seconds:
        raise TooShort(f"{path}: {max(0.0, file_end - start):.2f} s of video from {start:g} s, "
                       f"under the {min_seconds:g} s minimum")
    stop = file_end if end is None or math.isnan(end) else min(file_end, end)
    times = frame_times(steps=steps, seconds=seconds, start=start)
    valid = times < stop - 1e-6
    # Clamped indices: a file that over-reports its length must not send decord past its end.
    index = np.clip(np.searchsorted(starts, times + 1e-6, side="right") - 1, 0, n_frames - 1)
    frames = np.zeros((steps, resize[0], resize[1], 3), np.uint8)
    if valid.any():
        wanted = index[valid].tolist()
        try:
            frames[valid] = reader.get_batch(wanted).asnumpy()
        except decord.DECORDError as err:
            if "size must exactly match" not in str(err):
                raise DecodeError(f"{path}: {_short(err)}") from None
            # decord's in-decoder resize fails for some sizes (e.g. 48 x 48): decode at the
            # file's own size and resize here instead.
            frames[valid] = _resize(_native_batch(path, wanted), resize)
    return _centre_crop(frames, crop), max(0.0, stop - start)


def read_audio(
    path: str | Path, *, sample_rate: int, seconds: float, start: float = 0.0, end: float | None = None,
) -> tuple[np.ndarray, float]:
    """(N,) float32 mono samples of the window (zero-padded) and the seconds the file covers.

    Read as mono: decord's stereo path corrupts one channel.
    """
    import decord

    try:
        reader = decord.AudioReader(str(path), sample_rate=sample_rate, mono=True)
    except decord.DECORDError as err:
        if "audio stream" in str(err).lower():
            raise NoAudioStream(f"{path}: no audio stream") from None
        raise DecodeError(f"{path}: cannot open audio ({_short(err)})") from None
    n = int(round(seconds * sample_rate))
    first = int(round(start * sample_rate))
    available = reader.shape[1]
    last = min(available, first + n)
    if end is not None and not math.isnan(end):
        last = min(last, int(round(end * sample_rate)))
    audio = np.zeros(n, np.float32)
    if last > first:
        # decord holds the decoded track as a numpy array already; slicing the reader instead
        # builds and checks a Python index per sample (a third of a clip's decode time).
        track = getattr(reader, "_array", None)
        audio[: last - first] = track[0, first:last] if track is not None else reader[first:last].asnumpy()[0]
    return audio, max(0, last - first) / sample_rate


def _native_batch(path, index: list[int]) -> np.ndarray:
    import decord

    try:
        return _open_video(path).get_batch(index).asnumpy()
    except decord.DECORDError as err:
        raise DecodeError(f"{path}: {_short(err)}") from None


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w, 3) uint8 -> (N, H, W, 3) uint8, bilinear with antialiasing."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def check_file(path: str | Path) -> None:
    """Fail early, with the right reason, on what the file system says about `path`."""
    import os

    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise MissingFile(f"{path}: no such file") from None
    except OSError as err:  # ELOOP, EACCES on a folder, EIO ...
        raise UnreadableFile(f"{path}: {err.strerror}") from None
    if not os.access(path, os.R_OK):
        raise UnreadableFile(f"{path}: permission denied")
    if info.st_size == 0:
        raise UnreadableContainer(f"{path}: empty file")


def decode_clip(
    path: str | Path, *, steps: int, seconds: float, sample_rate: int, resize: tuple[int, int], crop: int,
    start: float | None = None, end: float | None = None, min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS, silence: bool = False,
) -> Clip:
    """The clip the network sees: T frames and the waveform of [start, start + seconds).

    Raises a MediaError subclass whose `reason` is one of REASONS; a clip without sound is
    NoAudioStream so that the caller decides between skipping and silence (`silence=True`: zeros,
    from the frames already decoded). Files shorter than
    `min_seconds` or longer than `max_seconds` are refused before any frame is decoded.
    """
    check_file(path)
    start = 0.0 if start is None or math.isnan(start) else float(start)
    frames, video_seconds = read_frames(path, steps=steps, seconds=seconds, resize=resize, crop=crop,
                                        start=start, end=end, min_seconds=min_seconds, max_seconds=max_seconds)
    try:
        audio, audio_seconds = read_audio(path, sample_rate=sample_rate, seconds=seconds, start=start, end=end)
    except NoAudioStream:
        if not silence:
            raise
        audio, audio_seconds = np.zeros(int(round(seconds * sample_rate)), np.float32), video_seconds
    duration = min(video_seconds, audio_seconds, seconds)
    # Half a step of slack: container end times are rounded and AAC adds priming samples.
    padded = duration < seconds - 0.5 * seconds / steps
    return Clip(frames, audio, padded, duration)


def _short(err: Exception) -> str:
    """decord's message without its timestamp, source location and C++ stack."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", first)
