"""The PyAV side of decoding: what a file holds (probe), and its frames and sound, read in one pass.

Times here are seconds on the file's timeline: 0 is the earlier start of the video and audio streams
that are read, as a player shows them. Only the window's packets are decoded (after a seek where the
container allows one), so a 4-hour sound track costs what 10 s of it cost. A clip is a file or a
MemorySource (its bytes held in memory: a WebDataset tar member, a Parquet cell), which FFmpeg reads
through io.BytesIO, nothing written to disk; errors name it by its `name`.
PyAV is imported inside the functions so that `avaudit --help` stays fast.
"""
from __future__ import annotations

import contextlib
import io
import os
import struct
from typing import NamedTuple, Union

import numpy as np

from avaudit.media import errors as media
from avaudit.media.window import shown_steps

SEEK_MARGIN = 0.5  # s: seek this much before the window; the frames or samples before it are dropped


class MemorySource(NamedTuple):
    """A clip's bytes held in memory, decoded without writing them anywhere; errors call it `name`."""
    name: str  # what the clip is called in errors and outputs, e.g. "shard-000003.tar/clip42.mp4"
    data: bytes | bytearray | memoryview

    def __str__(self) -> str:
        return self.name


Source = Union[str, os.PathLike, MemorySource]


@contextlib.contextmanager
def opened(source: Source):
    """The open container of `source`; UnreadableContainer, naming it, where FFmpeg cannot open it."""
    import av

    try:
        container = av.open(io.BytesIO(source.data) if isinstance(source, MemorySource) else os.fspath(source))
    except av.FFmpegError as err:
        raise media.UnreadableContainer(f"{source}: cannot open ({err.strerror})") from None
    with container:
        yield container


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


def probe(source: Source, container=None) -> Streams:
    """Pick the streams of `source` (headers only), from `container` when it is open already;
    MediaError if it cannot be opened."""
    import av

    if container is None:
        with opened(source) as container:
            return probe(source, container)
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
            count_frames, rate = True, _avi_rate(source, video)
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
    if isinstance(path, MemorySource):
        head = bytes(path.data[: 1 << 16])
    else:
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


def check_stated_length(source, streams: Streams, max_seconds: float) -> None:
    """TooLong, before anything is decoded, for a video stream stated to be longer than `max_seconds`."""
    if streams.video_seconds is not None and streams.video_seconds > max_seconds:
        raise media.TooLong(f"{source}: {streams.video_seconds:.0f} s of video, over the {max_seconds:.0f} s limit")


class Pictures:
    """The frames a window shows, gathered from the video stream's frames in display order: for the
    sampling `times` (s, sorted) before `stop`, decoding up to `until` (>= stop)."""

    kind = "video"

    def __init__(self, streams: Streams, *, times: np.ndarray, stop: float, until: float, resize: tuple[int, int]):
        from av.video.reformatter import VideoReformatter

        self.streams, self.times, self.stop, self.until, self.resize = streams, times, stop, until, resize
        self.frames = np.zeros((len(times), *resize, 3), np.uint8)
        self.period = 1.0 / streams.rate if streams.rate > 0 else 0.04
        self.first = self.last = self.todo = None
        self.count, self.counts, self.done = 0, [0, 0], False
        # one converter for the clip: frame.reformat makes (and sets up) a new one for every frame, 30 times slower
        self.reformatter = VideoReformatter()
        # no times: a stage that decodes no frame still times the video (first frame, end), from its start
        wants_seek = len(times) and not streams.count_frames and times[0] - SEEK_MARGIN > streams.video_start
        self.seek_at = float(times[0]) if wants_seek else None

    def add(self, frame) -> None:
        streams = self.streams
        if streams.count_frames or frame.time is None:
            t = streams.video_start + self.count * self.period
        else:
            t = float(frame.time) - streams.zero
            if self.last is not None and t <= self.last[0]:  # timestamps out of order: the decoder's order is right
                t = self.last[0] + self.period
        self.count += 1
        if self.first is None:
            self.first, self.todo = t, shown_steps(self.times, first=t, stop=self.stop)  # steps still to fill
        elif self.todo.any():
            self._show(self.todo & (self.times < t), self.last[1])
        self.last = (t, frame)
        self.done = t >= self.until

    def result(self) -> tuple[np.ndarray, float | None, float]:
        """(T, H, W, 3) uint8 RGB frames resized to `resize` (black where no frame is shown: before the
        video starts, after it ends, from `stop` on), the first decoded frame's time (None if none was)
        and the end of the video (the last frame's end, or `until` when the video goes on past it)."""
        if self.last is None:
            return self.frames, None, 0.0
        end = self.last[0] + self.period
        self._show(self.todo & (self.times < end), self.last[1])
        return self.frames, self.first, (self.until if self.last[0] >= self.until else end)

    def _show(self, steps: np.ndarray, frame) -> None:
        """Put `frame` (a PyAV VideoFrame), converted once and turned upright, at `steps`; strike them
        from `todo`. Phones store video sideways or upside down with a display matrix that players
        (and decord) apply; PyAV hands out the stored picture."""
        if steps.any():
            turns = round(frame.rotation / 90) % 4  # counterclockwise quarter turns
            height, width = self.resize if turns % 2 == 0 else self.resize[::-1]
            picture = self.reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                                interpolation="BICUBIC").to_ndarray()
            self.frames[steps] = np.rot90(picture, turns)
            self.todo &= ~steps


