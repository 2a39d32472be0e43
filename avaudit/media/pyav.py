"""The PyAV side of decoding: what a file holds (probe), the frames decord cannot time, and all sound.

Times here are seconds on the file's timeline: 0 is the earlier start of the video and audio streams
that are read, as a player shows them. Only the window's packets are decoded (after a seek where the
container allows one), so a 4-hour sound track costs what 10 s of it cost.
PyAV is imported inside the functions so that `avaudit --help` stays fast.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from avaudit.media import errors as media
from avaudit.media.window import shown_steps

SEEK_MARGIN = 0.5  # s: seek this much before the window; the frames or samples before it are dropped


class Streams(NamedTuple):
    """The streams a clip is read from, and where each starts on the file's timeline."""
    video: int | None  # index of the video stream read: FFmpeg's choice among those that are no cover picture
    audio: int | None  # index of the audio stream read: FFmpeg's choice
    video_start: float  # s after the timeline's 0 where the video stream starts
    audio_start: float  # s after the timeline's 0 where the audio stream starts
    zero: float  # the timeline's 0 in the streams' own clock (s)
    rate: float  # frames per second, for the last frame's length and files without timestamps
    count_frames: bool  # frame k is at video_start + k / rate (AVI: no presentation times)
    video_seconds: float | None  # the video stream's stated length, if it states one
    covers: int  # cover pictures (attached_pic streams): pictures, not video
    videos: int  # video streams that are no cover picture
    frames: int  # frames the video stream states it holds (0: unknown)


