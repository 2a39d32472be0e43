"""Awkward but valid files that real datasets hold and that decord misreads, written with PyAV: the
test-side writer for what the product's writer (avaudit/media/encode.py, behind conftest.write_clip)
cannot write: other codecs and containers, late starts, many channels, PCM sound, lossless frames.

Frame i of every video has red = `red(i)` (lossless H.264 where the codec allows), so a test can
tell which source frame a step shows; the sound is a 440 Hz tone of amplitude 0.5 unless said.
"""
from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

SIZE = (48, 64)  # (height, width)
SAMPLE_RATE = 16000


def red(i: int) -> int:
    """Red level of source frame i (i < 118): distinct, never black."""
    return 20 + 2 * i


def _tone(samples: int, channels: int = 1) -> np.ndarray:
    y = (0.5 * np.sin(2 * np.pi * 440 * np.arange(samples) / SAMPLE_RATE)).astype(np.float32)
    return np.repeat(y, channels)  # interleaved: every channel the same tone


def _frame(i: int) -> av.VideoFrame:
    img = np.zeros((*SIZE, 3), np.uint8)
    img[..., 0] = red(i)
    return av.VideoFrame.from_ndarray(img, format="rgb24")


def _video_stream(out, *, fps: int, codec: str = "libx264", gop: int | None = None):
    video = out.add_stream(codec, rate=fps)
    video.height, video.width = SIZE
    video.pix_fmt = "yuv444p" if codec == "libx264" else "yuv420p"
    video.options = {"qp": "0", **({"g": str(gop)} if gop else {})} if codec == "libx264" else {}
    return video


def sound_stream(out, codec: str = "aac", layout: str = "mono"):
    """A sound stream at SAMPLE_RATE for `mux_tone`."""
    sound = out.add_stream(codec, rate=SAMPLE_RATE)
    sound.layout = layout
    return sound


