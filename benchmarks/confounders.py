"""Planted confounders found by the quality signals: precision and recall per kind.

    python benchmarks/confounders.py --seed 7 [--clips 10 --per-kind 20] [--keep /tmp/conf7] [--details]
    python benchmarks/confounders.py --set /tmp/conf7          # a set written by make-samples --confounders

Writes a planted set with `make-samples --confounders` (or reads one), decodes every clip of its manifest.csv
as the audit does (avaudit.media.decode.decode_clip with the shipped model's config: 100 frames of 40 x 40,
16 kHz mono), computes avaudit.quality's signals, flags and signatures from the decoded window only, and
scores them against confounders_truth.csv:

- flags: `still` against the planted still pictures, `silent` against the silent and the inaudible ones;
- duplicates, per kind: exact (a found pair with equal sha256), reencoded (audiovisual, different files),
  audio, visual. A found pair is right when it is a planted pair of that kind;
- clean clips flagged: the share of clips not planted still, silent or inaudible that got any flag;
- same-category pairs: found pairs of two clips of one category that were not planted as duplicates.

--details prints, per duplicate kind, the planted pairs' picture and sound similarity beside the highest
similarity of any two same-category clips that are not duplicates (the margin the thresholds sit in);
--backbone adds the same for the shipped network's pooled features z^V and z^A (cosine similarity).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from avaudit.media.decode import decode_clip
from avaudit.model.checkpoint import checkpoint_config, load_checkpoint
from avaudit.options import DEFAULT_MODEL
from avaudit.planted import make_samples
from avaudit.planted_confounders import DUPLICATE_KINDS, FLAG_KINDS
from avaudit.quality.duplicates import bit_similarity, find_duplicates
from avaudit.quality.signals import BLANK, PICTURE_BYTES, SILENT, clip_signals, clip_signature, flags_of


def measure(root: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """manifest.csv with flags, sha256 and the signals of each clip, and (N, SIGNATURE_BYTES) signatures."""
    config = checkpoint_config(load_checkpoint(DEFAULT_MODEL)).model
    clips = pd.read_csv(root / "manifest.csv")
    signals, signatures, digests = [], [], []
    for path in clips["path"]:
        clip = decode_clip(root / path, steps=config.steps, seconds=config.seconds, sample_rate=config.sample_rate,
                           resize=config.resize, crop=config.crop, silence=True)
        signals.append(clip_signals(clip.frames, clip.audio, config.sample_rate, shown=clip.duration))
        signatures.append(clip_signature(clip.frames, clip.audio, config.sample_rate, shown=clip.duration))
        digests.append(hashlib.sha256((root / path).read_bytes()).hexdigest())
    clips["flags"] = flags_of(np.stack(signals))
    clips["digest"] = digests
    clips[["still_fraction", "motion", "level_dbfs", "silent_fraction"]] = np.stack(signals)
    return clips, np.stack(signatures)


def precision_recall(found: set, truth: set) -> str:
    right = len(found & truth)
    precision = right / len(found) if found else 1.0
    recall = right / len(truth) if truth else 1.0
    return f"precision {precision:.3f} ({right}/{len(found)})  recall {recall:.3f} ({right}/{len(truth)})"


def pairs(a, b) -> set[frozenset]:
    return {frozenset(pair) for pair in zip(a, b)}


def score_flags(clips: pd.DataFrame, kind_of: dict[str, str]) -> None:
    flagged = {name: {p for p, flags in zip(clips["path"], clips["flags"]) if name in flags.split(";")}
               for name in ("still", "silent")}
    planted = {kind: {p for p, k in kind_of.items() if k == kind} for kind in FLAG_KINDS}
    print(f"  still      {precision_recall(flagged['still'], planted['still'])}")
    print(f"  silent     {precision_recall(flagged['silent'], planted['silent'] | planted['inaudible'])}"
          "  (silent and inaudible)")
    for kind in ("silent", "inaudible"):
        print(f"  {kind:<10} recall {len(flagged['silent'] & planted[kind]) / len(planted[kind]):.3f}")
    clean = ~clips["path"].map(lambda p: kind_of.get(p) in FLAG_KINDS)
    flagged_clean = clips.loc[clean, "flags"] != ""
    print(f"  clean clips flagged: {flagged_clean.mean():.2%} ({flagged_clean.sum()} of {clean.sum()})")


def score_duplicates(clips: pd.DataFrame, signatures: np.ndarray, truth: pd.DataFrame) -> None:
    found = find_duplicates(clips["path"], signatures, clips["digest"], clips["split"])
    digest = dict(zip(clips["path"], clips["digest"]))
    found["kind"] = [("exact" if digest[a] == digest[b] else "reencoded") if s == "audiovisual" else s
                     for a, b, s in zip(found["video_id"], found["duplicate_of"], found["streams"])]
    found_pairs = {k: pairs(g["video_id"], g["duplicate_of"]) for k, g in found.groupby("kind")}
    planted = truth[truth["kind"].isin(DUPLICATE_KINDS)]
    planted_pairs = {k: pairs(g["path"], g["source"]) for k, g in planted.groupby("kind")}
    for kind in DUPLICATE_KINDS:
        print(f"  {kind:<10} {precision_recall(found_pairs.get(kind, set()), planted_pairs.get(kind, set()))}")
    leaks = planted[planted["split"] != planted["source"].map(dict(zip(clips["path"], clips["split"])))]
    found_leaks = found[~found["same_split"]]
    leak_scores = precision_recall(pairs(found_leaks["video_id"], found_leaks["duplicate_of"]),
                                   pairs(leaks["path"], leaks["source"]))
    print(f"  split leaks: {leak_scores}")
    every_planted = pairs(planted["path"], planted["source"])
    label = dict(zip(clips["path"], clips["label"]))
    wrong = [(a, b) for a, b in zip(found["video_id"], found["duplicate_of"]) if frozenset((a, b)) not in every_planted]
    same = [pair for pair in wrong if label[pair[0]] == label[pair[1]]]
    print(f"  pairs not planted: {len(wrong)}, of them two clips of one category: {len(same)}")
    for pair in wrong[:10]:
        print(f"    {pair}")


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


def details(clips: pd.DataFrame, streams: dict[str, tuple[np.ndarray, np.ndarray, object]],
            truth: pd.DataFrame) -> None:
    """Per stream (name -> rows (N, B), usable (N,), similarity function): the planted pairs' lowest and
    highest similarity beside the highest of two same-category clips that are not duplicates."""
    index = {p: i for i, p in enumerate(clips["path"])}
    planted = truth[truth["kind"].isin(DUPLICATE_KINDS)]
    related = {frozenset(p) for p in zip(planted["path"], planted["source"])}
    for name, (rows, usable, similarity) in streams.items():
        for kind, group in planted.groupby("kind"):
            sims = similarity(rows[group["path"].map(index)], rows[group["source"].map(index)])
            print(f"  {name:<9} {kind:<10} planted pairs: lowest {sims.min():.4f}  highest {sims.max():.4f}")
        best = []
        for label, group in clips.groupby("label"):
            members = np.array([index[p] for p in group["path"] if usable[index[p]]])
            a, b = np.triu_indices(len(members), k=1)
            keep = np.array([frozenset((clips["path"][members[x]], clips["path"][members[y]])) not in related
                             for x, y in zip(a, b)], bool)
            if keep.any():
                best.append((float(similarity(rows[members[a[keep]]], rows[members[b[keep]]]).max()), label))
        best.sort(reverse=True)
        print(f"  {name:<9} two clips of one category, highest: {[(round(s, 4), lab) for s, lab in best[:3]]}")


def pooled_features(root: Path, clips: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The shipped network's pooled z^V and z^A (N, D) of every clip, for comparison with the hashes."""
    import torch

    from avaudit.model.checkpoint import load_network

    network, _, config, _ = load_network(DEFAULT_MODEL)
    video, audio = [], []
    with torch.no_grad():
        for path in clips["path"]:
            clip = decode_clip(root / path, steps=config.model.steps, seconds=config.model.seconds,
                               sample_rate=config.model.sample_rate, resize=config.model.resize,
                               crop=config.model.crop, silence=True)
            z_v, z_a, _ = network.features(torch.from_numpy(clip.frames[None]), torch.from_numpy(clip.audio[None]))
            video.append(z_v.mean(dim=1)[0].numpy())
            audio.append(z_a.mean(dim=1)[0].numpy())
    return np.stack(video), np.stack(audio)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", type=Path, help="a set written by make-samples --confounders")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--clips", type=int, default=10, help="clips per category")
    parser.add_argument("--per-kind", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="write the set here and keep it")
    parser.add_argument("--details", action="store_true")
    parser.add_argument("--backbone", action="store_true", help="with --details: the network's pooled features too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.set
        if root is None:
            root = args.keep or Path(tmp) / "set"
            started = time.perf_counter()
            make_samples(root, seed=args.seed, clips_per_category=args.clips, confounders=args.per_kind)
            print(f"set written in {time.perf_counter() - started:.0f} s (seed {args.seed})", file=sys.stderr)
        started = time.perf_counter()
        clips, signatures = measure(root)
        print(f"decoded and measured in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        truth = pd.read_csv(root / "confounders_truth.csv", keep_default_na=False)
        print(f"{len(clips)} clips, {len(truth)} planted confounders")
        score_flags(clips, dict(zip(truth["path"], truth["kind"])))
        score_duplicates(clips, signatures, truth)
        if args.details:
            content = signatures[:, 0]
            streams = {"picture": (signatures[:, 1 : 1 + PICTURE_BYTES], content & BLANK == 0, bit_similarity),
                       "sound": (signatures[:, 1 + PICTURE_BYTES :], content & SILENT == 0, bit_similarity)}
            if args.backbone:
                video, audio = pooled_features(root, clips)
                streams |= {"z^V": (video, content & BLANK == 0, cosine), "z^A": (audio, content & SILENT == 0, cosine)}
            details(clips, streams, truth)


if __name__ == "__main__":
    main()
