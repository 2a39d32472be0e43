"""The duplicate search at scale: avaudit.quality.duplicates.find_duplicates over synthetic signatures.

    python benchmarks/duplicates_scale.py [--clips 250000] [--categories 300] [--seed 0]

Synthetic signatures in the layout of avaudit.quality.signals: each clip keeps KEPT of its category's
prototype bits and draws the rest afresh (two clips of one category then share 56% of their bits, about what
planted same-category clips share), and 0.2% of clips are blank and 0.2% silent. Planted among them, 500 pairs of
each kind, each copy of its source with a share of its bits flipped as measured on planted confounders
(benchmarks/confounders.py --details): re-encoded copies 3% of picture bits and 10% or 25% of sound bits,
sound-only duplicates the source's sound with 10% or 25% flipped under a fresh picture, picture-only
duplicates the source's picture with 3% flipped over a fresh sound. Above ALL_PAIRS_UP_TO clips the search
compares only the pairs the band index proposes; the figure is its wall time, its peak memory (the
process's maximum resident set, signatures included) and its recall per kind.
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from avaudit.quality.duplicates import find_duplicates
from avaudit.quality.signals import BLANK, PICTURE_BYTES, SIGNATURE_BYTES, SILENT

SOUND = slice(1 + PICTURE_BYTES, SIGNATURE_BYTES)
PICTURE = slice(1, 1 + PICTURE_BYTES)
KEPT = 1 / 4 + 3 / 4 * 1 / 8  # 0.34, a prototype's bits a clip keeps: KEPT**2 + (1 - KEPT**2) / 2 = 0.56 shared


def flipped(rng: np.random.Generator, bytes_: np.ndarray, share: float) -> np.ndarray:
    """`bytes_` (M, B) uint8 with each bit flipped with probability `share`."""
    bits = np.unpackbits(bytes_, axis=1)
    return np.packbits(bits ^ (rng.random(bits.shape) < share), axis=1)


def synthetic(rng: np.random.Generator, n: int, categories: int) -> np.ndarray:
    prototypes = rng.integers(0, 256, (categories, SIGNATURE_BYTES), dtype=np.uint8)
    signatures = np.empty((n, SIGNATURE_BYTES), np.uint8)
    for start in range(0, n, 50_000):
        rows = np.arange(start, min(n, start + 50_000))
        fresh = rng.integers(0, 256, (len(rows), SIGNATURE_BYTES), dtype=np.uint8)
        a, b, c, d, e = (rng.integers(0, 256, (len(rows), SIGNATURE_BYTES), dtype=np.uint8) for _ in range(5))
        keep = (a & b) | (c & d & e)  # each bit set with probability KEPT
        base = prototypes[rng.integers(categories, size=len(rows))]
        signatures[rows] = (base & keep) | (fresh & ~keep)
    signatures[:, 0] = 0
    signatures[rng.random(n) < 0.002, 0] |= BLANK
    signatures[rng.random(n) < 0.002, 0] |= SILENT
    return signatures


def plant(rng: np.random.Generator, signatures: np.ndarray, per_kind: int) -> dict[str, np.ndarray]:
    """Overwrite 4 x per_kind rows with copies of as many other rows; (source, copy) pairs per kind."""
    n = len(signatures)
    chosen = rng.choice(n, 8 * per_kind, replace=False)
    signatures[chosen, 0] = 0
    planted = {}
    kinds = ("reencoded, sound 10%", "reencoded, sound 25%", "audio, 10%", "audio, 25%", "visual")
    share = per_kind * 4 // len(kinds)
    for k, kind in enumerate(kinds):
        sources, copies = chosen[2 * k * share : (2 * k + 1) * share], chosen[(2 * k + 1) * share : (2 * k + 2) * share]
        sound_flip = 0.25 if "25%" in kind else 0.10
        if kind != "audio, 10%" and kind != "audio, 25%":
            signatures[copies, PICTURE] = flipped(rng, signatures[sources, PICTURE], 0.03)
        if kind != "visual":
            signatures[copies, SOUND] = flipped(rng, signatures[sources, SOUND], sound_flip)
        planted[kind] = np.stack([sources, copies], axis=1)
    return planted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=250_000)
    parser.add_argument("--categories", type=int, default=300)
    parser.add_argument("--per-kind", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    signatures = synthetic(rng, args.clips, args.categories)
    planted = plant(rng, signatures, args.per_kind)
    ids = np.arange(args.clips).astype(str)
    splits = np.where(rng.random(args.clips) < 0.2, "test", "train")
    started = time.perf_counter()
    found = find_duplicates(ids, signatures, None, splits)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"{args.clips:,} clips: {len(found):,} pairs found in {seconds:.1f} s, peak memory {peak:.2f} GiB")
    found_pairs = {(int(a), int(b)) for a, b in zip(found["duplicate_of"], found["video_id"])}
    expected = {"reencoded": "audiovisual", "audio": "audio", "visual": "visual"}
    streams = dict(zip(zip(found["duplicate_of"].astype(int), found["video_id"].astype(int)), found["streams"]))
    every = set()
    for kind, pairs in planted.items():
        ordered = {(int(min(a, b)), int(max(a, b))) for a, b in pairs}
        every |= ordered
        right = sum(streams.get(p) == expected[kind.split(",")[0]] for p in ordered)
        print(f"  {kind:<22} recall {right / len(ordered):.3f} ({right}/{len(ordered)})")
    print(f"  pairs not planted: {len(found_pairs - every)}")


if __name__ == "__main__":
    main()
