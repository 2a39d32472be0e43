"""Decoding one clip: the T frames and the mono waveform of a 10-s window.

PyAV (media/pyav.py) decodes by default: it opens the file once and reads picture and sound in one
pass over the window's packets, places each by its time and averages the sound's channels. It gave
the right frame at every step of all ten real clips of benchmarks/README.md, where decord showed the
wrong frame at 64 of 100 steps of an AVI. decord stays as `decoder="decord"` (it resizes inside the
decoder) for the frames of files it can open and time; PyAV decodes the rest there: what decord's
FFmpeg cannot open (AV1, a WebM without a duration), files whose frame times decord gets wrong (AVI,
which has no presentation times; a clip cut at a non-key frame, whose lead-in frames decord counts),
and a file decord fails part-way through. Sound always comes from PyAV (decord decodes the whole
track at once, ignores the streams' start times, and sums the channels).

A clip is a path or a MemorySource (bytes in memory, read through io.BytesIO by both decoders);
errors name it. Times are seconds on the file's timeline, as a player shows it: 0 is the earlier
start of the video and audio streams, so a video stream that starts 4 s after its sound shows black
for 4 s. decord and PyAV are imported inside the functions so that `avaudit --help` stays fast.
"""
from __future__ import annotations

import contextlib
import io
import math
import os
import re
import sys
from typing import NamedTuple

import numpy as np

from avaudit.media import pyav
from avaudit.media.errors import (  # noqa: F401 - the errors are part of this module's interface
    FAULT_TOLERANCE,
    REASONS,
    DecodeError,
    DecodeTimeout,
    MediaError,
    MissingFile,
    NoAudioStream,
    NoVideoStream,
    TooLong,
    TooShort,
    UnreadableContainer,
    UnreadableFile,
)
from avaudit.media.pyav import MemorySource, Source  # noqa: F401 - what decode_clip reads
from avaudit.media.window import frame_times, is_padded, shown_steps
from avaudit.vocab import Decoder

MIN_SECONDS = 2.0  # shorter clips are skipped: under a fifth of the window is too little to judge
MAX_SECONDS = 3600.0  # longer videos are skipped before anything is decoded


class Clip(NamedTuple):
    frames: np.ndarray  # (T, H, W, 3) uint8 RGB, T frames at `steps / seconds` fps
    audio: np.ndarray  # (N,) float32 mono waveform at the model's sample rate
    padded: bool  # the window holds less than `seconds` of sound and picture: the rest is black / silent
    duration: float  # seconds of the window that hold both picture and sound (picture only with silence)


class _Untimed(Exception):
    """decord cannot open this file, time its frames or decode them: PyAV decodes it instead."""


