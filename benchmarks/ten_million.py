"""Ten million rows on one machine: every stage of an audit of a large Kinetics CSV, its time and peak memory.

    python benchmarks/ten_million.py [N ...] [--upto read|cache|all]
                                     [--skip absent|predict|missing-labels|retarget|report] [--profile DIR]
                                     (default: 1,000,000 and 10,000,000 rows, every stage)

For each N, in a fresh child process (so that each N's peak is its own), writes an N-row Kinetics CSV
(`label,youtube_id,time_start,time_end,split`, labels of three words, quoted as the release quotes
them, start times from 0 to 290 s, three splits) whose media are absent, and measures, stage by stage,
wall time, CPU time (and its system part), page faults, the stage's peak resident memory (VmHWM, reset before
each stage) and what it held after (VmRSS: what the next stages start from):

  read, media absent   read_manifest with no media under --root: every row a `missing file` (the issue's run)
  skipped list         that run's skipped list written as the run writes it (outputs.write_csv)
  read, media found    read_manifest where every file is found (a stand-in Finder: no 10M files on disk)
  cache fill           a cached run: synthetic logits for every row, added as a long audit adds them
  cache lookup         a fresh LogitCache: its index of every row's key, then every row read a block at a
                       time (torch never imported)
  bias, predict, missing-labels, retarget (of the bias run), report
                       the public commands over the cached run: decisions and writing; the manifest
                       and keys of the stages above are reused, so each stage is its own work

The cached run holds logits only, so the audits run with AVAUDIT_SIGNALS=0 (no quality signals, hence no
still/silent flags and no duplicate search: benchmarks/duplicates_scale.py measures that search at scale).
File identities are stood in for (path, size 1, mtime 0) since the files are absent; everything else is
avaudit's own code. The model is the shipped one (16 classes); its classes get three-word names.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = Path(importlib.util.find_spec("avaudit").origin).parent / "weights" / "default.pt"  # the avaudit run
SPLITS = ("train", "validate", "test")
FILL_BATCH = 8192  # cache entries per add() in the cached run (a long audit adds one batch at a time)


def peak_mib(field: str = "VmHWM") -> float:
    """This process's peak resident memory since the last reset_peak (VmHWM), or with field="VmRSS" its resident
    memory now, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> tuple[float, float, int]:
    """This process's CPU time (user, system) and its page faults so far: on a shared machine CPU time is a steadier
    figure than the wall time. The system part is the kernel's (page faults, copies into the page cache), which
    swings with what else runs; the fault count says whether a stage touched more fresh memory or paid more a page."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt + usage.ru_majflt


def reset_peak() -> None:
    """Linux resets VmHWM to the current RSS on writing 5 to clear_refs."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def label_names(classes: list[str]) -> list[str]:
    """Three-word names of the model's classes, as Kinetics' ("playing bass guitar")."""
    return [f"{name.replace('_', ' ')} class {i}" if name.count("_") < 2 else name.replace("_", " ")
            for i, name in enumerate(classes)]


def write_manifest(path: Path, n: int, labels: list[str]) -> None:
    """An N-row Kinetics CSV, written a block at a time."""
    with open(path, "w", newline="") as out:
        out.write("label,youtube_id,time_start,time_end,split\n")
        block = []
        for i in range(n):
            start = (i * 7) % 291
            block.append(f'"{labels[i % len(labels)]}",y{i:010d},{start},{start + 10},{SPLITS[i % 3]}\n')
            if len(block) == 100_000:
                out.write("".join(block))
                block = []
        out.write("".join(block))


