"""Should flagged videos vote on their category's call? Planted categories recovered either way, same run.

    python benchmarks/flagged_vote.py [--share 0.4] [--seed 0] [--data sample_videos] [--model M]

Copies a planted set (its truth.csv names each category's group) and replaces a share of every category's
clips with a confounder made from the clip itself: a still picture (its first frame throughout, its sound
kept) or a silent one (its picture kept, its sound muted), half and half. Then audits the copy once and
decides it twice from the same logits: flagged videos left out of their category's vote (bias's default)
and let in (`--flagged-vote`), and prints, for each, the share of planted categories whose group the
audit recovers, per group and overall, beside the clean set's.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import av
import numpy as np
import pandas as pd

from avaudit import commands
from avaudit.media import encode

REPO = Path(__file__).resolve().parent.parent
RATE = 16000


def read_clip(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    """(frames (T, H, W, 3) uint8, mono sound at RATE, fps) of a whole file."""
    with av.open(str(path)) as container:
        fps = int(round(float(container.streams.video[0].average_rate)))
        frames = np.stack([frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)])
    with av.open(str(path)) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
        chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(audio=0)
                  for out in resampler.resample(frame)]
    return frames, np.concatenate(chunks).astype(np.float32), fps


def confound(source: Path, target: Path, kind: str) -> None:
    frames, audio, fps = read_clip(source)
    if kind == "still":
        frames = np.repeat(frames[:1], len(frames), axis=0)
    else:
        audio = np.zeros_like(audio)
    encode.write_clip(target, frames=frames, audio=audio, fps=fps, sample_rate=RATE)


def plant(data: Path, out: Path, share: float, seed: int) -> pd.DataFrame:
    """The confounded copy of `data` in `out` (clean clips linked); returns which clips became what."""
    rng = np.random.default_rng(seed)
    planted = []
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        clips = sorted(folder.glob("*.mp4"))
        chosen = set(rng.choice(len(clips), size=int(round(share * len(clips))), replace=False).tolist())
        (out / folder.name).mkdir(parents=True)
        for i, clip in enumerate(clips):
            target = out / folder.name / clip.name
            if i in chosen:
                kind = ("still", "silent")[len(planted) % 2]
                confound(clip, target, kind)
                planted.append((f"{folder.name}/{clip.stem}", kind))
            else:
                target.symlink_to(clip.resolve())
    return pd.DataFrame(planted, columns=["video_id", "kind"])


def recovered(categories: pd.DataFrame, truth: pd.DataFrame) -> dict[str, float]:
    merged = truth.merge(categories[["category", "group"]], on="category", suffixes=("", "_found"))
    found = merged["group_found"] == merged["group"]
    return {**found.groupby(merged["group"]).mean().round(3).to_dict(), "all": round(float(found.mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO / "sample_videos")
    parser.add_argument("--share", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    truth = pd.read_csv(args.data / "truth.csv")
    options = {"device": "cpu", **({"model": args.model} if args.model else {})}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        planted = plant(args.data, tmp / "data", args.share, args.seed)
        clean = commands.bias(args.data, out=tmp / "clean", **options)
        runs = {"clean set": clean,
                "flagged do not vote (default)": commands.bias(tmp / "data", out=tmp / "default", **options),
                "flagged vote (--flagged-vote)": commands.bias(tmp / "data", out=tmp / "vote", flagged_vote=True,
                                                               **options)}
        flags = runs["flagged do not vote (default)"].tables["bias_videos.csv"].set_index("video_id")["flags"]
        caught = planted.assign(flags=planted["video_id"].map(flags).fillna(""))
        hit = [kind in text.split(";") for kind, text in zip(caught["kind"], caught["flags"])]
        print(f"{len(planted)} of {clean.summary.n_videos} clips confounded (share {args.share:g}, seed {args.seed}): "
              f"{sum(hit)} flagged as planted; clean clips flagged in the clean set: "
              f"{clean.summary.n_flagged['any'] if clean.summary.n_flagged else 'n/a'}")
        for name, run in runs.items():
            print(f"{name:32s} categories recovered: {recovered(run.tables['bias_categories.csv'], truth)}")


if __name__ == "__main__":
    main()
