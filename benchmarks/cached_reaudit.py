"""A cached re-audit: `bias`, `missing-labels` and `retarget` over 100,000 videos already in the cache.

    python benchmarks/cached_reaudit.py [--videos N] [--classes C] [--model M]
    python benchmarks/cached_reaudit.py --classes 400 --against c54111d [--rounds 2]

Builds a folder dataset of N videos (hard links to one sample clip, so each is its own file with
its own cache key) in the model's categories, fills a fresh logit cache with synthetic logits for
every one of them, then runs each command as a user would, one CLI process at a time:

    avaudit bias DATA
    avaudit missing-labels DATA
    avaudit retarget DATA --keep audiovisual --compare ks32   (audits DATA again, from the cache)
    avaudit retarget --keep audiovisual --compare ks32        (reads the bias run's tables instead)

and prints each one's wall time (interpreter start-up included), videos/s, its ratio to the
20,000 videos/s target, and its peak resident memory. `--classes C` audits with a copy of the
checkpoint whose heads name C categories (`class000`, ...; the logits come from the cache, so the
weights are never run). `--against REF` times `bias` and `missing-labels` side by side instead: the
code of git ref REF (extracted with `git archive`) and this tree's, alternating, `--rounds` times,
on the same data and cache, and prints each command's best wall and CPU time per version and their
ratios (CPU time, the command's own, is what a machine shared with other work measures best).
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from avaudit_process import run_avaudit

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "avaudit" / "weights" / "default.pt"
TARGET = 20_000  # videos/s
LINKS_PER_FILE = 50_000
CHUNK = 10_000  # cache entries per chunk file, as a long first audit leaves them (many batches)


def read_all_from_cache(output: str, n: int) -> bool:
    """The CLI's count line says all `n` videos came from the cache ("100,000 of 100,000 videos read from
    the cache", with thousands separators, wherever a narrow terminal wrapped it)."""
    return f"{n:,} of {n:,} video{'' if n == 1 else 's'} read from the cache" in " ".join(output.split())


def build_dataset(root: Path, classes: list[str], n: int) -> Path:
    """N hard links to one clip, spread over the categories' folders."""
    clip = (REPO / "sample_videos").glob("*/*.mp4").__next__().read_bytes()
    data = root / "data"
    for i in range(n):
        if i % LINKS_PER_FILE == 0:  # file systems cap a file's links (ext4: 65,000)
            source = root / f"source{i // LINKS_PER_FILE}.mp4"
            source.write_bytes(clip)  # on this file system, so it can be linked
        folder = data / classes[i % len(classes)]
        if i < len(classes):
            folder.mkdir(parents=True)
        os.link(source, folder / f"v{i:07d}.mp4")
    return data


def with_classes(model: Path, n_classes: int, out: Path) -> Path:
    """A copy of `model` whose five heads name `n_classes` categories (small random weights)."""
    import torch

    data = torch.load(model, map_location="cpu", weights_only=True)
    data["classes"] = [f"class{i:03d}" for i in range(n_classes)]
    generator = torch.Generator().manual_seed(0)
    for name, tensor in list(data["model"].items()):
        if name.startswith("heads."):
            shape = (n_classes, *tensor.shape[1:])
            data["model"][name] = 0.01 * torch.randn(shape, generator=generator) if tensor.dim() > 1 \
                else torch.zeros(shape)
    torch.save(data, out)
    return out


def synthetic_quality(n: int, rng) -> dict:
    """The quality arrays a first audit caches beside the logits (inference.logits.quality_arrays) for n clean
    clips of their own: moving, audible, each signature and file digest unlike any other's."""
    import numpy as np

    from avaudit.inference.logits import quality_arrays
    from avaudit.quality.signals import SIGNAL_NAMES

    shapes = quality_arrays()
    clean = {"still_fraction": 0.0, "motion": 8.0, "level_dbfs": -20.0, "silent_fraction": 0.0}
    signatures = rng.integers(0, 256, (n, *shapes["signatures"][0]), dtype=np.uint8)
    signatures[:, 0] = 0  # neither stream blank
    return {"signals": np.tile(np.array([clean[name] for name in SIGNAL_NAMES], np.float32), (n, 1)),
            "signatures": signatures,
            "digests": rng.integers(1, 256, (n, *shapes["digests"][0]), dtype=np.uint8)}


