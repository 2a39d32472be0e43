"""Decoders side by side on real clips: decord 0.6.0, decord2, PyAV and torchcodec, and avaudit's own
media.decode_clip with its default PyAV frames (`avaudit`) and with `--decoder decord` (`avaudit-decord`).

For every decoder and every file it says whether the file is opened and given the outcome an
audit must give it, what duration and frame rate the decoder reports, whether the frames and the
sound it returns are the right ones, and how many clips a second it decodes on one core. "The
clip" is what avaudit's `paper` preset needs: 100 frames evenly over the first 10 s (black past
the end of the file), 128 x 171 (H x W) RGB uint8, and the window's sound as mono float32 at 16 kHz.

    python benchmarks/decoders.py [DATA] --python-decord2 /tmp/venv-decord2/bin/python \\
        --python-torchcodec /tmp/venv-torchcodec/bin/python [--rounds 3] [--cpu 1] [--only DECODER ...]

DATA defaults to shared/realmedia beside the repository (its README.md says what each file is).
avaudit and avaudit-decord run in this interpreter, importing avaudit from PYTHONPATH (a worktree's).
decord 0.6.0 and PyAV (av==18.1.0) run in this interpreter: avaudit's own environment. decord2
installs a module named `decord` too, and torchcodec needs FFmpeg's shared libraries, so each runs
in an environment of its own, made once:

    python -m venv /tmp/venv-decord2
    /tmp/venv-decord2/bin/pip install decord2==3.4.0 'numpy>=2.0,<2.5'

    # torchcodec 0.17 works with torch >= 2.11; borrowing this environment's torch 2.14.1 keeps
    # pip from fetching another torch. Its wheel ships no FFmpeg: it loads the system's
    # (FFmpeg 4 to 9), from apt on Debian 12: libavcodec59 and friends, FFmpeg 5.1.
    apt-get install -y --no-install-recommends libavcodec59 libavformat59 libavdevice59 \\
        libavfilter8 libswscale6 libswresample4 libavutil57
    python -m venv --system-site-packages /tmp/venv-torchcodec
    /tmp/venv-torchcodec/bin/pip install torchcodec==0.17.0

Another run of a decoder under a label of its own: --extra LABEL=DECODER:PYTHON, where PYTHON may
be a wrapper script. benchmarks/README.md shows one that runs torchcodec on the FFmpeg 8 inside
PyAV's wheel (pip only, no apt): --extra "torchcodec+PyAV's FFmpeg=torchcodec:/tmp/torchcodec-avlibs.sh".

The reference is PyAV (FFmpeg 8, libavcodec 62, inside its wheel) decoding every frame and every sample
of each stream, in this process, before any decoder runs; a frame's time is FFmpeg's best-effort clock,
but in an AVI, which stores no times, its chunk slot (build_reference says why). Each decoder then runs
in a subprocess of its interpreter, one at a time, pinned to one core (sched_setaffinity, OMP/MKL
threads 1, one decoder thread). Its frames are compared, all 100 steps, with the reference frames
resized the same way (PyAV's bilinear swscale): a step is wrong when its mean absolute difference from
the frame it should show is over MAD_LIMIT levels, or when a frame up to 2 away matches it clearly
better; a wrong step is looked up among all the stream's frames to say how far off it is. Its 16 kHz
sound is compared with the reference stream resampled by PyAV: the correlation of their log spectrograms
(n_fft 512, hop 160, the model's) decides, the waveforms' correlation and lag are shown; its native
sound (rate, channels, first 2 s) is compared sample by sample. Where a file has two streams of a kind,
a decoder is compared with the stream its output matches best, and the report says which.

Timing: `--rounds` rounds, each running every decoder's subprocess once (the order rotated from
round to round, as the shared machine's speed drifts); a subprocess decodes each file once to warm
up (in the first round, the correctness pass) and then once timed; each file keeps its best time,
wall-clock and the process's CPU time (on one core the latter is the work done, whatever else the
machine runs meanwhile). Clips/s is given over the same work for each decoder: A, the files every
decoder decoded correctly (skips left out); B, the same without decord 0.6.0, the decoder to
replace; and over all files (what auditing this folder costs, failures and quick skips included).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

STEPS, SECONDS = 100, 10.0  # the paper preset's window: 100 frames over 10 s
HEIGHT, WIDTH = 128, 171  # the paper preset's resize, before its 112 x 112 centre crop
RATE = 16000  # model sample rate
MIN_SECONDS = 2.0  # avaudit skips shorter clips as `too short`
FAULT_TOLERANCE = 0.05  # avaudit's decord setting
NATIVE_SECONDS = 2.0  # native sound compared sample by sample over the first 2 s
MAD_LIMIT = 6.0  # levels: the resizers differ (bicubic vs bilinear); a wrong frame is far more
CORR_LIMIT, LAG_LIMIT_MS = 0.95, 20.0  # sound: log-spectrogram correlation with the reference, lag
TIMES = np.arange(STEPS) * (SECONDS / STEPS)
DECODERS = ("decord", "decord2", "pyav", "torchcodec", "avaudit", "avaudit-decord")
REPO = Path(__file__).resolve().parent.parent

# The outcome each real file must get (shared/realmedia/README.md). "audit" includes padded.
EXPECTED = {
    "torchcodec_nasa_13013.mp4": ("audit",),
    "moviepy_chaplin.mp4": ("audit",),
    "mmaction2_tests_data_test.avi": ("audit",),
    "moviepy_fire2.mp4": ("audit",),
    "moviepy_example2.mp4": ("audit", "too short"),
    "moviepy_no_duration.webm": ("audit",),
    "torchcodec_av1_video.mkv": ("no audio stream",),
    "mmaction2_demo_demo.mp4": ("no audio stream",),
    "moviepy_with-attached-pic.mp3": ("no video stream",),
    "torchcodec_h265_10bits.mp4": ("too short",),
}


class Skip(Exception):
    """The outcome an audit gives a file it does not process: `reason` as avaudit names it."""

    def __init__(self, reason: str, detail: str = "", info: dict | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.info = reason, detail, info


def _short(err: BaseException) -> str:
    """The first line of an error, without decord's "[time] source.cc:line: [path]" prefix."""
    lines = [line for line in str(err).splitlines() if line.strip()]
    line = lines[0] if lines else type(err).__name__
    line = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", line)
    return re.sub(r"^\[[^\]]*\] ", "", line)[:120]