def _centre_crop(frames: np.ndarray, side: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return frames[:, top : top + side, left : left + side]


def _open_video(path: Source, *, resize: tuple[int, int] | None = None):
    """A decord VideoReader (resizing inside the decoder when `resize` is given)."""
    import decord

    decord.logging.set_level(decord.logging.QUIET)  # FFmpeg's own log lines never reach the terminal
    size = {} if resize is None else {"width": resize[1], "height": resize[0]}
    uri = io.BytesIO(path.data) if isinstance(path, MemorySource) else os.fspath(path)
    try:
        with _native_stderr_muted():
            return decord.VideoReader(uri, fault_tol=FAULT_TOLERANCE, **size)
    except (decord.DECORDError, RuntimeError) as err:  # decord raises RuntimeError when it cannot open
        raise _Untimed(_short(err)) from None


def read_frames(
    path: Source, *, steps: int, seconds: float, resize: tuple[int, int], crop: int, start: float = 0.0,
    end: float | None = None, min_seconds: float = 0.0, max_seconds: float = math.inf, decoder: str = Decoder.pyav,
) -> tuple[np.ndarray, float]:
    """(T, crop, crop, 3) uint8 frames of the window and the seconds of it that hold video, no sound.

    Steps before the video starts, past its end or past `end` are black. A file with more than
    `max_seconds` of video, or less than `min_seconds` from `start`, is refused.
    """
    with pyav.opened(path) as container:
        streams = _video_streams(path, container)
        frames, (shown_from, shown_to) = _frames(path, container, streams, None, steps=steps, seconds=seconds,
                                                 resize=resize, start=start, end=end, min_seconds=min_seconds,
                                                 max_seconds=max_seconds, decoder=decoder)
    return _centre_crop(frames, crop), shown_to - shown_from


def thumbnail_frames(path: Source, *, n: int = 5, size: tuple[int, int] = (64, 64)) -> np.ndarray:
    """(n, H, W, 3) uint8: n frames spread evenly over the whole video, first to last, for a thumbnail
    strip (PyAV's, whatever the audit's decoder)."""
    streams = pyav.probe(path)
    if streams.video is None:
        raise NoVideoStream(f"{path}: no video stream")
    length = streams.video_seconds
    if length is None:  # a WebM as browsers write it: timed by decoding it
        timing = pyav.Pictures(streams, times=np.zeros(0), stop=0.0, until=math.inf, resize=size)
        with pyav.opened(path) as container:
            pyav.read(container, path, streams, pictures=timing)
        _, first, end = timing.result()
        length = 0.0 if first is None else end - streams.video_start
    last = max(0.0, length - 1.0 / (streams.rate or 25.0))  # the last frame's start
    times = streams.video_start + np.linspace(0.0, last, n)
    pictures = pyav.Pictures(streams, times=times, stop=math.inf, until=times[-1], resize=size)
    with pyav.opened(path) as container:
        pyav.read(container, path, streams, pictures=pictures)
    return pictures.result()[0]


def _video_streams(path: Source, container) -> pyav.Streams:
    streams = pyav.probe(path, container)
    if streams.video is None:
        raise NoVideoStream(f"{path}: no video stream" + (" (only a cover picture)" if streams.covers else ""))
    return streams


def _stop(start: float, seconds: float, end: float | None) -> float:
    """Where the window's content ends: `seconds` after `start`, or the row's `end` if that is earlier."""
    return start + seconds if end is None or math.isnan(end) else min(start + seconds, end)


def _frames(path, container, streams: pyav.Streams, sound: pyav.Sound | None, *, steps, seconds, resize, start,
            end, min_seconds, max_seconds, decoder) -> tuple[np.ndarray, tuple[float, float]]:
    """Frames (T, H, W, 3) at `resize` and the part of the window they show, (from, to) in s after `start`;
    `sound` (if given) is read from the open `container` as well: in the same pass where PyAV decodes
    the frames, after them where decord does."""
    times = frame_times(steps=steps, seconds=seconds, start=start)
    stop = _stop(start, seconds, end)
    length = dict(start=start, min_seconds=min_seconds, max_seconds=max_seconds)
    by_decord = None
    if decoder == Decoder.decord:
        with contextlib.suppress(_Untimed):  # PyAV decodes what decord cannot open, time or decode
            by_decord = _decord_frames(path, streams, times=times, stop=stop, resize=resize, **length)
    if by_decord is not None:
        frames, first, video_end = by_decord
        pyav.read(container, path, streams, sound=sound)
    else:
        pyav.check_stated_length(path, streams, max_seconds)
        pictures = pyav.Pictures(streams, times=times, stop=stop, until=max(stop, start + min_seconds), resize=resize)
        pyav.read(container, path, streams, pictures=pictures, sound=sound)
        frames, first, video_end = pictures.result()
        check_length(path, first=first, end=video_end, **length)
    if first is None:
        return frames, (0.0, 0.0)
    return frames, (max(0.0, first - start), max(0.0, min(video_end, stop) - start))


def check_length(path, *, first: float | None, end: float, start: float, min_seconds: float,
                 max_seconds: float) -> None:
    """TooLong over `max_seconds` of video; TooShort under `min_seconds` of it from `start`."""
    if end > max_seconds:
        raise TooLong(f"{path}: {end:.0f} s of video, over the {max_seconds:.0f} s limit")
    shown = 0.0 if first is None else max(0.0, end - max(start, first))
    if shown < min_seconds:
        raise TooShort(f"{path}: {shown:.2f} s of video from {start:g} s, under the {min_seconds:g} s minimum")


def _decord_frames(path, streams: pyav.Streams, *, times, stop, resize, **length):
    """decord's frames for `times`, the first frame's time and the video's end; _Untimed where decord
    cannot time the file (garbled or missing timestamps, lead-in frames before 0) or decode it."""
    import decord

    if streams.count_frames:  # AVI: decord times frames by packet times, which AVI lacks
        raise _Untimed(f"{path}: AVI")
    reader = _open_video(path, resize=resize)
    if streams.videos > 1 and streams.frames and len(reader) != streams.frames:
        raise _Untimed(f"{path}: decord reads another of its video streams")
    stamps = reader.get_frame_timestamp(np.arange(len(reader))) if len(reader) else np.zeros((0, 2))
    if not _plausible(stamps):
        raise _Untimed(f"{path}: frame times decord cannot read")
    starts = stamps[:, 0] + streams.video_start  # decord counts from the video stream's own start
    first, video_end = float(starts[0]), float(stamps[-1, 1]) + streams.video_start
    check_length(path, first=first, end=video_end, **length)
    valid = shown_steps(times, first=first, stop=min(stop, video_end))
    # Clamped indices: a file that over-reports its length must not send decord past its end.
    index = np.clip(np.searchsorted(starts, times + 1e-6, side="right") - 1, 0, len(starts) - 1)
    frames = np.zeros((len(times), resize[0], resize[1], 3), np.uint8)
    if valid.any():
        wanted = index[valid].tolist()
        try:
            frames[valid] = reader.get_batch(wanted).asnumpy()
        except decord.DECORDError as err:
            if "size must exactly match" not in str(err):
                raise _Untimed(_short(err)) from None
            # decord's in-decoder resize fails for some sizes (e.g. 48 x 48): decode at the
            # file's own size and resize here instead.
            frames[valid] = _resize(_native_batch(path, wanted), resize)
        except decord._ffi.base.DECORDLimitReachedError as err:  # over fault_tol; not a DECORDError
            raise _Untimed(_short(err)) from None
    return frames, first, video_end


def _plausible(stamps: np.ndarray) -> bool:
    """decord's (N, 2) frame start/end times are usable: finite, from 0 on, increasing.

    AVI and some H.264 files give NOPTS (-9.2e17) or out-of-order times; a clip cut at a non-key frame
    keeps its lead-in frames before 0, which decord counts but its decoder never hands out.
    """
    return (len(stamps) > 0 and bool(np.isfinite(stamps).all()) and stamps[0, 0] >= -1e-3
            and bool((np.diff(stamps[:, 0]) > 0).all()) and stamps[-1, 1] > stamps[0, 0])


def _native_batch(path, index: list[int]) -> np.ndarray:
    import decord

    try:
        return _open_video(path).get_batch(index).asnumpy()
    except (decord.DECORDError, decord._ffi.base.DECORDLimitReachedError) as err:
        raise _Untimed(_short(err)) from None


def _resize(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, h, w, 3) uint8 -> (N, H, W, 3) uint8, bilinear with antialiasing."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(frames).permute(0, 3, 1, 2).float()
    x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    return x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def check_file(path: Source) -> None:
    """Fail early, with the right reason, on what the file system says about `path` (on a MemorySource,
    whether it holds any bytes)."""
    if isinstance(path, MemorySource):
        if not len(path.data):
            raise UnreadableContainer(f"{path}: empty file")
        return
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
    path: Source, *, steps: int, seconds: float, sample_rate: int, resize: tuple[int, int], crop: int,
    start: float | None = None, end: float | None = None, min_seconds: float = MIN_SECONDS,
    max_seconds: float = MAX_SECONDS, silence: bool = False, decode_frames: bool = True, decode_sound: bool = True,
    decoder: str = Decoder.pyav,
) -> Clip:
    """The clip the network sees: T frames and the waveform of [start, start + seconds).

    `path` is a file or a MemorySource. Raises a MediaError subclass whose `reason` is one of REASONS;
    a clip without sound is NoAudioStream so that the caller decides between skipping and silence
    (`silence=True`: zeros, from the frames already decoded). Files with more than `max_seconds` of
    video are refused before any frame is decoded, files with less than `min_seconds` from `start` as
    soon as that is known. `decoder` (vocab.Decoder) decodes the frames; the sound is PyAV's.

    A training stage that needs one modality leaves the other undecoded: `decode_frames=False` checks the
    video's length but decodes no frame (frames is then (0, crop, crop, 3)); `decode_sound=False` decodes
    no sound (audio is then empty), though a file without a sound track is still NoAudioStream. The clip is
    refused for the same reasons either way, except a decode error inside the part left out.
    """
    check_file(path)
    start = 0.0 if start is None or math.isnan(start) else float(start)
    stop = _stop(start, seconds, end)
    with pyav.opened(path) as container:
        streams = _video_streams(path, container)
        sound = None
        if streams.audio is not None and decode_sound:
            sound = pyav.Sound(streams, sample_rate=sample_rate, start=start, seconds=seconds, stop=stop)
        frames, video = _frames(path, container, streams, sound, steps=steps if decode_frames else 0,
                                seconds=seconds, resize=resize, start=start, end=end, min_seconds=min_seconds,
                                max_seconds=max_seconds, decoder=decoder)
    if sound is None:
        if streams.audio is None and not silence:
            raise NoAudioStream(f"{path}: no audio stream")
        audio, sound_part = np.zeros(int(round(seconds * sample_rate)) if decode_sound else 0, np.float32), video
    else:
        audio, *sound_part = sound.result()
    duration = max(0.0, min(video[1], sound_part[1], seconds) - max(video[0], sound_part[0]))
    padded = is_padded(duration, seconds=seconds, steps=steps)
    return Clip(_centre_crop(frames, crop), audio, padded, duration)


@contextlib.contextmanager
def _native_stderr_muted():
    """Send file descriptor 2 to /dev/null while decord opens a file: its C++ `ERROR opening` line is
    written there whatever decord's log level, and the exception it raises says the same."""
    if sys.stderr is not None:  # None where the process started without fd 2
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # no fd 2: nothing to mute
        yield
        return
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
        finally:
            os.close(devnull)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _short(err: Exception) -> str:
    """decord's message without its timestamp, source location and C++ stack."""
    text = str(err).strip()
    first = text.splitlines()[0] if text else type(err).__name__
    return re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", first)
