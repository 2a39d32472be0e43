"""Decode throughput: avaudit's media path against a plain PyAV decode-all-then-sample baseline.

    python benchmarks/decode.py [DATA] [--clips N] [--preset small|paper]

Both produce the same thing, the T frames of a clip's 10-s window at the preset's size as a uint8
array. avaudit's path (media.read_frames, PyAV by default): one pass over the window's packets,
converting and resizing (swscale, one context a clip) only the frames a step shows. The baseline
decodes every frame with PyAV, converts each to RGB, samples T of them and resizes those with torch.
Audio is left out of both. Same clips, same process, one after the other.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import av
import numpy as np
import torch
import torch.nn.functional as F

from avaudit.config import load_config
from avaudit.media.decode import frame_times, read_frames

REPO = Path(__file__).resolve().parent.parent


def pyav_baseline(path: str, *, steps: int, seconds: float, resize, crop: int) -> np.ndarray:
    with av.open(path) as container:
        frames, times = [], []
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            times.append(float(frame.time))
    index = np.clip(np.searchsorted(np.asarray(times), frame_times(steps=steps, seconds=seconds) + 1e-6,
                                    side="right") - 1, 0, len(frames) - 1)
    picked = torch.from_numpy(np.stack([frames[i] for i in index])).permute(0, 3, 1, 2).float()
    resized = F.interpolate(picked, size=tuple(resize), mode="bilinear", antialias=True, align_corners=False)
    top, left = (resize[0] - crop) // 2, (resize[1] - crop) // 2
    return resized[:, :, top : top + crop, left : left + crop].round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", nargs="?", type=Path, default=REPO / "sample_videos")
    parser.add_argument("--clips", type=int, default=60)
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    m = load_config(args.preset).model
    paths = sorted(str(p) for p in args.data.glob("*/*.mp4"))[: args.clips]
    window = dict(steps=m.steps, seconds=m.seconds, resize=m.resize, crop=m.crop)
    read_frames(paths[0], **window), pyav_baseline(paths[0], **window)  # warm both up
    timings = {}
    for name, decode in (("avaudit (PyAV, converts only the T frames shown)", lambda p: read_frames(p, **window)[0]),
                         ("baseline (PyAV, decode all, then sample)", lambda p: pyav_baseline(p, **window))):
        started = time.perf_counter()
        for path in paths:
            assert decode(path).shape == (m.steps, m.crop, m.crop, 3)
        timings[name] = len(paths) / (time.perf_counter() - started)
    print(f"{len(paths)} clips from {args.data}, preset {args.preset} ({m.crop}x{m.crop}), one process")
    for name, rate in timings.items():
        print(f"{name:48s} {rate:7.1f} clips/s")
    ours, base = timings.values()
    print(f"ratio avaudit / baseline = {ours / base:.2f}x")


if __name__ == "__main__":
    main()
