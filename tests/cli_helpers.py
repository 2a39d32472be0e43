"""Running `avaudit` in-process from a test: every argument str()-ed, the output kept for asserts."""
from __future__ import annotations

from typer.testing import CliRunner, Result

from avaudit.cli import app

runner = CliRunner()


def cli(*args, **options) -> Result:
    """`avaudit ARGS` as typed; `options` go to CliRunner.invoke (input=, env=)."""
    return runner.invoke(app, [str(arg) for arg in args], **options)


def invoke(*args, **options) -> Result:
    """An audit command (bias, missing-labels, predict, retarget) on the CPU with no decoding workers, so
    a test's run is the same on every machine."""
    return cli(*args, "--device", "cpu", "--workers", "0", **options)


def bias_alone_and_under_torchrun(data, model, tmp_path, port: int):
    """`avaudit bias DATA` run twice as subprocesses: alone (out tmp_path/single, cache tmp_path/cache_single),
    then by torchrun on two CPU processes (tmp_path/torchrun, tmp_path/cache_torchrun); both results, each
    asserted to have exited 0."""
    import os
    import subprocess
    import sys

    def run(prefix, out, cache):
        env = {**os.environ, "AVAUDIT_CACHE_DIR": str(tmp_path / cache), "OMP_NUM_THREADS": "1"}
        command = [*prefix, "bias", str(data), "--model", str(model), "--out", str(tmp_path / out),
                   "--device", "cpu", "--workers", "0"]
        result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        return result

    single = run([sys.executable, "-m", "avaudit"], "single", "cache_single")
    both = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                "-m", "avaudit"], "torchrun", "cache_torchrun")
    return single, both
