"""Model inputs from a table of clips: a Dataset that decodes one row, failures returned as data.

A corrupt sample is reported and skipped, never fatal (open_clip's rule): every item carries
`reason`/`detail`, empty when the clip decoded.
"""
from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from avaudit.config import ModelConfig
from avaudit.errors import UsageError
from avaudit.media.decode import Clip, DecodeTimeout, MediaError, decode_clip
from avaudit.media.digest import clip_digest
from avaudit.media.onsets import onset_steps
from avaudit.media.sources import member_name, open_member
from avaudit.vocab import Decoder, Skip

DECODE_SECONDS = 120.0  # per-video time limit for decoding and onset detection


def measure_quality(clip: Clip, path, start: float, end: float, *, config: ModelConfig, whole: bool = False) -> dict:
    """A decoded clip's quality signals and signature (avaudit.quality.signals) over the part of the window
    the network sees that holds the clip (`shown`: a padded tail is black and silent by the decoder's rule,
    not the clip's), and its file digest (media.digest; `path` a file or a shard's member in memory; `whole`:
    of every byte, for a row stored in a shard file, whose path is not the video's alone). Signals NaN where
    the measurement fails: the clip is still audited."""
    from avaudit.quality.signals import SIGNAL_NAMES, SIGNATURE_BYTES, clip_signals, clip_signature

    shown = clip.duration if clip.padded else None
    try:
        signals = np.asarray(clip_signals(clip.frames, clip.audio, config.sample_rate, shown=shown), np.float32)
        signature = np.asarray(clip_signature(clip.frames, clip.audio, config.sample_rate, shown=shown), np.uint8)
    except Exception:  # noqa: BLE001 - a measurement that fails costs the clip its signals, not its audit
        signals, signature = np.full(len(SIGNAL_NAMES), np.nan, np.float32), np.zeros(SIGNATURE_BYTES, np.uint8)
    return {"signals": signals, "signatures": signature, "digests": clip_digest(path, start, end, whole=whole)}