# ---------------------------------------------------------------------------------------------
# The four decoders. Each `clip(path)` returns (frames (100, 128, 171, 3) uint8, audio (160000,)
# float32 or None when the file has no sound, info) or raises Skip; `native_audio(path)` returns
# (rate, channels, (channels, n) float32 of the first 2 s, start offset in s or None).


def decord_clip(path: str):
    """avaudit's media.read_frames / read_audio as they are (decord 0.6.0 and decord2 alike)."""
    import decord

    try:
        reader = decord.VideoReader(path, width=WIDTH, height=HEIGHT, num_threads=1,
                                    fault_tol=FAULT_TOLERANCE)
    except (decord.DECORDError, RuntimeError) as err:
        raise Skip("no video stream" if "stream" in str(err).lower() else "unreadable container",
                   _short(err)) from None
    n = len(reader)
    if n == 0:
        raise Skip("no video stream", "video stream has no frames")
    stamps = reader.get_frame_timestamp(np.arange(n))
    starts, end = stamps[:, 0], float(stamps[-1, 1])
    info = dict(duration=end, fps=float(reader.get_avg_fps()), frames=n)
    if end < MIN_SECONDS:
        raise Skip("too short", f"{end:.2f} s", info)
    valid = TIMES < min(end, SECONDS) - 1e-6
    index = np.clip(np.searchsorted(starts, TIMES + 1e-6, side="right") - 1, 0, n - 1)
    frames = np.zeros((STEPS, HEIGHT, WIDTH, 3), np.uint8)
    frames[valid] = reader.get_batch(index[valid].tolist()).asnumpy()
    try:
        sound = decord.AudioReader(path, sample_rate=RATE, mono=True)
    except decord.DECORDError as err:
        if "audio stream" in str(err).lower():
            return frames, None, info
        raise
    audio = np.zeros(int(SECONDS * RATE), np.float32)
    track = sound._array[0, : audio.size]
    audio[: track.size] = track
    return frames, audio, info


def decord_native_audio(path: str):
    import decord

    sound = decord.AudioReader(path, sample_rate=-1, mono=False)
    # decord does not say the native rate (None: compared as if it were the stream's own); the
    # whole track comes back, so its length says how much of the sound it decoded.
    return None, sound._array.shape[0], sound._array.astype(np.float32), None


def _pyav_video_stream(container):
    """The video stream FFmpeg would pick, leaving out cover pictures (attached_pic)."""
    import av

    moving = [s for s in container.streams.video
              if not s.disposition & av.stream.Disposition.attached_pic]
    if not moving:
        return None
    best = container.streams.best("video")
    return best if best in moving else moving[0]


class _Clock:
    """FFmpeg's best-effort timestamp (libavcodec's guess_correct_pts): a frame's pts, unless pts
    has gone backwards more often than dts has. AVI has no real pts: MPEG-4 part 2 with packed
    B-frames comes out of the decoder in display order with pts 1, 2, 4, 3, 5, 7, 6, ... and its
    dts is the display clock."""

    def __init__(self, stream):
        self.base = float(stream.time_base)
        self.pts_faults = self.dts_faults = 0
        self.last_pts = self.last_dts = None

    def see(self, frame) -> None:
        if frame.dts is not None:
            self.dts_faults += self.last_dts is not None and frame.dts <= self.last_dts
            self.last_dts = frame.dts
        if frame.pts is not None:
            self.pts_faults += self.last_pts is not None and frame.pts <= self.last_pts
            self.last_pts = frame.pts

    def time(self, frame) -> float | None:
        use_pts = frame.pts is not None and (self.pts_faults <= self.dts_faults or frame.dts is None)
        value = frame.pts if use_pts else frame.dts
        return None if value is None else value * self.base


