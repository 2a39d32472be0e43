"""The confounder signals and the duplicate search: still pictures, silent sound, copies and their kinds."""
import numpy as np
import pytest

from avaudit.quality import duplicates, signals
from avaudit.quality.duplicates import band_candidates, bit_similarity, find_duplicates
from avaudit.quality.signals import (
    SIGNAL_NAMES,
    SIGNATURE_BYTES,
    clip_signals,
    clip_signature,
    flags_of,
    picture_hash,
    sound_hash,
)

SR = 16000


def moving_clip(seed: int, *, steps: int = 100, side: int = 40):
    """A textured picture that drifts a pixel a step, over noise at -30 dBFS with a tone."""
    rng = np.random.default_rng(seed)
    world = rng.integers(0, 256, (side, side * 4, 3)).astype(np.uint8)
    frames = np.stack([world[:, k : k + side] for k in range(steps)]) if steps <= 3 * side else None
    t = np.arange(10 * SR) / SR
    audio = 0.03 * rng.standard_normal(len(t)) + 0.2 * np.sin(2 * np.pi * rng.uniform(200, 2000) * t)
    envelope = 1 + 0.8 * np.sin(2 * np.pi * rng.uniform(0.2, 2) * t + rng.uniform(0, 6))
    return frames, (audio * envelope).astype(np.float32)


def test_a_moving_clip_with_sound_is_neither_still_nor_silent():
    frames, audio = moving_clip(0)
    values = dict(zip(SIGNAL_NAMES, clip_signals(frames, audio, SR)))
    assert values["still_fraction"] == 0 and values["silent_fraction"] == 0
    assert values["motion"] > 10 and -20 < values["level_dbfs"] < -5
    assert flags_of(clip_signals(frames, audio, SR)[None]) == [""]