class Stages:
    """Each stage's wall time and peak RSS, printed as it ends; with `profile`, each stage's cProfile statistics
    written there (DIR/<rows>-<stage>.prof: `python -m pstats` reads them), to see what grows faster than the rows."""

    def __init__(self, n: int, profile: Path | None = None) -> None:
        self.n, self.rows, self.profile = n, [], profile

    def run(self, name: str, work):
        if self.profile is not None:
            import cProfile

            profiler, plain = cProfile.Profile(), work
            self.profile.mkdir(parents=True, exist_ok=True)

            def work():
                try:
                    return profiler.runcall(plain)
                finally:
                    stage = name.split(" (")[0].replace(", ", "-").replace(" ", "-")
                    profiler.dump_stats(self.profile / f"{self.n}-{stage}.prof")
        reset_peak()
        started, before = time.perf_counter(), cpu_seconds()
        result = work()
        wall, peak, held = time.perf_counter() - started, peak_mib(), peak_mib("VmRSS")
        user, system, faults = (now - then for now, then in zip(cpu_seconds(), before))
        self.rows.append((name, wall, user + system, peak, held, system, faults))
        print(f"{self.n:>12,} rows  {name:28s} {wall:8.2f} s  CPU {user + system:8.2f} s (system {system:6.2f})  "
              f"peak RSS {peak:8.0f} MiB  held after {held:8.0f} MiB  page faults {faults:>10,}", flush=True)
        return result


def stand_ins(manifest_memo: dict, keys_memo: dict) -> None:
    """Absent media found, stat-free file identities, and one read of the manifest and keys for every command."""
    from avaudit.inference import cache, logits, pipeline
    from avaudit.media import manifests, sources

    manifests.Finder.find = lambda self, places, exts: (os.path.join(places[0][0], places[0][1] + exts[0]), "")
    cache._file_identities = lambda paths: {path: f"{path}\0001\0000" for path in paths}
    read, keys = sources.read_data, logits.clip_key_bytes

    def read_once(data, **options):
        if "manifest" not in manifest_memo:
            manifest_memo["manifest"] = read(data, **options)
        return manifest_memo["manifest"]

    def keys_once(paths, starts, ends, **options):
        if len(paths) != len(keys_memo.get("keys", ())):
            keys_memo["keys"] = keys(paths, starts, ends, **options)
        return keys_memo["keys"]

    pipeline.read_data = sources.read_data = read_once
    logits.clip_key_bytes = keys_once


def fill_cache(cache_dir: Path, keys, labels, n_classes: int) -> int:
    """Synthetic logits for every key (its label ahead in most layers); returns the cache's file count."""
    import numpy as np

    from avaudit.inference.cache import LogitCache
    from avaudit.inference.logits import logits_fingerprint

    cache = LogitCache(cache_dir, logits_fingerprint(MODEL), n_classes=n_classes, source=str(MODEL))
    rng = np.random.default_rng(0)
    for start in range(0, len(keys), FILL_BATCH):
        part = slice(start, start + FILL_BATCH)
        block = rng.normal(size=(len(keys[part]), 5, n_classes)).astype(np.float32)
        block[np.arange(len(block)), :, labels[part]] += rng.uniform(0, 4, size=(len(block), 5)).astype(np.float32)
        cache.add(keys[part], block, np.full(len(block), 10.0, np.float32))
    return sum(len(files) for _, _, files in os.walk(cache.dir))