def _rgb(frame) -> np.ndarray:
    """The frame as displayed, 128 x 171 RGB: resized by swscale (bilinear), then turned by its
    display matrix (phones store upside-down or sideways video and a rotation to undo it)."""
    turns = round((frame.rotation or 0) / 90) % 4  # np.rot90's counter-clockwise quarter turns
    width, height = (HEIGHT, WIDTH) if turns % 2 else (WIDTH, HEIGHT)
    image = frame.reformat(width=width, height=height, format="rgb24",
                           interpolation="BILINEAR").to_ndarray()
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def pyav_clip(path: str):
    """A PyAV decoder for the window only: demux video and sound together, decode up to the end of
    the window, convert and resize only the frames a step shows, resample the sound as it comes."""
    import av

    try:
        container = av.open(path)
    except av.FFmpegError as err:
        raise Skip("unreadable container", _short(err)) from None
    with container:
        video = _pyav_video_stream(container)
        if video is None:
            raise Skip("no video stream", f"{len(container.streams.video)} cover picture(s) only")
        audio = container.streams.best("audio")
        video.codec_context.thread_count = 1
        base = float(video.time_base)
        fps = float(video.average_rate or video.guessed_rate or 0) or None
        if video.duration is not None:
            known = video.duration * base
        elif container.duration is not None:
            known = container.duration / 1e6
        else:
            known = None  # WebM as browsers write it: found by decoding
        info = dict(duration=known, fps=fps, frames=video.frames or None)
        if known is not None and known < MIN_SECONDS:
            raise Skip("too short", f"{known:.2f} s", info)

        frames = np.zeros((STEPS, HEIGHT, WIDTH, 3), np.uint8)
        step = 0
        clock, pending, last_end = _Clock(video), [], 0.0
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE) if audio else None
        chunks, audio_start, audio_done = [], None, audio is None

        def show(frame, until: float) -> None:  # `frame` is on screen for the steps before `until`
            nonlocal step
            image = None
            while step < STEPS and TIMES[step] < until - 1e-6:
                if image is None:
                    image = _rgb(frame)
                frames[step] = image
                step += 1

        def frame_end(frame) -> float:
            length = frame.duration * base if frame.duration else 1 / (fps or 25)
            return (clock.time(frame) or last_end) + length

        for packet in container.demux([s for s in (video, audio) if s is not None]):
            if packet.stream is video and step < STEPS:
                for frame in packet.decode():
                    clock.see(frame)
                    pending.append(frame)
                    if len(pending) == 3:  # a frame is placed once the one after next is seen,
                        # so that a pts that goes backwards re-times the frame before it too
                        first, second = pending.pop(0), pending[0]
                        show(first, clock.time(second) or frame_end(first))
                        last_end = frame_end(first)
            elif packet.stream is audio and not audio_done:
                for frame in packet.decode():
                    if audio_start is None:
                        audio_start = frame.time or 0.0
                    chunks += [f.to_ndarray()[0] for f in resampler.resample(frame)]
                    audio_done = (frame.time or 0.0) >= SECONDS
            if step >= STEPS and audio_done:
                break
        for first, second in zip(pending, pending[1:] + [None]):  # the end of the file
            show(first, clock.time(second) if second is not None else frame_end(first))
            last_end = frame_end(first)
        if not last_end:
            raise Skip("decode error", "no video frame decoded")
        # Every step shown means the window is covered; otherwise the file ended inside it.
        end = max(SECONDS, last_end) if step >= STEPS else last_end
        if known is None and step < STEPS:
            info["duration"] = end
        if min(end, SECONDS) < MIN_SECONDS:
            raise Skip("too short", f"{end:.2f} s", info)
        if audio is None:
            return frames, None, info
        chunks += [f.to_ndarray()[0] for f in resampler.resample(None)]
        track = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        window = np.zeros(int(SECONDS * RATE), np.float32)
        offset = int(round((audio_start or 0.0) * RATE))  # sound that starts after 0 s stays in sync
        track = track[: max(0, window.size - offset)]
        window[offset : offset + track.size] = track
        return frames, window, info


def pyav_native_audio(path: str):
    import av

    with av.open(path) as container:
        stream = container.streams.best("audio")
        return _pyav_native(container, stream, NATIVE_SECONDS)


def _pyav_native(container, stream, seconds: float):
    """(rate, channels, (channels, n) float32 of the first `seconds`, start time) of one stream."""
    import av

    rate, channels = stream.codec_context.sample_rate, stream.codec_context.layout.nb_channels
    convert = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=rate)
    chunks, start, n = [], None, int(round(seconds * rate)) if seconds else None
    for frame in container.decode(stream):
        if start is None:
            start = frame.time or 0.0
        chunks += [f.to_ndarray() for f in convert.resample(frame)]
        if n is not None and sum(c.shape[1] for c in chunks) >= n:
            break
    chunks += [f.to_ndarray() for f in convert.resample(None)]
    array = np.concatenate(chunks, axis=1) if chunks else np.zeros((channels, 0), np.float32)
    return rate, channels, array[:, :n] if n is not None else array, start