def prepare(root: Path, model: Path, n: int, seed: int = 0, cache_dir: Path | None = None) -> None:
    """The dataset, and the cache a first audit of it would leave: synthetic logits for every
    video (its own category ahead in most layers, noise elsewhere), their quality arrays
    (synthetic_quality), the duplicate pairs among them and the checkpoint's fields.

    Written by the avaudit on the import path, into `cache_dir` (default root/cache): `--against` runs
    it once more under REF's code, so each version reads a cache in its own layout, with the same logits.
    The dataset is built once and reused."""
    import numpy as np

    from avaudit.inference.cache import LogitCache, clip_keys
    from avaudit.inference.logits import checkpoint_info
    from avaudit.media.manifests import read_manifest

    try:
        from avaudit.flags import measure_flags
        from avaudit.inference.logits import logits_fingerprint as fingerprint
    except ImportError:  # an avaudit from before the decoder and quality arrays: the checkpoint's own name
        from avaudit.inference.cache import model_fingerprint as fingerprint
        measure_flags = None
    cache_dir = cache_dir or root / "cache"
    classes = checkpoint_info(model, cache_dir)["classes"]
    data = root / "data" if (root / "data").exists() else build_dataset(root, classes, n)
    table = read_manifest(data).table
    keys = clip_keys(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy())
    labels = table["labels"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    rng = np.random.default_rng(seed)
    quality = synthetic_quality(len(table), np.random.default_rng(seed + 1)) if measure_flags else {}
    cache = LogitCache(cache_dir, fingerprint(model), n_classes=len(classes), source=str(model))
    for start in range(0, len(table), CHUNK):  # a chunk at a time: 100,000 x 5 x 400 logits are 0.8 GB
        rows = np.arange(start, min(start + CHUNK, len(table)))
        logits = rng.normal(size=(len(rows), 5, len(classes))).astype(np.float32)
        boost = rng.uniform(0, 4, size=(len(rows), 5)).astype(np.float32)
        logits[np.arange(len(rows))[:, None], np.arange(5)[None], labels[rows][:, None]] += boost
        cache.add(keys[rows], logits, np.full(len(rows), 10.0, np.float32),
                  **{name: values[rows] for name, values in quality.items()})
    if measure_flags:  # a first audit also leaves the duplicate pairs it found (flags.find_copies' memo)
        measure_flags(table, np.arange(len(table)), quality, memo=cache_dir / "duplicates")


def side_by_side(ref: str, tmp: Path, model: Path, videos: int, rounds: int) -> None:
    """`bias` and `missing-labels` by REF's code and this tree's, alternating; best time of each, and the ratio."""
    old = tmp / "old-tree"
    old.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive, check=True)
    trees = {ref: old, "this tree": REPO}
    # REF's cache, with the same logits in REF's own layout (a cache's files changed between versions)
    subprocess.run([sys.executable, __file__, "--prepare", str(tmp), "--videos", str(videos), "--model", str(model),
                    "--cache-dir", str(tmp / "cache-ref")], check=True, env={**os.environ, "PYTHONPATH": str(old)})
    caches = {ref: tmp / "cache-ref", "this tree": tmp / "cache"}
    best = {}
    print(f"{videos:,} videos, all in the cache, model {model.name}; {ref} against this tree, {rounds} rounds, "
          f"one CLI process per command")
    for round_ in range(rounds):
        for name, tree in trees.items():
            env = {**os.environ, "PYTHONPATH": str(tree), "AVAUDIT_CACHE_DIR": str(caches[name])}
            for command in ("bias", "missing-labels"):
                out = tmp / f"out-{round_}-{'old' if tree == old else 'new'}-{command}"
                before = children_cpu()
                wall, rss, output = run_avaudit([command, str(tmp / "data"), "--model", str(model), "--device", "cpu",
                                                 "--out", str(out)], tmp, env)
                cpu = children_cpu() - before
                if not read_all_from_cache(output, videos):
                    raise SystemExit(f"{command} ({name}) did not read every video from the cache:\n{output}")
                for what, seconds in (("wall", wall), ("cpu", cpu)):
                    best[name, command, what] = min(seconds, best.get((name, command, what), seconds))
                print(f"round {round_} {name:12s} {command:15s} {wall:6.2f} s wall {cpu:6.2f} s CPU  "
                      f"peak RSS {rss:6.0f} MiB", flush=True)
    for command in ("bias", "missing-labels"):
        print(f"{command:15s} best of each, {ref} -> this tree: " + ", ".join(
            f"{best[ref, command, what]:.2f} -> {best['this tree', command, what]:.2f} s {what} "
            f"({best['this tree', command, what] / best[ref, command, what]:.2f}x)" for what in ("wall", "cpu")))


def children_cpu() -> float:
    """User + system CPU seconds of every child waited for so far (a command's own: the difference)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=int, default=100_000)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--classes", type=int, help="categories of the audited model [default: the model's]")
    parser.add_argument("--against", metavar="REF", help="time bias and missing-labels against git ref REF's code")
    parser.add_argument("--rounds", type=int, default=2, help="with --against: runs of each command per version")
    parser.add_argument("--prepare", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.prepare:
        model = args.model
        if args.classes:  # the copy is made once: REF's run reuses it
            copy = args.prepare / "model.pt"
            model = copy if copy.exists() else with_classes(args.model, args.classes, copy)
        return prepare(args.prepare, model, args.videos, cache_dir=args.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # Prepared in a child: Linux counts the RSS a process had when it forked into its
        # children's peak, so this process stays small (stdlib only) while it measures.
        subprocess.run([sys.executable, __file__, "--prepare", str(tmp), "--videos", str(args.videos),
                        "--model", str(args.model), *(["--classes", str(args.classes)] if args.classes else [])],
                       check=True)
        model = tmp / "model.pt" if args.classes else args.model
        if args.against:
            return side_by_side(args.against, tmp, model, args.videos, args.rounds)
        data = tmp / "data"
        env = {**os.environ, "AVAUDIT_CACHE_DIR": str(tmp / "cache")}
        common = ["--model", str(model), "--device", "cpu"]
        commands = {"bias": ["bias", str(data), *common],
                    "missing-labels": ["missing-labels", str(data), *common],
                    "retarget": ["retarget", str(data), "--keep", "audiovisual", "--compare", "ks32", *common],
                    "retarget (of the bias run)": ["retarget", "--keep", "audiovisual", "--compare", "ks32"]}
        print(f"{args.videos} videos, all in the cache ({CHUNK} per chunk), model {model.name}, "
              f"one CLI process per command")
        for name, command in commands.items():
            wall, rss, output = run_avaudit(command, tmp, env)
            if not name.startswith("retarget") and not read_all_from_cache(output, args.videos):
                raise SystemExit(f"{name} did not read every video from the cache:\n{output}")
            rate = args.videos / wall
            print(f"{name:27s} {wall:6.2f} s  {rate:9,.0f} videos/s  {rate / TARGET:5.2f}x the {TARGET:,}/s "
                  f"target  peak RSS {rss:6.0f} MiB")


if __name__ == "__main__":
    main()
