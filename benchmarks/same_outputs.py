"""Do two versions of avaudit write the same files? `bias`, `missing-labels`, `predict` and `retarget`
(with DATA, and again `--from` the bias run) on sample_videos/, each version from a temporary git
worktree of its ref, compared byte for byte.

    python benchmarks/same_outputs.py c54111d HEAD        # a ref, or WORKTREE for the checkout as it is

Before comparing, every text file has DATA (this checkout's sample_videos/, which both versions read)
replaced by <DATA>, the version's own output folder by <OUT> and its worktree by <REPO> (the two runs
write to different places), and these run-record fields are left out, since they name where a
version's own files are rather than what it found: `model` (the shipped checkpoint inside each
worktree) and `bias_run` / `out` (paths, already normalised). The
.npz of --export-probs is compared array by array (a zip member carries its write time).
Standard library and numpy only; exits 1 when a file differs.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "sample_videos"
VOLATILE_KEYS = ("model",)  # run-record keys naming a version's own files


def commands(out: Path, cache: Path) -> list[list[str]]:
    shared = ["--cache-dir", str(cache), "--workers", "1"]
    return [["bias", str(DATA), "--out", str(out / "bias"), *shared],
            ["missing-labels", str(DATA), "--out", str(out / "missing-labels"), *shared],
            ["predict", str(DATA), "--out", str(out / "predict"), "--export-probs", str(out / "probs.npz"), *shared],
            ["retarget", str(DATA), "--keep", "audiovisual", "--keep", "audio", "--out",
             str(out / "retarget" / "subset.csv"), *shared],
            ["retarget", "--from", str(out / "bias"), "--keep", "visual", "--by", "video", "--out",
             str(out / "retarget-from" / "subset.csv")]]


def checkout(ref: str, where: Path) -> Path:
    """A worktree of `ref` under `where` (WORKTREE: this checkout as it is, uncommitted edits included)."""
    if ref == "WORKTREE":
        return REPO
    tree = where / "tree"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), ref], check=True,
                   stdout=subprocess.DEVNULL)
    return tree


def run_version(ref: str, where: Path) -> tuple[Path, Path, list[str]]:
    """(output folder, worktree, one line per command with its exit code) of every command run by `ref`."""
    tree = checkout(ref, where)
    out, cache = where / "out", where / "cache"
    env = {**os.environ, "PYTHONPATH": str(tree), "AVAUDIT_CACHE_DIR": str(cache)}
    lines = []
    for args in commands(out, cache):
        done = subprocess.run([sys.executable, "-m", "avaudit", *args], cwd=where, env=env,
                              capture_output=True, text=True)
        lines.append(f"{ref}: avaudit {args[0]} -> exit {done.returncode}")
        if done.returncode not in (0, 1):
            lines.append(done.stdout[-2000:] + done.stderr[-2000:])
    return out, tree, lines


def normalised(path: Path, out: Path, tree: Path) -> bytes:
    data = path.read_bytes()
    if path.suffix not in (".csv", ".json", ".yaml"):
        return data
    text = data.decode("utf-8").replace(str(DATA), "<DATA>").replace(str(out), "<OUT>").replace(str(tree), "<REPO>")
    if path.suffix == ".yaml":
        keys = "|".join(VOLATILE_KEYS)
        text = re.sub(rf"^({keys}): .*$", r"\1: <volatile>", text, flags=re.M)
    return text.encode()


def same_npz(a: Path, b: Path) -> bool:
    import numpy as np

    with np.load(a) as x, np.load(b) as y:
        return sorted(x.files) == sorted(y.files) and all(np.array_equal(x[k], y[k]) for k in x.files)


def compare(first: tuple[Path, Path], second: tuple[Path, Path]) -> list[str]:
    """One line per file that differs or exists in one version only."""
    (out_a, tree_a), (out_b, tree_b) = first, second
    names_a = {p.relative_to(out_a) for p in out_a.rglob("*") if p.is_file()}
    names_b = {p.relative_to(out_b) for p in out_b.rglob("*") if p.is_file()}
    problems = [f"only in the first: {n}" for n in sorted(names_a - names_b)]
    problems += [f"only in the second: {n}" for n in sorted(names_b - names_a)]
    for name in sorted(names_a & names_b):
        a, b = out_a / name, out_b / name
        same = same_npz(a, b) if name.suffix == ".npz" else normalised(a, out_a, tree_a) == normalised(b, out_b, tree_b)
        if not same:
            problems.append(f"differs: {name}")
    print(f"compared {len(names_a & names_b)} files present in both", flush=True)
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--keep", action="store_true", help="leave the outputs in the temporary folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="same_outputs_"))
    trees = []
    try:
        versions = []
        for i, ref in enumerate((args.first, args.second)):
            where = scratch / f"v{i}"
            where.mkdir()
            out, tree, lines = run_version(ref, where)
            trees.append(tree)
            print("\n".join(lines), flush=True)
            versions.append((out, tree))
        problems = compare(*versions)
        print("\n".join(problems) if problems else "all files identical")
        return 1 if problems else 0
    finally:
        for tree in trees:
            if tree != REPO:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        if args.keep:
            print(f"outputs kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
