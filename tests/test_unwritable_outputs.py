"""An output location that takes no file, or a disk that fills, is one line naming the path, never a
traceback; where the location takes no file at all, the line comes before any decoding.

/proc takes no new file, even from root. A full disk is a file size limit (RLIMIT_FSIZE, with SIGXFSZ
ignored, so that a write past it fails with EFBIG as one past a full disk fails with ENOSPC)."""
import resource
import shutil
import signal
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_helpers import cli, invoke


def run(*args, audit: bool = True):
    return invoke(*args) if audit else cli(*args)


@contextmanager
def disk_full_after(size: int):
    """Writes past `size` bytes in any file fail, as on a disk that is full."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


@pytest.fixture
def two_clips(planted, tmp_path, monkeypatch):
    monkeypatch.setenv("AVAUDIT_CACHE_DIR", str(tmp_path / "cache"))
    lines = ["path,label"]
    for clip in sorted(planted.glob("*/*.mp4"))[:2]:
        copy = Path(shutil.copyfile(clip, tmp_path / clip.name))
        lines.append(f"{copy},{clip.parent.name}")
    (tmp_path / "list.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "list.csv"


def one_line(result, start: str) -> None:
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {start}") and len(result.output.splitlines()) == 1, result.output


def test_an_export_where_no_file_can_be_made_is_refused_before_any_decoding(two_clips, tiny_model, tmp_path):
    result = run("predict", two_clips, "--model", tiny_model, "--out", tmp_path / "p",
                    "--export-probs", "/proc/avaudit/probs.npz")
    one_line(result, "cannot write /proc/avaudit/probs.npz: /proc does not take new files (")
    assert not (tmp_path / "p").exists() and not list((tmp_path / "cache").glob("*/entries-*"))
    result = run("bias", two_clips, "--model", tiny_model, "--out", "/proc/avaudit")
    one_line(result, "cannot write /proc/avaudit/bias_videos.csv: /proc does not take new files (")
    assert not list((tmp_path / "cache").glob("*/entries-*"))


def test_a_disk_that_fills_is_one_line_in_predict_report_and_localize(two_clips, tiny_model, tmp_path):
    out = tmp_path / "out"
    assert run("predict", two_clips, "--model", tiny_model, "--out", out).exit_code == 0  # fills the cache
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with disk_full_after(100):
        exported = run("predict", two_clips, "--model", tiny_model, "--out", out,
                          "--export-probs", tmp_path / "probs.npz")
        report = run("report", out, audit=False)
        localized = run("localize", tmp_path / sorted(p.name for p in tmp_path.glob("*.mp4"))[0],
                           "--model", tiny_model, "--out", tmp_path / "loc", audit=False)
    one_line(exported, f"{tmp_path}/probs.npz: writing it failed (File too large); the file there is as it was")
    one_line(report, f"{out}/report.html: writing it failed (File too large); the file there is as it was")
    one_line(localized, f"{tmp_path}/loc: writing the outputs failed (File too large); the files there are as "
                        f"they were")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not (tmp_path / "probs.npz").exists() and not list((tmp_path / "loc").iterdir())


def test_a_write_that_fails_is_an_output_error_naming_the_file_and_the_reason_once(tmp_path):
    from avaudit.outputs import OutputError, atomic_write_bytes, output_set

    (tmp_path / "kept.csv").write_text("before\n")
    with disk_full_after(100), pytest.raises(OutputError) as error:
        atomic_write_bytes(tmp_path / "kept.csv", b"x" * 1000)
    assert str(error.value) == f"{tmp_path}/kept.csv: writing it failed (File too large); the file there is as it was"
    assert isinstance(error.value, OSError)  # a writer that goes on without its file (the cache) still catches it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv"] and (tmp_path / "kept.csv").read_text() == "before\n"
    with disk_full_after(100), pytest.raises(OutputError) as error:
        with output_set(tmp_path / "set", record="x_run.yaml") as staged:
            atomic_write_bytes(staged / "x.csv", b"x" * 1000)
    assert str(error.value) == (f"{tmp_path}/set: writing the outputs failed (File too large); the files there are "
                                f"as they were")
    with pytest.raises(OutputError) as error:
        atomic_write_bytes(Path("/proc/avaudit/x.csv"), b"x")
    assert str(error.value).startswith("/proc/avaudit/x.csv: cannot write it (")
