"""The planted set holds what its truth files say: checked by decoding the written mp4s."""
from __future__ import annotations

import csv
from pathlib import Path

import decord
import numpy as np
import pytest

from avaudit import planted as samples
from avaudit.errors import UsageError
from avaudit.planted import SOUNDS, make_samples

SR, FPS = 16000, 10


@pytest.fixture(scope="module")
def sample_set(tmp_path_factory):
    return make_samples(tmp_path_factory.mktemp("planted") / "set", seed=3, clips_per_category=1,
                        two_event_per_category=1)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _audio(path: Path) -> np.ndarray:
    return decord.AudioReader(str(path), sample_rate=SR, mono=True)[:].asnumpy()[0]


def _tone_ratios(audio: np.ndarray) -> dict[str, float]:
    """Per planted sound: mean power within +-4 % of its tone over the median power nearby
    (about 1.4 for noise alone)."""
    power = np.abs(np.fft.rfft(audio[: 10 * SR])) ** 2
    freqs = np.fft.rfftfreq(10 * SR, 1 / SR)
    ratios = {}
    for name, f in SOUNDS.items():
        band = power[(freqs > 0.96 * f) & (freqs < 1.04 * f)]
        ratios[name] = band.mean() / np.median(power[(freqs > 0.8 * f) & (freqs < 1.25 * f)])
    return ratios


def _saturation(frame: np.ndarray, x: float, y: float) -> float:
    """Mean max-minus-min over RGB in the 3 x 3 patch at (x, y): 0 for the gray background."""
    r, c = round(y), round(x)
    patch = frame[r - 1 : r + 2, c - 1 : c + 2].astype(int)
    return float((patch.max(axis=-1) - patch.min(axis=-1)).mean())


def test_folders_and_counts_match_truth(sample_set):
    truth = _rows(sample_set.truth)
    clips = _rows(sample_set.clips)
    modalities = [r["modality"] for r in truth]
    assert {m: modalities.count(m) for m in set(modalities)} == {
        "audio": 2, "visual": 2, "continuous": 4, "instant": 4, "onset": 4}
    assert all(r["group"] == {"audio": "audio", "visual": "visual"}.get(r["modality"], "audiovisual")
               for r in truth)
    folders = sorted(p.name for p in sample_set.root.iterdir() if p.is_dir())
    assert folders == sorted(r["category"] for r in truth)
    for r in truth:
        expected = 2 if r["modality"] in ("audio", "visual") else 1
        assert len(list((sample_set.root / r["category"]).glob("*.mp4"))) == expected
    on_disk = sorted(p.relative_to(sample_set.root).as_posix() for p in sample_set.root.rglob("*.mp4"))
    assert sorted(r["path"] for r in clips) == on_disk
    assert sample_set.n_clips == len(on_disk) == 20
    assert all(r["path"].split("/")[0] == r["label"] for r in clips)
    assert "--seed 3" in (sample_set.root / "README.md").read_text()


@pytest.mark.slow
def test_every_clip_decodes_to_the_model_window(sample_set):
    for r in _rows(sample_set.clips):
        path = sample_set.root / r["path"]
        video = decord.VideoReader(str(path))
        assert len(video) == 100 and video.get_avg_fps() == pytest.approx(FPS)
        assert video[0].shape == (64, 64, 3)
        assert 160000 <= len(_audio(path)) <= 160000 + 1024  # AAC pads its last frame


def test_steady_clips_carry_only_their_sound_and_sight(sample_set):
    for r in _rows(sample_set.clips):
        if r["modality"] not in ("audio", "visual", "continuous"):
            continue
        ratios = _tone_ratios(_audio(sample_set.root / r["path"]))
        for name, ratio in ratios.items():
            assert (ratio > 100) if name == r["sound"] else (ratio < 3), (r["path"], name, ratio)
        frames = decord.VideoReader(str(sample_set.root / r["path"]))[:].asnumpy()
        sat = [_saturation(f, float(r["object_x"]), float(r["object_y"])) if r["sight"] else
               _saturation(f, 32, 32) for f in frames]
        assert (min(sat) > 80) if r["sight"] else (max(sat) < 30), r["path"]


