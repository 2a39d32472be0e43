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
