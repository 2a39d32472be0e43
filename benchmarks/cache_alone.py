"""The logit cache alone at scale: a fill of N synthetic clips, then a fresh reader's locate of every key and read
of every block (and its softmax), as an audit reads them. Each N in a process of its own, one after another.

    python benchmarks/cache_alone.py [N ...]        (default: 1,000,000 and 10,000,000 clips)

Prints each phase's CPU seconds (system part), page faults and wall seconds: the cache's own share of
ten_million.py's stages, in minutes rather than the half hour a whole 10M run takes. Keys are random 32-digit
hex (as the cache's SHA-256 keys are), logits (N, 5, 16) float32, added 8,192 at a time; the cache lives in a
temporary folder under $TMPDIR.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from ten_million import FILL_BATCH, cpu_seconds  # noqa: E402  (beside this file)


def phase(n: int, name: str, work):
    before, started = cpu_seconds(), time.perf_counter()
    result = work()
    user, system, faults = (now - then for now, then in zip(cpu_seconds(), before))
    print(f"{n:>12,} clips  {name:7s} CPU {user + system:7.2f} s (system {system:6.2f})  page faults {int(faults):>10,}"
          f"  wall {time.perf_counter() - started:7.2f} s", flush=True)
    return result


def measure(n: int) -> None:
    from avaudit.audits.decisions import softmax
    from avaudit.inference.cache import LogitCache
    from avaudit.inference.pipeline import block_rows

    keys = np.frombuffer(np.random.default_rng(1).bytes(16 * n).hex().encode(), "S32")
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        def fill() -> None:
            cache, rng = LogitCache(tmp, "synthetic", n_classes=16), np.random.default_rng(0)
            for start in range(0, n, FILL_BATCH):
                part = keys[start : start + FILL_BATCH]
                cache.add(part, rng.normal(size=(len(part), 5, 16)).astype(np.float32))

        phase(n, "fill", fill)
        reader = LogitCache(tmp, "synthetic", n_classes=16)
        where = phase(n, "locate", lambda: reader.locate(keys))
        assert where.found.all()
        def read() -> None:
            size = block_rows()
            for start in range(0, n, size):
                softmax(reader.read(where[start : start + size]))

        phase(n, "read", read)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        return measure(int(sys.argv[2]))
    for n in [int(arg) for arg in sys.argv[1:]] or [1_000_000, 10_000_000]:
        subprocess.run([sys.executable, __file__, "--child", str(n)], check=True)


if __name__ == "__main__":
    main()