def torchcodec_clip(path: str):
    """torchcodec as its documentation shows: exact seek mode, resize inside the decoder."""
    import torch
    from torchcodec.decoders import AudioDecoder, VideoDecoder
    from torchcodec.transforms import Resize

    torch.set_num_threads(1)
    try:
        decoder = VideoDecoder(path, dimension_order="NHWC", num_ffmpeg_threads=1, seek_mode="exact",
                               transforms=[Resize((HEIGHT, WIDTH))])
    except (ValueError, RuntimeError) as err:
        raise Skip("no video stream" if "stream" in str(err).lower() else "unreadable container",
                   _short(err)) from None
    meta = decoder.metadata
    begin, end = float(meta.begin_stream_seconds), float(meta.end_stream_seconds)
    info = dict(duration=meta.duration_seconds, fps=meta.average_fps, frames=meta.num_frames)
    if end - begin < MIN_SECONDS:
        raise Skip("too short", f"{end - begin:.2f} s", info)
    valid = TIMES < min(end, SECONDS) - 1e-6
    wanted = np.maximum(TIMES[valid], begin)  # before the first frame: show the first frame
    frames = np.zeros((STEPS, HEIGHT, WIDTH, 3), np.uint8)
    frames[valid] = decoder.get_frames_played_at(seconds=wanted.tolist()).data.numpy()
    try:
        sound = AudioDecoder(path, sample_rate=RATE, num_channels=1)
    except (ValueError, RuntimeError) as err:
        if "stream" in str(err).lower():
            return frames, None, info
        raise
    samples = sound.get_samples_played_in_range(0.0, SECONDS)
    window = np.zeros(int(SECONDS * RATE), np.float32)
    offset = int(round(samples.pts_seconds * RATE))
    track = samples.data[0].numpy()[: max(0, window.size - offset)]
    window[offset : offset + track.size] = track
    return frames, window, info


def torchcodec_native_audio(path: str):
    from torchcodec.decoders import AudioDecoder

    sound = AudioDecoder(path)
    samples = sound.get_samples_played_in_range(0.0, NATIVE_SECONDS)
    meta = sound.metadata
    return meta.sample_rate, meta.num_channels, samples.data.numpy(), samples.pts_seconds


def avaudit_clip(path: str, decoder: str = "pyav"):
    """avaudit's own media.decode_clip as an audit calls it, with `decoder` for the frames (PyAV, the
    default, or decord where it can time the file), at the benchmark's size (no crop)."""
    from avaudit.media import decode, pyav

    try:
        sound = pyav.probe(path).audio is not None  # decode_clip makes a missing track silence or an error
        clip = decode.decode_clip(path, steps=STEPS, seconds=SECONDS, sample_rate=RATE, resize=(HEIGHT, WIDTH),
                                  crop=WIDTH, min_seconds=MIN_SECONDS, silence=True, decoder=decoder)
    except decode.MediaError as err:
        raise Skip(str(err.reason), str(err)) from None
    info = dict(duration=clip.duration, fps=None, frames=None)  # the window's seconds of picture and sound
    return clip.frames, clip.audio if sound else None, info


def decoder_version(name: str) -> str:
    if name.startswith("avaudit"):
        import av

        frames = "decord 0.6.0" if name == "avaudit-decord" else "PyAV"
        return f"avaudit decode_clip ({frames} frames), av {av.__version__}"
    if name in ("decord", "decord2"):
        from importlib import metadata

        import decord
        dist = "decord2" if name == "decord2" else "decord"
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            return f"decord {decord.__version__}"
    if name == "pyav":
        import av

        return f"av {av.__version__}, libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}"
    import torch
    import torchcodec

    return (f"torchcodec {torchcodec.__version__}, torch {torch.__version__}, "
            f"FFmpeg {torchcodec.ffmpeg_major_version}")


CLIP = {"decord": decord_clip, "decord2": decord_clip, "pyav": pyav_clip, "torchcodec": torchcodec_clip,
        "avaudit": avaudit_clip, "avaudit-decord": lambda path: avaudit_clip(path, "decord")}
NATIVE = {"decord": decord_native_audio, "decord2": decord_native_audio, "pyav": pyav_native_audio,
          "torchcodec": torchcodec_native_audio, "avaudit": pyav_native_audio, "avaudit-decord": pyav_native_audio}


# ---------------------------------------------------------------------------------------------
# The reference: PyAV decoding every frame and sample of every stream.