def measure(n: int, tmp: Path, upto: str, skip: frozenset[str] = frozenset(), profile: Path | None = None) -> None:
    import numpy as np

    from avaudit import commands
    from avaudit.inference.cache import LogitCache, model_fingerprint
    from avaudit.inference.logits import checkpoint_info, logits_fingerprint
    from avaudit.inference.pipeline import block_rows
    from avaudit.media.manifests import read_manifest
    from avaudit.outputs import write_csv
    from avaudit.report import build_report

    cache_dir = tmp / "cache"
    # The checkpoint's fields, read in a process of their own: loading them the first time imports torch.
    subprocess.run([sys.executable, "-c", "import sys; from avaudit.inference.logits import checkpoint_info; "
                    "checkpoint_info(sys.argv[1], sys.argv[2])", str(MODEL), str(cache_dir)], check=True)
    fields = checkpoint_info(MODEL, cache_dir)
    fields["classes"] = label_names(fields["classes"])
    (cache_dir / model_fingerprint(MODEL) / "checkpoint.json").write_text(json.dumps(fields))
    classes = fields["classes"]
    data, empty, out = tmp / "kinetics.csv", tmp / "media", tmp / "out"
    empty.mkdir()
    stages = Stages(n, profile)
    stages.run("write the CSV", lambda: write_manifest(data, n, classes))
    if "absent" not in skip:
        absent = stages.run("read, media absent", lambda: read_manifest(data, root=empty))
        assert len(absent.table) == 0 and len(absent.skipped) == n, (len(absent.table), len(absent.skipped))
        stages.run("skipped list", lambda: write_csv(absent.skipped, tmp / "skipped.csv"))
        absent = None  # its memory back before the next stage
    manifest_memo, keys_memo = {}, {}
    stand_ins(manifest_memo, keys_memo)
    from avaudit.inference import logits as logits_module

    manifest = stages.run("read, media found", lambda: read_manifest(data, root=empty))
    assert len(manifest.table) == n and len(manifest.skipped) == 0, (len(manifest.table), len(manifest.skipped))
    if upto == "read":
        return print(json.dumps({"n": n, "stages": stages.rows}), flush=True)
    manifest_memo["manifest"] = manifest
    table = manifest.table
    keys = stages.run("cache keys", lambda: logits_module.clip_key_bytes(
        table["path"], table["start"].to_numpy(), table["end"].to_numpy()))  # as infer_logits gives them
    labels = table["labels"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    files = stages.run("cache fill", lambda: fill_cache(cache_dir, keys, labels, len(classes)))
    labels = None

    def lookup():
        """The index of a fresh reader, then every row read a block at a time, as an audit reads them."""
        cache = LogitCache(cache_dir, logits_fingerprint(MODEL), n_classes=len(classes))
        where = cache.locate(keys)
        assert where.found.all(), f"{(~where.found).sum()} rows not found in the cache"
        for start in range(0, len(keys), block_rows()):
            assert np.isfinite(cache.read(where[start : start + block_rows()])).all()

    stages.run("cache lookup", lookup)
    print(f"{n:>12,} rows  cache files {files:,}", flush=True)
    if upto == "cache":
        return print(json.dumps({"n": n, "cache_files": files, "stages": stages.rows}), flush=True)
    options = dict(root=empty, model=MODEL, cache_dir=cache_dir, device="cpu")
    def cached(run):
        assert run.n_decoded == 0, f"{run.n_decoded:,} rows decoded: the synthetic cache did not serve them"
        return run

    stages.run("bias", lambda: cached(commands.bias(data, out=out / "bias", **options)))
    if "predict" not in skip:
        stages.run("predict", lambda: cached(commands.predict(data, out=out / "predict", **options)))
    if "missing-labels" not in skip:
        stages.run("missing-labels",
                   lambda: cached(commands.missing_labels(data, out=out / "missing-labels", **options)))
    if "retarget" not in skip:
        stages.run("retarget (of the bias run)", lambda: commands.retarget(
            keep=["audiovisual"], bias_run=out / "bias", out=out / "retarget" / "subset.csv", **options))
    if "report" not in skip:
        stages.run("report", lambda: build_report(out))
    print(json.dumps({"n": n, "cache_files": files, "stages": stages.rows}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=int, nargs="*", default=[1_000_000, 10_000_000])
    parser.add_argument("--upto", choices=("read", "cache", "all"), default="all",
                        help="the last group of stages to run: the manifest reads (media absent and found), "
                             "the cache, or all [all]")
    parser.add_argument("--skip", action="append", default=[],
                        choices=("absent", "predict", "missing-labels", "retarget", "report"),
                        help="stages not run (repeatable): the read with media absent and its skipped list, "
                             "predict, missing-labels, retarget or report")
    parser.add_argument("--profile", type=Path, help="write each stage's cProfile statistics in this folder "
                                                     "(profiling slows the stages: not for the table's figures)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        os.environ["AVAUDIT_SIGNALS"] = "0"  # no quality signals in the synthetic cache: see the docstring
        return measure(args.rows[0], args.child, args.upto, frozenset(args.skip), args.profile)
    for n in args.rows:
        with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
            subprocess.run([sys.executable, __file__, str(n), "--child", tmp, "--upto", args.upto,
                            *(f"--skip={stage}" for stage in args.skip),
                            *([f"--profile={args.profile.resolve()}"] if args.profile else [])], check=True)


if __name__ == "__main__":
    main()