@contextmanager
def time_limit(seconds: float, path: str):
    """Raise DecodeTimeout in this process after `seconds` (SIGALRM).

    Only a process's main thread can take the signal; DataLoader workers and the CLI decode there.
    A decoder that hangs inside C code holding the GIL delays it until the call returns.
    """
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):
        raise DecodeTimeout(f"{path}: decoding took over {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class ClipItem(NamedTuple):
    """One row's network inputs, or why it has none (`reason` empty when the clip decoded)."""
    index: int  # row position in the dataset
    frames: torch.Tensor  # (T, crop, crop, 3) uint8 RGB; (0, crop, crop, 3) when not decoded
    audio: torch.Tensor  # (samples,) float32 mono; (0,) when not decoded
    onsets: torch.Tensor  # (T,) bool, eq. 3's set O; (0,) when not detected
    padded: bool  # the window ran past the file's end: the rest is black and silent
    seconds: float  # seconds of real content inside the window
    cpu_s: float  # CPU seconds its decoding took
    reason: str  # a Skip reason, or ""
    detail: str  # what went wrong, naming the file
    quality: dict | None = None  # measure_quality's arrays, when the dataset measures them


class ClipDataset(Dataset):
    """Row i of (paths, starts, ends) -> the network's inputs for that clip.

    The columns are numpy arrays, not Python lists, so forked DataLoader workers share them
    instead of copying a big manifest into every process.

    `video`, `sound`, `onsets` = False leave that input out (an empty tensor in its place) for work
    that does not use it: training's audio stage needs no frames, its video stage no sound. The
    clip is still checked as a whole (decode.decode_clip), so the same clips are refused (but for a
    decode error inside the input left out).
    """

    def __init__(self, paths, starts=None, ends=None, *, config: ModelConfig, no_audio: str = "skip",
                 time_limit: float = DECODE_SECONDS, video: bool = True, sound: bool = True, onsets: bool = True,
                 decoder: str = Decoder.pyav, members=None, quality: bool = False):
        self.paths = np.asarray(paths, dtype=str)  # fixed-width: no per-row objects to copy
        n = len(self.paths)
        # (member, offset, size) of rows stored inside shard files (media/sources.py), member '' for files
        self.members = None if members is None else (np.asarray(members[0], dtype=str),
                                                     *(np.asarray(column, dtype=np.int64) for column in members[1:]))
        self.starts = np.full(n, np.nan) if starts is None else np.asarray(starts, dtype=float)
        self.ends = np.full(n, np.nan) if ends is None else np.asarray(ends, dtype=float)
        self.config = config
        if no_audio not in ("skip", "silence"):
            raise UsageError(f"no_audio must be skip or silence, not {no_audio!r}")
        self.no_audio = no_audio
        self.time_limit = time_limit
        self.video, self.sound, self.onsets = video, sound, onsets and sound
        self.decoder = Decoder(decoder)  # media.decode_clip's: what decodes the frames
        self.quality = quality and video and sound  # measure_quality's arrays on each decoded item

    def __len__(self) -> int:
        return len(self.paths)

    def empty_item(self, index: int, reason: str = "", detail: str = "") -> ClipItem:
        c = self.config
        return ClipItem(index, torch.zeros(c.steps if self.video else 0, c.crop, c.crop, 3, dtype=torch.uint8),
                        torch.zeros(c.n_samples if self.sound else 0),
                        torch.zeros(c.steps if self.onsets else 0, dtype=torch.bool), False, 0.0, 0.0, reason, detail)

    def name(self, index: int) -> str:
        """How details name row `index`'s video: its path, or `shard.tar/KEY.mp4` inside a shard."""
        if self.members is None or not self.members[0][index]:
            return str(self.paths[index])
        member, offset, _ = (column[index] for column in self.members)
        return member_name(str(self.paths[index]), str(member), int(offset))

    def crashed(self, index: int, how: str) -> ClipItem:
        """The item of a row whose decoding process died (`how`: "was killed by SIGSEGV", ...)."""
        return self.empty_item(index, Skip.decoder_crashed, f"{self.name(index)}: the decoding process {how}")

    def source(self, index: int):
        """What the decoder opens for row `index`: its path, or its video read into memory from its shard."""
        if self.members is None or not self.members[0][index]:
            return str(self.paths[index])
        member, offset, size = (column[index] for column in self.members)
        return open_member(str(self.paths[index]), str(member), int(offset), int(size))

    def decode(self, index: int, source=None) -> Clip:
        """Row `index`'s clip, from `source` when the caller has it (self.source(index)) already."""
        c = self.config
        path = self.source(index) if source is None else source
        start, end = self.starts[index], self.ends[index]
        return decode_clip(path, steps=c.steps, seconds=c.seconds, resize=c.resize, crop=c.crop,
                           sample_rate=c.sample_rate, start=start, end=end, silence=self.no_audio == "silence",
                           decode_frames=self.video, decode_sound=self.sound, decoder=self.decoder)

    def __getitem__(self, index: int) -> ClipItem:
        started = time.process_time()
        item = self.decode_item(index)
        return item._replace(cpu_s=time.process_time() - started)  # lets the caller share cores

    def decode_item(self, index: int) -> ClipItem:
        c = self.config
        path = self.name(index)
        try:
            with time_limit(self.time_limit, path):
                source = self.source(index)
                clip = self.decode(index, source)
                onsets = (onset_steps(clip.audio, sample_rate=c.sample_rate, steps=c.steps, seconds=c.seconds,
                                      hop_length=c.hop_length) if self.onsets else np.zeros(0, bool))
                quality = (measure_quality(clip, source, self.starts[index], self.ends[index], config=c,
                                           whole=self.members is not None and bool(self.members[0][index]))
                           if self.quality else None)
        except MediaError as err:
            return self.empty_item(index, err.reason, str(err))
        except Exception as err:  # noqa: BLE001 - one bad file must not end a long run
            return self.empty_item(index, Skip.decode_error, f"{path}: {type(err).__name__}: {err}")
        return ClipItem(index, torch.from_numpy(np.ascontiguousarray(clip.frames)), torch.from_numpy(clip.audio),
                        torch.from_numpy(onsets), clip.padded, clip.duration, 0.0, "", "", quality)


def collate(items: list[ClipItem]) -> dict:
    """Stack the clips that decoded; keep the failures' reasons beside them. `quality`: measure_quality's
    arrays stacked, when measured."""
    good = [item for item in items if not item.reason]
    measured = [item.quality for item in good if item.quality is not None]
    batch = {"failed": [(item.index, item.reason, item.detail) for item in items if item.reason],
             "index": [item.index for item in good], "seconds": [item.seconds for item in good],
             "cpu_s": sum(item.cpu_s for item in items),
             "quality": {name: np.stack([q[name] for q in measured]) for name in measured[0]}
             if measured and len(measured) == len(good) else {}}
    for key in ("frames", "audio", "onsets"):
        batch[key] = torch.stack([getattr(item, key) for item in good]) if good else None
    return batch