def test_a_picture_that_freezes_halfway_is_half_still_and_a_muted_half_is_half_silent():
    frames, audio = moving_clip(1)
    frames[50:] = frames[50]
    audio[len(audio) // 2 :] = 0
    values = dict(zip(SIGNAL_NAMES, clip_signals(frames, audio, SR)))
    assert values["still_fraction"] == pytest.approx(0.5)
    assert values["silent_fraction"] == pytest.approx(0.5)
    assert flags_of(clip_signals(frames, audio, SR)[None]) == [""]


def test_a_still_picture_over_digital_silence_is_flagged_still_and_silent_at_the_floor_level():
    frames, audio = moving_clip(2)
    values = clip_signals(np.repeat(frames[:1], 100, axis=0), np.zeros_like(audio), SR)
    assert values[SIGNAL_NAMES.index("level_dbfs")] == signals.FLOOR_DBFS
    assert flags_of(values[None]) == ["still;silent"]


def test_sound_below_audibility_is_silent_and_its_level_is_measured():
    _, audio = moving_clip(3)
    quiet = (audio / np.sqrt(np.mean(audio**2)) * 10 ** (-75 / 20)).astype(np.float32)
    frames, _ = moving_clip(3)
    values = dict(zip(SIGNAL_NAMES, clip_signals(frames, quiet, SR)))
    assert values["level_dbfs"] == pytest.approx(-75, abs=0.1)
    assert flags_of(np.array([list(values.values())])) == ["silent"]


def test_flags_read_each_row_and_an_empty_window_counts_as_still_and_silent():
    empty = clip_signals(np.zeros((0, 40, 40, 3), np.uint8), np.zeros(0, np.float32), SR)
    assert flags_of(np.stack([empty, np.array([0.0, 5.0, -20.0, 0.95])])) == ["still;silent", "silent"]


def test_the_picture_hash_survives_a_brightness_change_and_blur_but_not_another_picture():
    frames, _ = moving_clip(4)
    same, blank = picture_hash(frames)
    assert not blank
    brighter = np.clip(frames.astype(int) * 0.8 + 20, 0, 255).astype(np.uint8)
    blurred = ((frames[:, :-1].astype(int) + frames[:, 1:]) // 2).astype(np.uint8)
    other, _ = picture_hash(moving_clip(5)[0])
    assert bit_similarity(same[None], picture_hash(brighter)[0][None])[0] > 0.95
    assert bit_similarity(same[None], picture_hash(blurred)[0][None])[0] > 0.85
    assert bit_similarity(same[None], other[None])[0] < 0.7
    assert picture_hash(np.full((100, 40, 40, 3), 7, np.uint8))[1]


def test_the_sound_fingerprint_survives_a_level_change_but_not_another_sound():
    _, audio = moving_clip(6)
    same, silent = sound_hash(audio, SR)
    assert not silent and sound_hash(np.zeros_like(audio), SR)[1]
    assert bit_similarity(same[None], sound_hash(audio * 0.3, SR)[0][None])[0] > 0.97
    assert bit_similarity(same[None], sound_hash(moving_clip(7)[1], SR)[0][None])[0] < 0.7


def signature_set():
    clips = [moving_clip(k) for k in range(4)]
    sigs = [clip_signature(f, a, SR) for f, a in clips]
    f0, a0 = clips[0]
    sigs.append(clip_signature(f0, a0 * 0.5, SR))  # 4: a copy of 0, quieter
    sigs.append(clip_signature(clips[1][0], a0, SR))  # 5: picture of 1, sound of 0
    sigs.append(clip_signature(f0, clips[2][1], SR))  # 6: picture of 0, sound of 2
    still = np.full((100, 40, 40, 3), 9, np.uint8)
    sigs.append(clip_signature(still, np.zeros_like(a0), SR))  # 7, 8: blank and silent, twice
    sigs.append(clip_signature(still, np.zeros_like(a0), SR))
    return np.stack(sigs)


def test_duplicates_say_which_streams_match_and_whether_they_cross_a_split():
    ids = [f"v{k}" for k in range(9)]
    splits = ["train", "train", "train", "test", "test", "train", "train", "train", "train"]
    found = find_duplicates(ids, signature_set(), None, splits)
    pairs = {(r.video_id, r.duplicate_of): (r.streams, r.same_split) for r in found.itertuples()}
    assert pairs == {("v4", "v0"): ("audiovisual", False), ("v5", "v0"): ("audio", True),
                     ("v5", "v1"): ("visual", True), ("v6", "v0"): ("visual", True), ("v6", "v2"): ("audio", True),
                     ("v6", "v4"): ("visual", False), ("v5", "v4"): ("audio", False)}
    assert list(found.columns) == duplicates.COLUMNS and found["similarity"].between(0.8, 1).all()


def test_byte_identical_files_are_audiovisual_duplicates_even_when_blank_and_silent():
    sigs = signature_set()[[7, 8, 0]]
    found = find_duplicates(["a", "b", "c"], sigs, ["d1", "d1", None], ["train", "test", "test"])
    assert found.to_dict("records") == [{"video_id": "b", "duplicate_of": "a", "streams": "audiovisual",
                                         "similarity": 1.0, "same_split": False}]
    assert find_duplicates(["a", "b", "c"], sigs, None, ["train"] * 3).empty


def test_signatures_of_the_wrong_shape_are_refused():
    with pytest.raises(ValueError, match=f"\\(2, {SIGNATURE_BYTES}\\)"):
        find_duplicates(["a", "b"], np.zeros((2, 10), np.uint8), None, ["x", "x"])


def test_the_band_index_proposes_every_pair_that_shares_a_band_and_a_crowded_band_only_as_a_star(monkeypatch):
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 256, (50, 12), dtype=np.uint8)
    hashes[7] = hashes[3]
    hashes[9, :3] = hashes[20, :3]
    found = {tuple(p) for p in band_candidates(hashes, np.ones(50, bool), band_bytes=3)}
    assert {(3, 7), (9, 20)} <= found and len(found) < 10
    assert (3, 7) not in {tuple(p) for p in band_candidates(hashes, np.arange(50) != 7, band_bytes=3)}
    monkeypatch.setattr(duplicates, "MAX_BUCKET", 3)
    crowd = np.zeros((6, 3), np.uint8)
    assert band_candidates(crowd, np.ones(6, bool), band_bytes=3).tolist() == [[0, 1], [0, 2], [0, 3], [0, 4], [0, 5]]


def test_the_band_index_finds_the_same_duplicates_as_comparing_every_pair(monkeypatch):
    ids = [f"v{k}" for k in range(9)]
    every_pair = find_duplicates(ids, signature_set(), None, ["train"] * 9)
    monkeypatch.setattr(duplicates, "ALL_PAIRS_UP_TO", 0)
    indexed = find_duplicates(ids, signature_set(), None, ["train"] * 9)
    assert len(every_pair) == 7
    assert indexed.sort_values(["video_id", "duplicate_of"]).reset_index(drop=True).equals(
        every_pair.sort_values(["video_id", "duplicate_of"]).reset_index(drop=True))


def test_no_clips_give_an_empty_table_with_the_columns():
    found = find_duplicates([], np.zeros((0, SIGNATURE_BYTES), np.uint8), None, [])
    assert found.empty and list(found.columns) == duplicates.COLUMNS


def short_clip(seed: int, seconds: float):
    """A clip of `seconds`, then the decoder's black and silence to the end of the 10-s window."""
    frames, audio = moving_clip(seed)
    frames[int(seconds * 10) :], audio[int(seconds * SR) :] = 0, 0
    return frames, audio


def test_the_padding_after_a_short_clip_is_neither_a_still_picture_nor_silence():
    frames, audio = short_clip(8, 0.5)
    assert flags_of(clip_signals(frames, audio, SR)[None]) == ["still;silent"]
    assert flags_of(clip_signals(frames, audio, SR, shown=0.5)[None]) == [""]


def test_two_short_clips_do_not_share_their_sound_by_its_padding():
    (f1, a1), (f2, a2) = short_clip(8, 2.0), short_clip(9, 2.0)
    whole = np.stack([clip_signature(f1, a1, SR), clip_signature(f2, a2, SR)])
    shown = np.stack([clip_signature(f1, a1, SR, shown=2.0), clip_signature(f2, a2, SR, shown=2.0)])
    assert find_duplicates(["a", "b"], whole, None, ["x", "x"])["streams"].tolist() == ["audio"]
    assert find_duplicates(["a", "b"], shown, None, ["x", "x"]).empty
