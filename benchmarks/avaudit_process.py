"""Run one `avaudit` CLI process and measure it: shared by the benchmarks that time whole commands,
with the manifest of many rows over a few clips that the memory benchmarks give it.

Standard library only: Linux counts the RSS a process had when it forked into its children's
peak, so the measuring process must stay small.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path


def measure_avaudit(args: list[str], env: dict, cwd: Path | None = None) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS in MiB, output) of `python -m avaudit ARGS`."""
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "avaudit", *args], cwd=cwd, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    return os.waitstatus_to_exitcode(status), wall, usage.ru_maxrss / 1024, output  # ru_maxrss: KiB on Linux


def run_avaudit(args: list[str], cwd: Path, env: dict) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MiB, output) of `python -m avaudit ARGS`; exits if it fails."""
    code, wall, rss, output = measure_avaudit(args, env, cwd)
    if code != 0:
        raise SystemExit(f"avaudit {' '.join(args)} exited {code}:\n{output}")
    return wall, rss, output


def write_manifest(folder: Path, clips: list[Path], rows: int, labels: list[str] | None = None) -> Path:
    """rows links cycling over clips, and the CSV that lists them under their own names, labelled with
    `labels` (one per clip) [default: each clip's folder]."""
    folder.mkdir()
    lines = ["path,label"]
    for i in range(rows):
        clip = clips[i % len(clips)]
        (folder / f"v{i:07d}.mp4").symlink_to(clip)
        lines.append(f"v{i:07d}.mp4,{clip.parent.name if labels is None else labels[i % len(clips)]}")
    manifest = folder / "list.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