def build_reference(path: Path, out: Path) -> dict:
    """Write out/<file>.npz: per video stream every frame shown in the window resized to 128 x 171
    and the frame times, per audio stream the first 2 s at its own rate and the window at 16 kHz."""
    import av

    arrays, meta = {}, {"video": [], "audio": []}
    try:
        container = av.open(str(path))
    except av.FFmpegError:
        np.savez(out / f"{path.name}.npz", meta=json.dumps(meta))
        return meta
    with container:
        video = [s.index for s in container.streams.video
                 if not s.disposition & av.stream.Disposition.attached_pic]
        audio = [s.index for s in container.streams.audio]
    for index in video:
        with av.open(str(path)) as container:
            stream = container.streams[index]
            clock, stamps, images, last = _Clock(stream), [], [], 0.0
            for frame in container.decode(stream):
                clock.see(frame)
                stamps.append((frame.pts, frame.dts))
                last = frame.duration * float(stream.time_base) if frame.duration else 0.0
                if len(images) < 40 * (SECONDS + 1):  # enough for 10 s at up to 40 fps
                    images.append(_rgb(frame))
            # With hindsight: the clock FFmpeg settles on (pts, or dts where pts went backwards),
            # for every frame. An AVI stores no times: chunk k of a video stream is frame slot k, at
            # k / fps from the stream's start (DivX's packed B-frames keep one shown frame per chunk,
            # a 6-byte placeholder included), and the frames fill the length the header states. FFmpeg's
            # clock differs there: libavcodec releases a packed B-frame stream's frames one packet late
            # and each takes the dts of the packet that released it, one frame (40 ms) later than its
            # slot, which would end the video one frame past its stated length.
            use_pts = clock.pts_faults <= clock.dts_faults
            times = [(p if (use_pts and p is not None) or d is None else d) * clock.base
                     for p, d in stamps]
            if container.format.name == "avi":
                first = (stream.start_time or 0) * clock.base
                times = [first + k / float(stream.average_rate) for k in range(len(stamps))]
            # The video ends when its last frame does (one frame interval if it has no duration).
            end = times[-1] + (last or (float(np.median(np.diff(times))) if len(times) > 1 else 0.0))
            images = images[: int(np.searchsorted(times, SECONDS + 1.0))]
            key = f"v{stream.index}"
            arrays[f"{key}_times"], arrays[f"{key}_frames"] = np.asarray(times), np.stack(images)
            meta["video"].append(dict(index=stream.index, width=stream.codec_context.width,
                                      height=stream.codec_context.height, frames=len(times),
                                      end=end, fps=len(times) / (end - times[0]) if end > times[0] else None,
                                      codec=stream.codec_context.name))
    for index in audio:
        with av.open(str(path)) as container:
            rate, channels, native, start = _pyav_native(container, container.streams[index], 0.0)
        with av.open(str(path)) as container:
            stream = container.streams[index]
            mono = av.AudioResampler(format="flt", layout="mono", rate=RATE)
            chunks = []
            for frame in container.decode(stream):
                chunks += [f.to_ndarray()[0] for f in mono.resample(frame)]
            chunks += [f.to_ndarray()[0] for f in mono.resample(None)]
            track = np.concatenate(chunks)
            window = np.zeros(int(SECONDS * RATE), np.float32)
            offset = int(round(start * RATE))
            part = track[: max(0, window.size - offset)]
            window[offset : offset + part.size] = part
            key = f"a{stream.index}"
            arrays[f"{key}_native"] = native[:, : int(round(NATIVE_SECONDS * rate))]
            arrays[f"{key}_window"] = window
            meta["audio"].append(dict(index=stream.index, rate=rate, channels=channels, start=start,
                                      seconds=native.shape[1] / rate, codec=stream.codec_context.name))
    np.savez(out / f"{path.name}.npz", meta=json.dumps(meta), **arrays)
    return meta


def compare_frames(frames: np.ndarray, ref, stream: dict) -> dict:
    """All 100 steps against one reference video stream. A step is wrong when it differs from the
    frame it should show by more than MAD_LIMIT, or when a frame up to 2 away matches it clearly
    better; a wrong step is then looked up among all the stream's frames to say how far off it is."""
    key = f"v{stream['index']}"
    times, images = ref[f"{key}_times"], ref[f"{key}_frames"]
    index = np.clip(np.searchsorted(times, TIMES + 1e-6, side="right") - 1, 0, len(times) - 1)
    valid = TIMES < min(stream["end"], SECONDS) - 1e-6
    small = images[:, ::4, ::4].astype(np.float32)  # for the look-up only
    mads, wrong, off_s = [], 0, []
    for i in range(STEPS):
        got = frames[i].astype(np.int16)
        if not valid[i]:  # past the end of the file: black
            mad = float(np.abs(got).mean())
            mads.append(mad)
            wrong += mad > MAD_LIMIT
            continue
        k = int(index[i])
        near = {d: float(np.abs(got - images[k + d]).mean()) for d in range(-2, 3) if 0 <= k + d < len(images)}
        best = min(near, key=near.get)
        mads.append(near[0])
        if near[0] > MAD_LIMIT or (near[best] < 0.7 * near[0] and near[0] - near[best] > 1.0):
            wrong += 1
            far = np.abs(small - got[::4, ::4]).mean(axis=(1, 2, 3))
            j = int(far.argmin())
            off_s.append(float(times[j] - times[k]) if far[j] <= MAD_LIMIT else None)
    mads = np.asarray(mads)
    found = [x for x in off_s if x is not None]
    return dict(stream=stream["index"], mad_mean=float(mads.mean()), mad_max=float(mads.max()),
                worst_step=int(mads.argmax()), wrong_steps=int(wrong),
                off_min_s=min(found) if found else None, off_max_s=max(found) if found else None,
                unmatched=len(off_s) - len(found), black_steps=int((~valid).sum()))


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[int, float]:
    """(lag of a behind b in samples, correlation at that lag), searched over +-max_lag."""
    n = a.size + b.size
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    values = xc[lags % size]
    lag = int(lags[np.argmax(values)])
    norm = math.sqrt(float((a * a).sum()) * float((b * b).sum())) or 1.0
    return lag, float(values.max() / norm)


def _log_spectrogram(x: np.ndarray, n_fft: int = 512, hop: int = 160) -> np.ndarray:
    """Log power STFT with the paper preset's n_fft and hop: what the model's log-mel is made from."""
    n = 1 + (x.size - n_fft) // hop
    index = np.arange(n_fft)[None, :] + hop * np.arange(n)[:, None]
    return np.log(np.abs(np.fft.rfft(x[index] * np.hanning(n_fft), axis=1)) ** 2 + 1e-10)