class Sound:
    """The mono samples of [start, start + seconds) at `sample_rate`, gathered from the audio stream's
    frames; zero where the file has no sound (before the track starts, after it ends or after `stop`)."""

    kind = "audio"

    def __init__(self, streams: Streams, *, sample_rate: int, start: float, seconds: float, stop: float):
        import av

        self.streams, self.sample_rate, self.start = streams, sample_rate, start
        self.audio = np.zeros(int(round(seconds * sample_rate)), np.float32)
        self.stop = min(stop, start + seconds)
        # Packed float, the channels kept and averaged here: swresample's own downmix to mono sums
        # them (with centre and surround gains), and PyAV 18 segfaults reading planar frames of 8 channels.
        self.resampler = av.AudioResampler(format="flt", rate=sample_rate)
        self.chunks, self.got, self.begin = [], 0, None
        self.counts, self.done = [0, 0], False
        self.seek_at = start if start - SEEK_MARGIN > streams.audio_start else None

    def add(self, frame) -> None:
        if self.begin is None:
            self.begin = self.streams.audio_start if frame.time is None else float(frame.time) - self.streams.zero
        for out in self.resampler.resample(frame):
            self.chunks.append(_mono(out))
            self.got += len(self.chunks[-1])
        self.done = self.begin + self.got / self.sample_rate >= self.stop

    def result(self) -> tuple[np.ndarray, float, float]:
        """(N,) float32 samples (channels averaged), and the part of the window that holds sound as
        (from, to) in s after `start`."""
        if self.begin is None:
            return self.audio, 0.0, 0.0
        if not self.done:  # the track ended inside the window: what the resampler still holds
            self.chunks += [_mono(out) for out in self.resampler.resample(None)]
        start, rate, audio = self.start, self.sample_rate, self.audio
        track = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.float32)
        at = int(round((self.begin - start) * rate))  # where the decoded track starts in the window
        lo, hi = max(0, at), min(int(round((self.stop - start) * rate)), at + len(track))
        if hi > lo:
            audio[lo:hi] = track[lo - at : hi - at]
        return audio, lo / rate, max(lo, hi) / rate


def read(container, source, streams: Streams, *, pictures: Pictures | None = None, sound: Sound | None = None) -> None:
    """Give `pictures` and `sound` (either may be None) their streams' frames in one pass over the
    open `container`: from a seek before the window where both allow one, until both have what they
    need. Packets that fail to decode are counted, not fatal, up to FAULT_TOLERANCE of a stream's."""
    import av

    readers = {index: reader for index, reader in ((streams.video, pictures), (streams.audio, sound))
               if reader is not None}
    if not readers:
        return
    seeks = [reader.seek_at for reader in readers.values()]
    if None not in seeks:  # the video stream's key frame, where there is one; sound frames all are
        _seek_before(container, container.streams[next(iter(readers))], streams, min(seeks))
    try:
        _demux(container, dict(readers))
    except av.FFmpegError as err:  # the container itself breaks off part-way
        packets = sum(reader.counts[0] for reader in readers.values())
        raise media.DecodeError(f"{source}: {err.strerror} after {packets} packets") from None
    for reader in readers.values():
        _check_faults(source, reader.counts, reader.kind)


def _demux(container, active: dict) -> None:
    """Decode the packets of the streams in `active` (index -> reader) until each reader is done or the
    file ends; a reader that is done leaves the demuxing, so that FFmpeg drops its stream's packets
    (a 3-s video's sound track may go on for hours)."""
    import av

    while active:
        for packet in container.demux([container.streams[index] for index in active]):
            reader = active[packet.stream.index]
            reader.counts[0] += packet.size > 0
            try:
                decoded = packet.decode()
            except av.FFmpegError:
                reader.counts[1] += 1
                continue
            for frame in decoded:
                reader.add(frame)
                if reader.done:
                    break
            if reader.done:
                del active[packet.stream.index]
                break  # demux on with the others, from here
        else:
            return  # the end of the file


def _seek_before(container, stream, streams: Streams, at: float) -> None:
    """To the key frame of `stream` before SEEK_MARGIN ahead of `at` (s on the file's timeline)."""
    container.seek(int((streams.zero + at - SEEK_MARGIN) / stream.time_base), stream=stream, backward=True)


def _check_faults(path, counts, kind: str) -> None:
    """DecodeError when more than FAULT_TOLERANCE of the `kind` packets read failed to decode."""
    packets, errors = counts
    if packets and errors > media.FAULT_TOLERANCE * packets:
        raise media.DecodeError(f"{path}: {errors} of {packets} {kind} packets could not be decoded")


def _mono(frame) -> np.ndarray:
    """(samples,) float32: the mean of a packed float frame's channels (a mono frame as it is)."""
    channels = frame.layout.nb_channels
    samples = frame.to_ndarray().reshape(-1, channels)
    return samples[:, 0] if channels == 1 else samples.mean(axis=1, dtype=np.float32)


def read_audio(source: Source, streams: Streams, *, sample_rate: int, start: float, seconds: float,
               stop: float) -> tuple[np.ndarray, float, float]:
    """The window's sound alone (Sound.result), from the file opened for it."""
    sound = Sound(streams, sample_rate=sample_rate, start=start, seconds=seconds, stop=stop)
    with opened(source) as container:
        read(container, source, streams, sound=sound)
    return sound.result()