def test_instant_clip_sound_and_sight_coincide(sample_set):
    rows = [r for r in _rows(sample_set.clips) if r["modality"] == "instant"]
    assert len(rows) == 4
    for r in rows:
        t0 = float(r["event_times"])
        energy = (_audio(sample_set.root / r["path"])[: 10 * SR].reshape(100, -1) ** 2).mean(axis=1)
        assert abs((np.argmax(energy) + 0.5) / FPS - t0) <= 0.5
        video = decord.VideoReader(str(sample_set.root / r["path"]))
        x, y = float(r["object_x"]), float(r["object_y"])
        assert _saturation(video[int(t0 * FPS) + 1].asnumpy(), x, y) > 80
        assert _saturation(video[0].asnumpy(), x, y) < 30  # t0 >= 1 s: nothing planted yet


def test_onset_bursts_and_flashes_match_truth(sample_set):
    rows = [r for r in _rows(sample_set.clips) if r["modality"] == "onset"]
    assert len(rows) == 4
    for r in rows:
        onsets = np.array([float(t) for t in r["event_times"].split(";")])
        assert len(onsets) >= 9 and 0.5 <= np.diff(onsets).min() and np.diff(onsets).max() <= 1.0
        energy = (_audio(sample_set.root / r["path"])[: 10 * SR].reshape(-1, 160) ** 2).mean(axis=1)
        loud = energy > 0.25 * energy.max()
        rises = (np.flatnonzero(loud[1:] & ~loud[:-1]) + 1) * 0.01  # s, 10 ms hops
        if loud[0]:
            rises = np.r_[0.0, rises]
        assert len(rises) == len(onsets)
        assert np.abs(rises - onsets).max() <= 0.02
        frames = decord.VideoReader(str(sample_set.root / r["path"]))[:].asnumpy()
        sat = np.array([_saturation(f, float(r["object_x"]), float(r["object_y"])) for f in frames])
        # a frame shows the sight when its 100 ms step overlaps [onset, onset + 200 ms)
        step_ms, onset_ms = np.arange(100)[:, None] * 100, np.round(onsets * 1000)[None]
        flashing = ((step_ms < onset_ms + 200) & (step_ms + 100 > onset_ms)).any(axis=1)
        assert (sat[flashing] > 80).all() and (sat[~flashing] < 30).all()


def test_missing_truth_points_to_two_event_clips(sample_set):
    truth = {r["category"]: r for r in _rows(sample_set.truth)}
    clips = {r["path"]: r for r in _rows(sample_set.clips)}
    rows = _rows(sample_set.missing_truth)
    assert len(rows) == 4
    assert {r["label"] for r in rows} == {c for c, t in truth.items() if t["modality"] in ("audio", "visual")}
    for r in rows:
        assert (sample_set.root / r["path"]).is_file() and clips[r["path"]]["label"] == r["label"]
        missing = samples.CATEGORIES[[c.name for c in samples.CATEGORIES].index(r["missing_label"])]
        assert {truth[r["label"]]["modality"], missing.modality} == {"audio", "visual"}
        if missing.modality == "audio":  # the unlabelled sound is really there
            assert clips[r["path"]]["sound"] == missing.sound
            assert _tone_ratios(_audio(sample_set.root / r["path"]))[missing.sound] > 100
        else:
            assert clips[r["path"]]["sight"] == missing.sight


@pytest.mark.slow
def test_same_seed_same_truth(sample_set, tmp_path):
    again = tmp_path / "again"
    again.mkdir()  # an existing empty folder is accepted
    make_samples(again, seed=3, clips_per_category=1, two_event_per_category=1)
    for name in ("truth.csv", "clips.csv", "missing_truth.csv"):
        assert (again / name).read_bytes() == (sample_set.root / name).read_bytes()
    plan = dict(clips_per_category=1, two_event_per_category=1, size=64, seconds=10.0)
    assert samples.plan_clips(np.random.default_rng(4), **plan) != samples.plan_clips(np.random.default_rng(3), **plan)


def test_refuses_non_empty_out_and_bad_arguments(tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match=f"^{out} exists and is not an empty folder; give a new or empty one$"):
        make_samples(out)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError, match="exists and is not an empty folder"):
        make_samples(tmp_path / "file")
    with pytest.raises(ValueError, match="clips_per_category must be 1 or more"):
        make_samples(tmp_path / "new", clips_per_category=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "taken"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


@pytest.mark.slow
def test_failed_run_leaves_no_half_set(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("killed while writing the tables")

    monkeypatch.setattr(samples, "_write_tables", fail)
    with pytest.raises(RuntimeError):
        make_samples(tmp_path / "set", clips_per_category=1, two_event_per_category=0)
    assert list(tmp_path.iterdir()) == []
