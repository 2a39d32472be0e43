import numpy as np
import pytest
from conftest import write_clip

from avaudit.media.decode import MissingFile, NoAudioStream, decode_clip

ARGS = dict(steps=100, seconds=10.0, sample_rate=16000, resize=(48, 64), crop=48)


def test_ten_second_clip_gives_100_frames_and_160000_samples(clip10):
    clip = decode_clip(clip10, **ARGS)
    assert clip.frames.shape == (100, 48, 48, 3) and clip.frames.dtype == np.uint8
    assert clip.audio.shape == (160000,) and clip.audio.dtype == np.float32
    assert not clip.padded
    # 25 fps source sampled at 10 fps: step k shows source frame floor(2.5 k), whose red is its index.
    red = clip.frames[:, 24, 24, 0].astype(int)
    assert np.abs(red - np.floor(np.arange(100) * 2.5)).max() <= 2
    assert 0.3 < np.abs(clip.audio[16000:32000]).max() < 0.7


def test_short_clip_is_padded_and_says_so(tmp_path):
    clip = decode_clip(write_clip(tmp_path / "four.mp4", seconds=4.0), **ARGS)
    assert clip.frames.shape == (100, 48, 48, 3) and clip.audio.shape == (160000,)
    assert clip.padded and 3.8 < clip.duration <= 4.1
    assert clip.frames[41:].max() == 0 and clip.frames[:39, 24, 24, 0].max() > 0
    assert np.abs(clip.audio[66000:]).max() == 0 and np.abs(clip.audio[:60000]).max() > 0.3


def test_window_start_reads_from_there(clip10):
    clip = decode_clip(clip10, start=2.0, **ARGS)
    assert clip.padded and 7.8 < clip.duration <= 8.1
    assert abs(int(clip.frames[0, 24, 24, 0]) - 50) <= 2


def test_clip_without_audio_is_its_own_error(tmp_path):
    with pytest.raises(NoAudioStream, match="silent.mp4"):
        decode_clip(write_clip(tmp_path / "silent.mp4", seconds=2.0, audio=False), **ARGS)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFile, match="nope.mp4"):
        decode_clip(tmp_path / "nope.mp4", **ARGS)


def test_sizes_that_decord_cannot_resize_to_fall_back_to_our_resize(clip10):
    """decord's in-decoder resize fails at 48 x 48; the frames must come anyway."""
    clip = decode_clip(clip10, **{**ARGS, "resize": (48, 48)})
    assert clip.frames.shape == (100, 48, 48, 3)
    red = clip.frames[:, 24, 24, 0].astype(int)
    assert np.abs(red - np.floor(np.arange(100) * 2.5)).max() <= 2


def test_silence_stands_in_for_a_missing_sound_track_when_asked(tmp_path):
    clip = decode_clip(write_clip(tmp_path / "silent.mp4", seconds=10.0, audio=False), **ARGS, silence=True)
    assert not clip.audio.any() and clip.audio.dtype == np.float32 and clip.audio.shape == (160000,)
    assert clip.frames.shape[0] == ARGS["steps"] and clip.frames.any() and not clip.padded
