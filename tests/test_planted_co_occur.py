"""make-samples --co-occur: a label missing from a whole class (a sound that always co-occurs),
planted and written to missing_truth.csv, so the audits can be scored on it."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

from avaudit import planted
from avaudit.planted import SOUNDS, make_samples, plan_clips, render_clip


@pytest.fixture
def stub_clips(monkeypatch):
    def touch(plan, *, root: Path, **_):
        (root / plan.path).write_bytes(b"")

    monkeypatch.setattr(planted, "_make_clip", touch)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_every_clip_of_a_co_occurring_class_lacks_the_same_label(tmp_path, stub_clips):
    made = make_samples(tmp_path / "set", seed=9, clips_per_category=3, two_event_per_category=1, co_occur=2)
    missing = _rows(made.missing_truth)
    clips = {r["path"]: r for r in _rows(made.clips)}
    for visual, audio in (("visual_red_square", "audio_tone200"), ("visual_cyan_diamond", "audio_tone1450")):
        of_class = sorted(p for p, r in clips.items() if r["label"] == visual)
        assert len(of_class) == 3  # no separate two-event clips: every clip carries the partner
        assert sorted(r["path"] for r in missing if r["label"] == visual) == of_class
        assert {r["missing_label"] for r in missing if r["label"] == visual} == {audio}
        assert {clips[p]["sound"] for p in of_class} == {audio.removeprefix("audio_")}
    # the audio-only categories keep their two-event clips (their partner is a sight, as without --co-occur)
    assert {r["label"] for r in missing} == {"visual_red_square", "visual_cyan_diamond", "audio_tone200",
                                              "audio_tone1450"}
    assert "--co-occur 2" in (made.root / "README.md").read_text()


def test_the_co_occurring_sound_is_in_the_clip():
    plans = plan_clips(np.random.default_rng(1), clips_per_category=1, two_event_per_category=0, size=32,
                       seconds=2.0, co_occur=1)
    plan = next(p for p in plans if p.label == "visual_red_square")
    assert (plan.sound, plan.sight, plan.missing) == ("tone200", "red_square", "audio_tone200")
    _, audio = render_clip(plan, size=32, seconds=2.0, fps=10, sample_rate=16000)
    power = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / 16000)
    near = (freqs > 0.96 * SOUNDS["tone200"]) & (freqs < 1.04 * SOUNDS["tone200"])
    assert power[near].mean() > 100 * np.median(power)


@pytest.mark.parametrize("value", ["3", "-1"])
def test_make_samples_refuses_a_co_occur_out_of_range_in_one_line(tmp_path, value):
    result = cli("make-samples", str(tmp_path / "set"), "--co-occur", value)
    assert result.exit_code == 2
    assert result.output.strip() == f"error: --co-occur must be 0 to 2 (there are 2 visual-only categories), not {value}"
    with pytest.raises(ValueError, match="co_occur must be 0 to 2"):
        make_samples(tmp_path / "set", co_occur=int(value))
    assert not (tmp_path / "set").exists()