def mux_tone(out, sound, seconds: float, *, channels: int = 1, layout: str = "mono", start: float = 0.0) -> None:
    y = _tone(int(round(seconds * SAMPLE_RATE)), channels)
    step = 1152 if sound.codec_context.name == "libmp3lame" else 1024
    for k in range(0, len(y) // channels, step):
        chunk = y[k * channels : (k + step) * channels]
        frame = av.AudioFrame.from_ndarray(chunk[None], format="flt", layout=layout)  # packed: PyAV 18
        frame.sample_rate, frame.pts = SAMPLE_RATE, k + int(round(start * SAMPLE_RATE))  # crashes on 8 planes
        out.mux(sound.encode(frame))
    out.mux(sound.encode())


def write_av(path: Path, *, seconds: float, fps: int = 10, video_start: float = 0.0, audio_start: float = 0.0,
             channels: int = 1, layout: str = "mono", codec: str = "libx264", audio_codec: str = "aac",
             gop: int | None = None) -> Path:
    """A clip whose video stream starts `video_start` s and whose sound starts `audio_start` s into
    the file; `channels` copies of the tone; any container PyAV writes (mp4, avi by suffix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = _video_stream(out, fps=fps, codec=codec, gop=gop)
        sound = sound_stream(out, audio_codec, layout)
        for i in range(int(round(seconds * fps))):
            frame = _frame(i)
            frame.pts = i + int(round(video_start * fps))
            out.mux(video.encode(frame))
        out.mux(video.encode())
        mux_tone(out, sound, seconds, channels=channels, layout=layout, start=audio_start)
    return path


def trim_by_copy(source: Path, path: Path, at: float) -> Path:
    """What `ffmpeg -ss AT -i SOURCE -c copy PATH` writes: the packets from the key frame at or before
    `at`, shifted so that `at` is 0. The lead-in frames get negative times and the mp4 an edit list
    that hides them; a player starts at the non-key frame at `at`."""
    with av.open(str(source)) as inp, av.open(str(path), "w") as out:
        streams = [s for s in inp.streams if s.type in ("video", "audio")]
        copies = {s.index: out.add_stream_from_template(s) for s in streams}
        inp.seek(int(at * 1e6), backward=True)
        for packet in inp.demux(streams):
            if packet.dts is None:
                continue
            shift = int(round(at / packet.time_base))
            packet.pts -= shift
            packet.dts -= shift
            if packet.stream.type == "audio" and packet.pts < 0:
                continue
            packet.stream = copies[packet.stream.index]
            out.mux(packet)
    return path


def zero_frame_rate(path: Path) -> Path:
    """Overwrite an AVI's stated frame rate with 0: the video `strh` scale and rate and the `avih`
    frame period (FFmpeg then falls back to 25 fps)."""
    data = bytearray(path.read_bytes())
    strh = data.find(b"strh")  # the first stream header: PyAV writes the video stream first
    avih = data.find(b"avih")
    assert data[strh + 8 : strh + 12] == b"vids"
    assert strh > 0 and avih > 0, f"{path}: no AVI video header"
    data[strh + 28 : strh + 36] = struct.pack("<II", 0, 0)
    data[avih + 8 : avih + 12] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))
    return path


def write_long_sound(path: Path, *, video_seconds: float = 3.0, sound_hours: float = 4.0, fps: int = 10) -> Path:
    """A short video with a sound track of hours: 10 s of tone, then one silent AAC packet repeated
    (a few bytes each, so the file stays small and is written in seconds)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        video = _video_stream(out, fps=fps)
        sound = sound_stream(out)
        for i in range(int(round(video_seconds * fps))):
            out.mux(video.encode(_frame(i)))
        out.mux(video.encode())
        y = np.concatenate([_tone(10 * SAMPLE_RATE), np.zeros(8 * 1024, np.float32)])
        packets = []
        for k in range(0, len(y), 1024):
            frame = av.AudioFrame.from_ndarray(y[None, k : k + 1024], format="flt", layout="mono")
            frame.sample_rate, frame.pts = SAMPLE_RATE, k
            packets += sound.encode(frame)
        out.mux(packets[:-4])
        silent, last = bytes(packets[-1]), packets[-5].pts
        for k in range(1, int(sound_hours * 3600 * SAMPLE_RATE / 1024)):
            packet = av.Packet(silent)
            packet.stream, packet.time_base = sound, Fraction(1, SAMPLE_RATE)
            packet.pts = packet.dts = last + k * 1024
            out.mux(packet)
    return path


def write_click(path: Path) -> Path:
    """3 s of grey frames at 10 fps over 44.1 kHz PCM sound that is silent but for one click at 1 s."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=10)
        video.height, video.width, video.pix_fmt = 48, 64, "yuv420p"
        sound = out.add_stream("pcm_s16le", rate=44100)
        sound.layout = "mono"
        for _ in range(30):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((48, 64, 3), 99, np.uint8), format="rgb24")))
        out.mux(video.encode())
        y = np.zeros(3 * 44100, np.int16)
        y[44100] = 30000
        mux_mono(out, sound, y, rate=44100)
    return path


def write_loud_clip(path: Path, *, seconds: float = 10.0, fps: int = 25, level: float = 3e38) -> Path:
    """A clip with float sound (pcm_f32le in Matroska) at `level`, near float32's largest value."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=fps)
        video.height, video.width, video.pix_fmt = 32, 32, "yuv420p"
        sound = out.add_stream("pcm_f32le", rate=16000)
        sound.layout = "mono"
        for i in range(int(seconds * fps)):
            out.mux(video.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i % 256, np.uint8), format="rgb24")))
        out.mux(video.encode())
        mux_mono(out, sound, np.full(int(seconds * 16000), level, np.float32), rate=16000)
    return path


def mux_mono(out, sound, y: np.ndarray, *, rate: int) -> None:
    """Encode mono samples as they are (int16 as s16, float32 as flt), 1024 a frame, and flush the encoder."""
    sample_format = {"int16": "s16", "float32": "flt"}[y.dtype.name]
    for k in range(0, len(y), 1024):
        frame = av.AudioFrame.from_ndarray(y[None, k : k + 1024], format=sample_format, layout="mono")
        frame.sample_rate, frame.pts = rate, k
        out.mux(sound.encode(frame))
    out.mux(sound.encode())