def compare_audio(window: np.ndarray, ref, stream: dict) -> dict:
    target = ref[f"a{stream['index']}_window"]
    silent = not target.any()
    if silent:  # a silent track (the browser WebM): right when the decoder's is silent too
        lag, corr = 0, float(not np.abs(window).max() > 1e-6)
        zero = corr
    else:
        lag, corr = _lag(window.astype(np.float64), target.astype(np.float64), RATE // 10)
        zero = _lag(window.astype(np.float64), target.astype(np.float64), 0)[1]
    ratio = float(np.sqrt((window ** 2).mean() / max((target ** 2).mean(), 1e-20)))
    nonzero = np.flatnonzero(window)
    covered = (nonzero[-1] + 1) / RATE if nonzero.size else 0.0
    nonzero = np.flatnonzero(target)
    ref_covered = (nonzero[-1] + 1) / RATE if nonzero.size else 0.0
    # The verdict's measure: a sub-millisecond shift or another resampling filter decorrelates the
    # waveforms' top octave, but leaves the spectrogram that the model sees as it is.
    span = max(int(ref_covered * RATE), 512)
    spectral = 1.0 if silent else float(np.corrcoef(_log_spectrogram(window[:span]).ravel(),
                                                    _log_spectrogram(target[:span]).ravel())[0, 1])
    return dict(stream=stream["index"], silent=silent, spectral_corr=corr if silent else spectral,
                lag_ms=1000 * lag / RATE, corr=corr, corr_at_0=zero,
                rms_ratio=ratio, seconds=float(covered), ref_seconds=float(ref_covered))


def compare_native(rate, channels, array, start, ref, stream: dict) -> dict:
    target = ref[f"a{stream['index']}_native"]
    out = dict(stream=stream["index"], rate=rate, channels=channels, samples=int(array.shape[1]),
               seconds=array.shape[1] / (rate or stream["rate"]), start=start,
               ref_rate=stream["rate"], ref_channels=stream["channels"], ref_seconds=stream["seconds"],
               # samples no decoder should give: NaN, inf, or far outside [-1, 1]
               garbage=[int((~np.isfinite(x) | (np.abs(np.nan_to_num(x)) > 4.0)).sum()) for x in array])
    if channels == stream["channels"] and rate in (None, stream["rate"]) and array.shape[1] and target.shape[1]:
        n = min(array.shape[1], target.shape[1])
        a, b = array[:, :n].astype(np.float64), target[:, :n].astype(np.float64)
        lag, _ = _lag(a.mean(0), b.mean(0), stream["rate"] // 20)
        a, b = (a[:, lag:], b[:, : n - lag]) if lag >= 0 else (a[:, : n + lag], b[:, -lag:])
        out.update(lag_samples=lag, max_abs_diff=[float(np.abs(x - y).max()) for x, y in zip(a, b)])
    return out


# ---------------------------------------------------------------------------------------------
# One decoder, in its own interpreter.


def worker(name: str, data: Path, reference: Path | None, out: Path) -> None:
    """With a reference: check every file (which also warms the decoder up), then time one round.
    Without: warm up, then time one round."""
    files = sorted(p for p in data.iterdir() if p.name in EXPECTED)
    results = {"decoder": name, "version": decoder_version(name), "files": {}}
    clip = CLIP[name]
    if reference is None:
        for path in files:
            try:
                clip(str(path))
            except Exception:
                pass
    else:
        check(name, files, reference, results["files"])
    results["round"] = {}
    for path in files:
        started, cpu = time.perf_counter(), time.process_time()
        try:
            clip(str(path))
        except Exception:
            pass
        results["round"][path.name] = (time.perf_counter() - started, time.process_time() - cpu)
    out.write_text(json.dumps(results, indent=1))


def check(name: str, files: list[Path], reference: Path, rows: dict) -> None:
    clip, native = CLIP[name], NATIVE[name]
    for path in files:
        with np.load(reference / f"{path.name}.npz") as npz:
            ref = {k: npz[k] for k in npz.files}
        meta = json.loads(str(ref["meta"]))
        row = rows[path.name] = {}
        started = time.perf_counter()
        try:
            frames, audio, info = clip(str(path))
        except Skip as skip:
            row.update(outcome=skip.reason, detail=skip.detail, info=skip.info)
            frames = audio = None
        except Exception as err:  # a crash: avaudit would have to map it to a reason
            row.update(outcome="crash", detail=f"{type(err).__name__}: {_short(err)}")
            frames = audio = None
        else:
            row.update(outcome="no audio stream" if audio is None else "audit", info=info)
        row["first_s"] = time.perf_counter() - started
        if frames is not None and meta["video"]:
            checks = [compare_frames(frames, ref, s) for s in meta["video"]]
            row["frames"] = min(checks, key=lambda c: c["mad_mean"])
            row["frames"]["of"] = len(checks)
        if audio is not None and meta["audio"]:
            checks = [compare_audio(audio, ref, s) for s in meta["audio"]]
            row["audio"] = max(checks, key=lambda c: c["spectral_corr"])
            row["audio"]["of"] = len(checks)
        if meta["audio"]:
            try:
                rate, channels, array, start = native(str(path))
                stream = next((s for s in meta["audio"] if s["index"] == row.get("audio", {}).get("stream")),
                              None)
                candidates = [stream] if stream else meta["audio"]
                checks = [compare_native(rate, channels, array, start, ref, s) for s in candidates]
                row["native"] = min(checks, key=lambda c: max(c.get("max_abs_diff", [9.0])))
            except Exception as err:
                row["native"] = dict(error=f"{type(err).__name__}: {_short(err)}")


# ---------------------------------------------------------------------------------------------
# The driver: reference, one worker per decoder, one table.


def verdict(name: str, row: dict, detail: bool = True) -> list[str]:
    """What the decoder gets wrong on one file; empty when it reads it correctly."""
    wrong = []
    expected = EXPECTED[name]
    if row["outcome"] not in expected:
        why = f" ({row['detail']})" if detail and row.get("detail") else ""
        wrong.append(f"`{row['outcome']}`{why}, should be `{' or '.join(expected)}`")
    frames = row.get("frames")
    if frames and frames["wrong_steps"]:
        where = ""
        if frames["off_min_s"] is not None:
            lo, hi = frames["off_min_s"], frames["off_max_s"]
            where = f", {lo:+.2f} s" + (f" to {hi:+.2f} s" if hi != lo else "") + " off"
        if frames["unmatched"]:
            where += f", {frames['unmatched']} matching no frame"
        wrong.append(f"{frames['wrong_steps']} of {STEPS} steps show the wrong frame{where} "
                     f"(mean abs diff up to {frames['mad_max']:.1f})")
    audio = row.get("audio")
    if audio:
        if audio["spectral_corr"] < CORR_LIMIT:
            wrong.append(f"sound: spectrogram correlation {audio['spectral_corr']:.2f}, "
                         f"{audio['seconds']:.2f} s of {audio['ref_seconds']:.2f} s")
        elif abs(audio["lag_ms"]) > LAG_LIMIT_MS:
            wrong.append(f"sound shifted {audio['lag_ms']:+.1f} ms")
    return wrong


def notes(row: dict) -> list[str]:
    """What is worth knowing but not wrong."""
    out = []
    frames, audio, native = row.get("frames"), row.get("audio"), row.get("native")
    if frames and frames["of"] > 1:
        out.append(f"video: stream #{frames['stream']} (of {frames['of']} video streams)")
    if audio and audio["of"] > 1:
        out.append(f"sound: stream #{audio['stream']} (of {audio['of']} sound streams)")
    if audio and audio["spectral_corr"] >= CORR_LIMIT and abs(audio["lag_ms"]) > 0.5:
        out.append(f"sound {audio['lag_ms']:+.1f} ms late, waveform correlation {audio['corr']:.3f}")
    if native and "error" in native:
        out.append(f"native sound: {native['error']}")
    elif native:
        rate = "rate not reported" if native["rate"] is None else f"{native['rate']} Hz"
        if native["channels"] != native["ref_channels"] or native["rate"] not in (None, native["ref_rate"]):
            out.append(f"native sound {rate} x{native['channels']} "
                       f"(stream: {native['ref_rate']} Hz x{native['ref_channels']})")
        elif any(native["garbage"]):
            out.append(f"native sound: {'/'.join(map(str, native['garbage']))} NaN or huge samples per channel")
        elif max(native.get("max_abs_diff") or [0.0]) > 1e-3:
            diffs = "/".join(f"{d:.3f}" for d in native["max_abs_diff"])
            out.append(f"native samples differ by up to {diffs} per channel")
        if native["rate"] is None and abs(native["seconds"] - native["ref_seconds"]) > 0.1:
            out.append(f"native track {native['seconds']:.2f} s of {native['ref_seconds']:.2f} s")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=REPO.parent / "shared" / "realmedia")
    for name in DECODERS:
        default = sys.executable if name in ("decord", "pyav", "avaudit", "avaudit-decord") else None
        parser.add_argument(f"--python-{name}", default=default, metavar="PYTHON",
                            help=f"interpreter whose environment has {name}")
    parser.add_argument("--extra", action="append", default=[], metavar="LABEL=DECODER:PYTHON",
                        help="one more run of a decoder under its own label")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (best time per file)")
    parser.add_argument("--only", nargs="+", choices=DECODERS, help="run only these decoders (and --extra)")
    parser.add_argument("--cpu", type=int, default=max(os.sched_getaffinity(0)))
    parser.add_argument("--json", type=Path, help="also write every measurement here")
    parser.add_argument("--worker", choices=DECODERS, help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:
        os.sched_setaffinity(0, {args.cpu})
        worker(args.worker, args.data, args.reference, args.out)
        return

    runs = [(name, name, getattr(args, f"python_{name.replace('-', '_')}")) for name in args.only or DECODERS]
    for extra in args.extra:
        label, _, rest = extra.partition("=")
        decoder, _, python = rest.partition(":")
        runs.append((label, decoder, python))
    files = sorted(p.name for p in args.data.iterdir() if p.name in EXPECTED)
    results = {}
    with tempfile.TemporaryDirectory(prefix="avaudit-decoders-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        reference = {name: build_reference(args.data / name, tmp) for name in files}
        print(f"reference (PyAV, every frame and sample of every stream): {time.perf_counter() - started:.1f} s",
              flush=True)
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
        for label, decoder, python in runs:
            if not python:
                print(f"{label}: not run (no --python-{decoder})", flush=True)
        runs = [run for run in runs if run[2]]
        # The shared machine's speed drifts: each round runs every decoder once, in a rotated order,
        # and each file keeps its best time over the rounds. The first round also checks.
        for round_ in range(args.rounds):
            for label, decoder, python in runs[round_ % len(runs):] + runs[: round_ % len(runs)]:
                if round_ and label not in results:
                    continue  # its check failed
                out = tmp / f"{label}.json"
                cmd = [python, __file__, str(args.data), "--worker", decoder, "--cpu", str(args.cpu),
                       "--out", str(out)] + (["--reference", str(tmp)] if round_ == 0 else [])
                started = time.perf_counter()
                proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
                if proc.returncode != 0 or not out.exists():
                    print(f"{label}: worker failed ({proc.returncode})\n{proc.stderr[-3000:]}", flush=True)
                    results.pop(label, None)
                    continue
                done = json.loads(out.read_text())
                if round_ == 0:
                    results[label] = dict(done, rounds=[])
                results[label]["rounds"].append(done["round"])
                print(f"round {round_ + 1}, {label}: {done['version']}, {time.perf_counter() - started:.1f} s",
                      flush=True)
        for r in results.values():
            for name, row in r["files"].items():
                row["best_s"] = min(times[name][0] for times in r["rounds"])
                row["best_cpu_s"] = min(times[name][1] for times in r["rounds"])
    if args.json:
        args.json.write_text(json.dumps(dict(reference=reference, decoders=results), indent=1))
    report(results, reference, files, args)


def report(results: dict, reference: dict, files: list[str], args) -> None:
    correct = {label: {f for f in files if not verdict(f, r["files"][f])} for label, r in results.items()}
    # Speed is compared on the same work: the files every decoder decoded correctly (skips left out),
    # and the same without decord 0.6.0, the decoder to be replaced.
    decoded = {label: {f for f in correct[label] if "frames" in r["files"][f]} for label, r in results.items()}
    common = sorted(set.intersection(*decoded.values())) if decoded else []
    newer = [d for label, d in decoded.items() if label != "decord"]
    common_new = sorted(set.intersection(*newer)) if newer else []

    def rate(rows: dict, names: list[str], key: str = "best_cpu_s") -> str:
        seconds = sum(rows[f][key] for f in names)
        return f"{len(names) / seconds:.2f}" if seconds else "-"

    print(f"\n{len(files)} files from {args.data}; paper clip = {STEPS} frames over {SECONDS:g} s at "
          f"{HEIGHT}x{WIDTH} + mono {RATE} Hz; one core (cpu {args.cpu}), best of {args.rounds}")
    print(f"A: the {len(common)} files every decoder decoded correctly: {', '.join(common)}")
    print(f"B: the {len(common_new)} files every decoder but decord 0.6.0 decoded correctly: "
          f"{', '.join(common_new)}\n")
    print("Clips per second of CPU time on the one core (the process's CPU time: what other work on a")
    print("shared machine does not change), then per second of wall-clock time (best over the rounds).\n")
    print("| decoder | version | read correctly | wrong | clips/CPU-s A | B | all | clips/s wall A | B | all |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, r in results.items():
        rows = r["files"]
        bad = [f"{f}: {'; '.join(verdict(f, rows[f], detail=False))}" for f in files if f not in correct[label]]
        print(f"| {label} | {r['version']} | {len(correct[label])}/{len(files)} | {'; '.join(bad) or '-'} | "
              + " | ".join(rate(rows, names, key) for key in ("best_cpu_s", "best_s")
                           for names in (common, common_new, files)) + " |")
    print("\nclips/CPU-s B in each round: " + "; ".join(
        f"{label} " + ", ".join(rate({f: dict(cpu=t[1]) for f, t in times.items()}, common_new, "cpu")
                               for times in r["rounds"]) for label, r in results.items()))

    print("\nPer file: best CPU time; outcome; reported duration / fps; frames (mean / max abs diff over "
          "100 steps); sound (log-spectrogram correlation with the reference at 16 kHz, seconds of sound); "
          "what is wrong.\n")
    for f in files:
        print(f"{f} (should be: {' or '.join(EXPECTED[f])})")
        streams = [f"v#{v['index']} {v['codec']} {v['width']}x{v['height']} {v['frames']} frames "
                   f"{v['end']:.3f} s ({v['fps']:.2f} fps)" for v in reference[f]["video"]]
        streams += [f"a#{a['index']} {a['codec']} {a['rate']} Hz x{a['channels']} {a['seconds']:.3f} s"
                    + (f" from {a['start']:.3f} s" if a["start"] else "") for a in reference[f]["audio"]]
        print(f"  {'reference (PyAV)':28s} {'':10s} {'; '.join(streams) or 'no stream'}")
        for label, r in results.items():
            row = r["files"][f]
            info = row.get("info") or {}
            parts = [row["outcome"]]
            if info:
                dur = info.get("duration")
                fps = info.get("fps")
                parts.append(f"{dur:.3f} s" if isinstance(dur, (int, float)) else "duration ?")
                parts.append(f"{fps:.2f} fps" if isinstance(fps, (int, float)) else "fps ?")
            if row.get("frames"):
                fr = row["frames"]
                parts.append(f"frames {fr['mad_mean']:.2f}/{fr['mad_max']:.2f}")
            if row.get("audio"):
                sound = row["audio"]
                parts.append("sound silent, as it should be" if sound["silent"] and sound["corr"] == 1 else
                             f"sound r={sound['spectral_corr']:.3f} ({sound['seconds']:.2f} s)")
            wrong = verdict(f, row)
            extra = notes(row)
            status = "OK" if not wrong else "WRONG: " + "; ".join(wrong)
            if extra:
                status += " [" + "; ".join(extra) + "]"
            print(f"  {label:28s} {row['best_cpu_s'] * 1000:7.1f} ms  {', '.join(parts)}  {status}")
        print()


if __name__ == "__main__":
    main()
