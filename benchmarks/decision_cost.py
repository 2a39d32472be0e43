"""What the decisions' uncertainty costs: `bias` and `missing-labels` over 100,000 cached videos, the code
of an earlier commit against this tree's, alternating, in one run.

    git archive c54111d | tar -x -C /tmp/old      # the code before the bench's rules
    python benchmarks/decision_cost.py /tmp/old

The dataset and cache are `cached_reaudit.py`'s (its --prepare); each command is one CLI process,
start-up included, run with PYTHONPATH set to each tree in turn, two rounds.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from avaudit_process import run_avaudit

NEW = str(Path(__file__).resolve().parent.parent)
OLD = sys.argv[1]
model = Path(NEW) / "avaudit/weights/default.pt"
with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    subprocess.run([sys.executable, f"{NEW}/benchmarks/cached_reaudit.py", "--prepare", str(tmp), "--videos", "100000",
                    "--model", str(model)], check=True, env={**os.environ, "PYTHONPATH": NEW})
    for round_ in range(2):
        for name, code in (("old", OLD), ("new", NEW)):
            env = {**os.environ, "PYTHONPATH": code, "AVAUDIT_CACHE_DIR": str(tmp / "cache")}
            for command in ("bias", "missing-labels"):
                wall, rss, out = run_avaudit([command, str(tmp / "data"), "--model", str(model), "--device", "cpu",
                                              "--out", str(tmp / f"{name}-{command}")], tmp, env)
                assert "100,000 of 100,000 videos read from the cache" in out, out[-2000:]
                print(f"round {round_} {name} {command:15s} {wall:6.2f} s  peak RSS {rss:6.0f} MiB", flush=True)