def probe(path: str | Path) -> Streams:
    """Open the container (headers only) and pick its streams; MediaError if it cannot be opened."""
    import av

    try:
        container = av.open(str(path))
    except av.FFmpegError as err:
        raise media.UnreadableContainer(f"{path}: cannot open ({err.strerror})") from None
    with container:
        # The streams FFmpeg picks (av_find_best_stream), as decord and players do, a cover never.
        covers = [s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        videos = [s for s in container.streams.video if s not in covers]
        video = container.streams.best("video")
        video = video if video in videos else (videos[0] if videos else None)
        audio = container.streams.best("audio")
        starts = {s.index: _seconds(s.start_time, s.time_base) for s in (video, audio) if s is not None}
        zero = min(starts.values(), default=0.0)
        rate, count_frames, length = 0.0, False, None
        if video is not None:
            rate = float(video.average_rate or video.guessed_rate or video.base_rate or 0)
            if container.format.name == "avi":
                count_frames, rate = True, _avi_rate(path, video)
            if video.duration is not None:  # not the container's: a long sound track is no long video
                length = float(video.duration * video.time_base)
        return Streams(video=video.index if video else None, audio=audio.index if audio else None,
                       video_start=starts[video.index] - zero if video else 0.0,
                       audio_start=starts[audio.index] - zero if audio else 0.0, zero=zero, rate=rate,
                       count_frames=count_frames, video_seconds=length, covers=len(covers), videos=len(videos),
                       frames=video.frames if video else 0)


def _seconds(pts, time_base) -> float:
    return 0.0 if pts is None else float(pts * time_base)


def _avi_rate(path, video) -> float:
    """An AVI's frame rate as its header states it, or as the video stream's codec does when the
    header says 0 (FFmpeg then invents 25 fps); DecodeError when neither knows."""
    header = _avi_header_rate(path)
    if header:
        return header
    codec = video.codec_context.framerate
    if codec and float(codec) > 0:
        return float(codec)
    raise media.DecodeError(f"{path}: no frame rate (the AVI header and the video stream both give none)")


def _avi_header_rate(path) -> float | None:
    """Frames per second from the first video `strh` (rate / scale), else from `avih`'s frame period."""
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    at = head.find(b"strh")
    while at >= 0 and head[at + 8 : at + 12] != b"vids":  # chunk id, size, then the stream type
        at = head.find(b"strh", at + 4)
    if at >= 0 and len(head) >= at + 36:
        scale, rate = struct.unpack("<II", head[at + 28 : at + 36])  # after type, handler, flags, ...
        if scale and rate:
            return rate / scale
    at = head.find(b"avih")
    if at >= 0 and len(head) >= at + 12:
        period_us = struct.unpack("<I", head[at + 8 : at + 12])[0]
        if period_us:
            return 1e6 / period_us
    return None


def read_frames(path, streams: Streams, *, times: np.ndarray, stop: float, until: float, resize: tuple[int, int],
                max_seconds: float = math.inf) -> tuple[np.ndarray, float | None, float]:
    """Frames for the sampling `times` (s, sorted) before `stop`, decoding up to `until` (>= stop).

    Returns (T, H, W, 3) uint8 RGB frames resized to `resize` (black where no frame is shown: before
    the video starts, after it ends, from `stop` on), the first decoded frame's time (None if none
    was) and the end of the video (the last frame's end, or `until` when the video goes on past it).
    A video stated to be longer than `max_seconds` is refused before decoding.
    """
    import av

    if streams.video_seconds is not None and streams.video_seconds > max_seconds:
        raise media.TooLong(f"{path}: {streams.video_seconds:.0f} s of video, over the {max_seconds:.0f} s limit")
    frames = np.zeros((len(times), *resize, 3), np.uint8)
    period = 1.0 / streams.rate if streams.rate > 0 else 0.04
    first = last = todo = None
    count = 0
    counts = [0, 0]
    with av.open(str(path)) as container:
        stream = container.streams[streams.video]
        # no times: a stage that decodes no frame still times the video (first frame, end), from its start
        if len(times) and not streams.count_frames and times[0] - SEEK_MARGIN > streams.video_start:
            _seek_before(container, stream, streams, times[0])
        for frame in _decoded(container, stream, path, counts):
            if streams.count_frames or frame.time is None:
                t = streams.video_start + count * period
            else:
                t = float(frame.time) - streams.zero
                if last is not None and t <= last[0]:  # timestamps out of order: the decoder's order is right
                    t = last[0] + period
            count += 1
            if first is None:
                first, todo = t, shown_steps(times, first=t, stop=stop)  # steps still to be given a frame
            elif todo.any():
                _show(frames, todo & (times < t), last[1], resize, todo)
            last = (t, frame)
            if t >= until:
                break
    _check_faults(path, counts, "video")
    if last is None:
        return frames, None, 0.0
    end = last[0] + period
    _show(frames, todo & (times < end), last[1], resize, todo)
    return frames, first, (until if last[0] >= until else end)


def _show(frames: np.ndarray, steps: np.ndarray, frame, resize: tuple[int, int], todo: np.ndarray) -> None:
    """Put `frame` (a PyAV VideoFrame), converted once and turned upright, at `steps`; strike them
    from `todo`. Phones store video sideways or upside down with a display matrix that players
    (and decord) apply; PyAV hands out the stored picture."""
    if steps.any():
        turns = round(frame.rotation / 90) % 4  # counterclockwise quarter turns
        height, width = resize if turns % 2 == 0 else resize[::-1]
        picture = frame.reformat(width=width, height=height, format="rgb24", interpolation="BICUBIC").to_ndarray()
        frames[steps] = np.rot90(picture, turns)
        todo &= ~steps


def _decoded(container, stream, path, counts):
    """Frames of `stream` in display order; packets that fail to decode are counted, not fatal
    (counts = [packets, failed])."""
    import av

    try:
        for packet in container.demux(stream):
            counts[0] += packet.size > 0
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                counts[1] += 1
                continue
            yield from decoded
    except av.FFmpegError as err:  # the container itself breaks off part-way
        raise media.DecodeError(f"{path}: {err.strerror} after {counts[0]} packets") from None


def _seek_before(container, stream, streams: Streams, at: float) -> None:
    """To the key frame of `stream` before SEEK_MARGIN ahead of `at` (s on the file's timeline)."""
    container.seek(int((streams.zero + at - SEEK_MARGIN) / stream.time_base), stream=stream, backward=True)


def _check_faults(path, counts, kind: str) -> None:
    """DecodeError when more than FAULT_TOLERANCE of the `kind` packets _decoded read failed."""
    packets, errors = counts
    if packets and errors > media.FAULT_TOLERANCE * packets:
        raise media.DecodeError(f"{path}: {errors} of {packets} {kind} packets could not be decoded")


def _mono(frame) -> np.ndarray:
    """(samples,) float32: the mean of a packed float frame's channels."""
    return frame.to_ndarray().reshape(-1, frame.layout.nb_channels).mean(axis=1, dtype=np.float32)


def read_audio(path, streams: Streams, *, sample_rate: int, start: float, seconds: float,
               stop: float) -> tuple[np.ndarray, float, float]:
    """(N,) float32 mono samples of [start, start + seconds) at `sample_rate`, zero where the file has
    no sound (before the track starts, after it ends or after `stop`), and the part of the window
    that holds sound as (from, to) in s after `start`. Channels are averaged.
    """
    import av

    n = int(round(seconds * sample_rate))
    audio = np.zeros(n, np.float32)
    stop = min(stop, start + seconds)
    chunks, got, begin = [], 0, None
    with av.open(str(path)) as container:
        stream = container.streams[streams.audio]
        if start - SEEK_MARGIN > streams.audio_start:
            _seek_before(container, stream, streams, start)
        # Packed float, the channels kept and averaged here: swresample's own downmix to mono sums
        # them (with centre and surround gains), and PyAV 18 segfaults reading planar frames of 8 channels.
        resampler = av.AudioResampler(format="flt", rate=sample_rate)
        counts = [0, 0]
        for frame in _decoded(container, stream, path, counts):
            if begin is None:
                begin = streams.audio_start if frame.time is None else float(frame.time) - streams.zero
            for out in resampler.resample(frame):
                chunks.append(_mono(out))
                got += len(chunks[-1])
            if begin + got / sample_rate >= stop:
                break
        else:
            chunks += [_mono(out) for out in resampler.resample(None)]
    _check_faults(path, counts, "audio")
    if begin is None:
        return audio, 0.0, 0.0
    track = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    at = int(round((begin - start) * sample_rate))  # where the decoded track starts in the window
    lo, hi = max(0, at), min(int(round((stop - start) * sample_rate)), at + len(track))
    if hi > lo:
        audio[lo:hi] = track[lo - at : hi - at]
    return audio, lo / sample_rate, max(lo, hi) / sample_rate
