import numpy as np
import pytest

from avaudit.media.decode import MissingFile, NoAudioStream, decode_clip
from conftest import write_clip

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


def test_a_stage_decodes_only_the_modality_it_uses(clip10, tmp_path):
    """Training's audio stage leaves frames undecoded, its video stage the sound; what is decoded is
    what a whole decode gives, and a clip is refused for the same reasons either way."""
    from avaudit.config import ModelConfig
    from avaudit.media.dataset import ClipDataset
    from avaudit.media.decode import TooShort

    whole = decode_clip(clip10, **ARGS)
    sound_only = decode_clip(clip10, **ARGS, video=False)
    assert sound_only.frames.shape == (0, 48, 48, 3) and np.array_equal(sound_only.audio, whole.audio)
    frames_only = decode_clip(clip10, **ARGS, sound=False)
    assert frames_only.audio.shape == (0,) and np.array_equal(frames_only.frames, whole.frames)
    assert not sound_only.padded and not frames_only.padded

    silent = write_clip(tmp_path / "silent.mp4", seconds=3.0, audio=False)
    with pytest.raises(NoAudioStream, match="silent.mp4"):
        decode_clip(silent, **ARGS, sound=False)  # checked from the header, nothing decoded
    assert decode_clip(silent, **ARGS, sound=False, silence=True).audio.shape == (0,)
    with pytest.raises(TooShort):
        decode_clip(write_clip(tmp_path / "one.mp4", seconds=1.0), **ARGS, video=False)

    config = ModelConfig(resize=(48, 64), crop=48)
    paths = [str(clip10), str(silent)]
    audio_stage = ClipDataset(paths, config=config, video=False, onsets=False)
    item = audio_stage[0]
    assert item.frames.shape == (0, 48, 48, 3) and item.audio.shape == (160000,) and item.onsets.shape == (0,)
    assert audio_stage[1].reason == "no audio stream" and audio_stage[1].audio.shape == (160000,)
    video_stage = ClipDataset(paths, config=config, sound=False)
    item = video_stage[0]
    assert item.frames.shape == (100, 48, 48, 3) and item.audio.shape == (0,) and item.onsets.shape == (0,)
    assert video_stage[1].reason == "no audio stream"
    full = ClipDataset(paths, config=config)[0]
    assert full.onsets.shape == (100,) and np.array_equal(full.frames, video_stage[0].frames)
