"""make-samples speaks to a person: what it wrote, its options by their flags, progress over its
clips, and one line where the output location cannot be written. Clips are stubbed (an empty file
each): what is checked here is the command around them; tests/test_planted.py checks the clips."""
import errno
from pathlib import Path

import pytest
from cli_helpers import cli

from avaudit import planted
from avaudit.errors import AvauditError


@pytest.fixture
def stub_clips(monkeypatch):
    def touch(plan, *, root: Path, **_):
        (root / plan.path).write_bytes(b"")

    monkeypatch.setattr(planted, "_make_clip", touch)


def test_make_samples_says_what_it_wrote_in_words(tmp_path, stub_clips):
    result = cli("make-samples", str(tmp_path / "set"), "--clips", "1", "--two-event", "0")
    assert result.exit_code == 0, result.output
    last = result.output.splitlines()[-1]
    assert last == (f"planted set written to {tmp_path / 'set'}: 16 clips in 16 category folders; the planted truth "
                    f"is in truth.csv, missing_truth.csv and clips.csv")
    assert "writing clips" in result.output and "SampleSet" not in result.output


@pytest.mark.parametrize("flags", [["--clips", "0"], ["--two-event", "-1"]])
def test_make_samples_names_its_flags_when_it_refuses_them(tmp_path, flags):
    result = cli("make-samples", str(tmp_path / "set"), *flags)
    clips, two_event = ("0", "2") if flags[0] == "--clips" else ("20", "-1")
    assert result.exit_code == 2
    assert result.output.strip() == f"error: --clips must be 1 or more and --two-event 0 or more, not {clips} and {two_event}"
    assert not (tmp_path / "set").exists()


def test_make_samples_reports_each_clip_it_writes(tmp_path, stub_clips):
    heard = []
    result = planted.make_samples(tmp_path / "set", clips_per_category=1, two_event_per_category=1,
                                  on_event=lambda kind, info: heard.append((kind, info)))
    assert heard[0] == ("start", {"total": result.n_clips})
    advances = [info for kind, info in heard[1:] if kind == "advance"]
    assert len(advances) == len(heard) - 1 == result.n_clips and all(a["n"] == 1 for a in advances)


def test_an_output_location_that_cannot_be_written_is_one_line(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("x")
    result = cli("make-samples", str(tmp_path / "file" / "set"))
    assert result.exit_code == 2 and result.output.startswith(f"error: cannot write the sample set to {tmp_path / 'file' / 'set'}: ")
    assert len(result.output.strip().splitlines()) == 1

    def full(plan, **_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(planted, "_make_clip", full)
    with pytest.raises(AvauditError) as err:
        planted.make_samples(tmp_path / "set", clips_per_category=1, two_event_per_category=0)
    assert str(err.value) == f"cannot write the sample set to {tmp_path / 'set'}: No space left on device"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]  # no half set left behind
