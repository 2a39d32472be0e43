"""Real media (tests/data/realmedia, a copy of shared/realmedia): every file gets the outcome its
README names, under both --no-audio modes: audited, or skipped for exactly the true reason."""
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import cli

REALMEDIA = Path(__file__).parent / "data" / "realmedia"

# file: (reason with --no-audio skip, with --no-audio silence ("" = audited), the window's seconds
# of picture and sound when audited, whether its sound track holds sound)
OUTCOMES = {
    "torchcodec_nasa_13013.mp4": ("", "", 10.0, True),
    "moviepy_chaplin.mp4": ("", "", 9.61, True),
    "mmaction2_tests_data_test.avi": ("", "", 6.56, True),
    "moviepy_fire2.mp4": ("", "", 2.26, True),
    "moviepy_example2.mp4": ("", "", 2.0, True),  # the 2-s boundary: 48 frames at 24 fps, audited
    "moviepy_no_duration.webm": ("", "", 4.86, False),  # its Opus track is digital silence (all zeros)
    "torchcodec_av1_video.mkv": ("no audio stream", "", 5.0, False),
    "mmaction2_demo_demo.mp4": ("no audio stream", "", 10.0, False),
    "moviepy_with-attached-pic.mp3": ("no video stream", "no video stream", None, True),
    "torchcodec_h265_10bits.mp4": ("too short", "too short", None, False),
}
# The edit loop runs --no-audio silence only where it changes the outcome; the slow tier runs every pair.
CASES = [(name, mode) if mode == "skip" or OUTCOMES[name][0] != OUTCOMES[name][1]
         else pytest.param(name, mode, marks=pytest.mark.slow) for name in OUTCOMES for mode in ("skip", "silence")]


def test_the_table_covers_every_file_in_the_folder():
    assert sorted(OUTCOMES) == sorted(p.name for p in REALMEDIA.iterdir() if p.name != "README.md")


@pytest.mark.parametrize("name,mode", CASES)
def test_each_real_file_gets_its_outcome(name, mode):
    """What an audit's decoding process does with the file, at the `paper` preset's frame size."""
    from avaudit.config import ModelConfig
    from avaudit.media.dataset import ClipDataset

    skip_reason, silence_reason, seconds, has_sound = OUTCOMES[name]
    reason = skip_reason if mode == "skip" else silence_reason
    item = ClipDataset([str(REALMEDIA / name)], config=ModelConfig(), no_audio=mode).decode_item(0)
    assert item.reason == reason, item.detail
    if reason:
        assert item.detail.startswith(f"{REALMEDIA / name}: ")
        return
    assert abs(item.seconds - seconds) <= 0.05
    assert item.padded == (seconds < 9.95)
    frames = item.frames.numpy()
    shown = int(item.seconds * 10)  # steps of the window the file fills
    assert (frames[:shown].reshape(shown, -1).max(axis=1) > 0).all(), "a black frame inside the clip"
    audio = item.audio.numpy()[: int(item.seconds * 16000)]
    if has_sound:
        assert np.sqrt(np.mean(audio**2)) > 1e-3
    else:
        assert not audio.any()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["skip", "silence"])
def test_an_audit_of_the_folder_skips_exactly_the_files_it_should(mode, tiny_model, tmp_path):
    """`avaudit predict` over a manifest of all ten files: each skipped for its reason, the rest predicted."""
    import pandas as pd

    manifest = tmp_path / "realmedia.csv"
    manifest.write_text("path,label\n" + "".join(f"{REALMEDIA / name},\n" for name in sorted(OUTCOMES)))
    result = cli("predict", manifest, "--model", tiny_model, "--out", tmp_path / "out", "--device", "cpu",
                 "--workers", "1", "--no-audio", mode, "--allow-outside-root")
    assert result.exit_code == 1, result.output
    skipped = pd.read_csv(tmp_path / "out" / "predict_skipped.csv", keep_default_na=False)
    expected = {name: reasons[mode == "silence"] for name, reasons in OUTCOMES.items()}
    assert dict(zip(skipped["path"].map(lambda p: Path(p).name), skipped["reason"])) == {
        name: reason for name, reason in expected.items() if reason}
    predicted = pd.read_csv(tmp_path / "out" / "predictions.csv", keep_default_na=False)
    assert sorted(predicted["path"].map(lambda p: Path(p).name)) == sorted(
        name for name, reason in expected.items() if not reason)


@pytest.mark.parametrize("name", ["moviepy_chaplin.mp4", "mmaction2_demo_demo.mp4",
                                  *(pytest.param(n, marks=pytest.mark.slow)
                                    for n in ("torchcodec_nasa_13013.mp4", "moviepy_fire2.mp4"))])
def test_pyav_and_decord_show_the_same_frames_of_files_both_read(name, monkeypatch):
    """Step by step the same picture (the resize filters differ by a few levels): the same stream of
    two (nasa), upright where the file says to turn it (fire2 was shot upside down), same times."""
    from avaudit.media import decode

    args = dict(steps=100, seconds=10.0, sample_rate=16000, resize=(128, 171), crop=112, silence=True)
    by_pyav = decode.decode_clip(REALMEDIA / name, **args)
    decord_frames, timed = decode._decord_frames, []
    monkeypatch.setattr(decode, "_decord_frames", lambda *a, **k: timed.append(a[0]) or decord_frames(*a, **k))
    by_decord = decode.decode_clip(REALMEDIA / name, **args, decoder="decord")
    assert timed == [REALMEDIA / name]  # decord's frames, not a fallback's
    difference = np.abs(by_pyav.frames.astype(int) - by_decord.frames.astype(int)).mean(axis=(1, 2, 3))
    assert difference.max() < 5, difference.round(1).tolist()
    assert abs(by_pyav.duration - by_decord.duration) < 0.01


@pytest.mark.parametrize("name", ["moviepy_no_duration.webm", "torchcodec_av1_video.mkv"])
def test_a_stage_without_frames_reads_files_decord_cannot_time(name):
    """Training's audio stage decodes no frame; on a file only PyAV reads, the video is still timed and
    the clip is what a whole decode makes of it (no `decode error`)."""
    from avaudit.media.decode import decode_clip

    args = dict(steps=100, seconds=10.0, sample_rate=16000, resize=(40, 40), crop=40, silence=True)
    whole = decode_clip(REALMEDIA / name, **args)
    sound_only = decode_clip(REALMEDIA / name, **args, decode_frames=False)
    assert sound_only.frames.shape == (0, 40, 40, 3) and np.array_equal(sound_only.audio, whole.audio)
    assert (sound_only.duration, sound_only.padded) == (whole.duration, whole.padded)
