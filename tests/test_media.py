import numpy as np
import pytest
from conftest import write_clip

from avaudit.media.decode import MissingFile, NoAudioStream, decode_clip, thumbnail_frames

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
    clip = decode_clip(clip10, **{**ARGS, "resize": (48, 48)}, decoder="decord")
    assert clip.frames.shape == (100, 48, 48, 3)
    red = clip.frames[:, 24, 24, 0].astype(int)
    assert np.abs(red - np.floor(np.arange(100) * 2.5)).max() <= 2


def test_silence_stands_in_for_a_missing_sound_track_when_asked(tmp_path):
    clip = decode_clip(write_clip(tmp_path / "silent.mp4", seconds=10.0, audio=False), **ARGS, silence=True)
    assert not clip.audio.any() and clip.audio.dtype == np.float32 and clip.audio.shape == (160000,)
    assert clip.frames.shape[0] == ARGS["steps"] and clip.frames.any() and not clip.padded


# --- files decord misreads (tests/oddmedia.py writes them)

def reds(clip) -> np.ndarray:
    return clip.frames[:, 24, 24, 0].astype(int)


def test_a_clip_cut_at_a_non_key_frame_starts_at_the_cut(tmp_path):
    """`ffmpeg -ss 2.5 -c copy` keeps the lead-in from the key frame before 2.5 s behind an edit list;
    decord counted those frames and called them broken (a decode error past its 5% fault tolerance)."""
    from oddmedia import red, trim_by_copy, write_av

    source = write_av(tmp_path / "source.mp4", seconds=11.5, gop=250)  # one key frame, at 0
    clip = decode_clip(trim_by_copy(source, tmp_path / "cut.mp4", 2.5), **ARGS)
    assert np.abs(reds(clip)[:90] - red(25 + np.arange(90))).max() <= 2  # step k: source frame 25 + k
    assert clip.frames[91:].max() == 0
    assert clip.padded and 8.8 <= clip.duration <= 9.05


def test_a_video_stream_that_starts_4_s_after_its_sound_stays_4_s_late(tmp_path):
    from oddmedia import red, write_av

    clip = decode_clip(write_av(tmp_path / "late.mp4", seconds=6.0, video_start=4.0), **ARGS)
    assert clip.frames[:40].max() == 0  # no picture yet
    assert np.abs(reds(clip)[40:] - red(np.arange(60))).max() <= 2
    assert 0.45 < np.abs(clip.audio[: 16000]).max() < 0.55  # the sound from the first second on
    assert np.abs(clip.audio[int(6.1 * 16000) :]).max() == 0  # and for its 6 s only
    assert clip.padded and 1.9 <= clip.duration <= 2.1  # picture and sound together: 4 s to 6 s


def test_an_avi_whose_header_says_0_fps_is_timed_by_its_codec(tmp_path):
    """FFmpeg reads a 0-fps AVI header as 25 fps; the MPEG-4 stream itself says 10."""
    import av
    from oddmedia import red, write_av, zero_frame_rate

    path = zero_frame_rate(write_av(tmp_path / "zero.avi", seconds=6.0, codec="mpeg4", audio_codec="mp3"))
    with av.open(str(path)) as container:
        assert container.streams.video[0].average_rate == 25  # what decord timed it by
    clip = decode_clip(path, **ARGS)
    assert np.abs(reds(clip)[:60] - red(np.arange(60))).max() <= 3
    assert clip.frames[61:].max() == 0 and 5.9 <= clip.duration <= 6.1


def test_h264_in_avi_has_no_presentation_times_and_is_timed_by_frame_count(tmp_path):
    """decord read every frame time of this file as NOPTS and called it 0.00 s of video (too short)."""
    from oddmedia import red, write_av

    clip = decode_clip(write_av(tmp_path / "h264.avi", seconds=6.0, audio_codec="mp3"), **ARGS)
    assert np.abs(reds(clip)[:60] - red(np.arange(60))).max() <= 2
    assert clip.frames[61:].max() == 0 and 5.9 <= clip.duration <= 6.1


@pytest.mark.slow
def test_eight_channels_are_averaged_not_summed(tmp_path):
    """The same 0.5 tone on all 8 channels of a 7.1 track is a 0.5 tone (decord gave 2.2)."""
    from oddmedia import write_av

    clip = decode_clip(write_av(tmp_path / "surround.mp4", seconds=10.0, channels=8, layout="7.1"), **ARGS)
    assert 0.4 < np.abs(clip.audio).max() < 0.55


def test_sound_is_placed_to_the_sample(tmp_path):
    """A click at 1 s in a 44.1 kHz track is at sample 16000 of the 16 kHz window (decord: 16017)."""
    from oddmedia import write_click

    clip = decode_clip(write_click(tmp_path / "click.mkv"), **{**ARGS, "min_seconds": 1.0})
    assert np.argmax(np.abs(clip.audio)) == 16000


@pytest.mark.parametrize("start", [0.0, 2.0])
def test_pyav_gives_the_frames_and_sound_decord_gives(clip10, monkeypatch, start):
    """The two decoders keep one contract: same sampling, window, sound and duration."""
    from avaudit.media import decode

    by_pyav = decode_clip(clip10, start=start, **ARGS)
    by_decord = decode_clip(clip10, start=start, **ARGS, decoder="decord")
    monkeypatch.setattr(decode, "_open_video", None)  # the default decoder never touches decord
    assert np.array_equal(decode_clip(clip10, start=start, **ARGS).frames, by_pyav.frames)
    shown = int((10 - start) * 10)  # steps before the 10-s file ends
    assert np.abs(reds(by_pyav)[:shown] - np.floor(start * 25 + np.arange(shown) * 2.5)).max() <= 2
    assert np.abs(by_pyav.frames.astype(int) - by_decord.frames.astype(int)).max() <= 2
    # after a seek, decord's run reads the sound from the audio stream's own seek point and PyAV's from the
    # video key frame's: AAC's overlapping windows then differ in the last bits
    assert np.abs(by_pyav.audio - by_decord.audio).max() < 1e-4  # of a tone of amplitude 0.5
    assert (by_pyav.padded, round(by_pyav.duration, 2)) == (by_decord.padded, round(by_decord.duration, 2))


@pytest.mark.slow
def test_a_3_s_video_with_4_hours_of_sound_reads_only_the_window(tmp_path):
    """decord decoded the whole track at once: 57 s and 3.6 GB peak for this file."""
    import subprocess
    import sys

    from oddmedia import write_long_sound

    path = write_long_sound(tmp_path / "long.mp4", video_seconds=3.0, sound_hours=4.0)
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking pytest process through exec.
    script = ("import re, sys; from avaudit.media.decode import decode_clip\n"
              f"clip = decode_clip(sys.argv[1], **{ARGS!r})\n"
              "peak_kb = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
              "print(clip.padded, round(clip.duration, 1), round(float(abs(clip.audio[:32000]).max()), 1),"
              " peak_kb // 1024)")
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    padded, duration, loudness, peak_mb = done.stdout.split()
    assert (padded, duration, loudness) == ("True", "3.0", "0.5")
    assert int(peak_mb) < 400, f"{peak_mb} MB peak"


def test_a_stage_decodes_only_the_modality_it_uses(clip10, tmp_path):
    """Training's audio stage leaves frames undecoded, its video stage the sound; what is decoded is
    what a whole decode gives, and a clip is refused for the same reasons either way."""
    from avaudit.config import ModelConfig
    from avaudit.media.dataset import ClipDataset
    from avaudit.media.decode import TooShort

    whole = decode_clip(clip10, **ARGS)
    sound_only = decode_clip(clip10, **ARGS, decode_frames=False)
    assert sound_only.frames.shape == (0, 48, 48, 3) and np.array_equal(sound_only.audio, whole.audio)
    frames_only = decode_clip(clip10, **ARGS, decode_sound=False)
    assert frames_only.audio.shape == (0,) and np.array_equal(frames_only.frames, whole.frames)
    assert not sound_only.padded and not frames_only.padded

    silent = write_clip(tmp_path / "silent.mp4", seconds=3.0, audio=False)
    with pytest.raises(NoAudioStream, match="silent.mp4"):
        decode_clip(silent, **ARGS, decode_sound=False)  # checked from the header, nothing decoded
    assert decode_clip(silent, **ARGS, decode_sound=False, silence=True).audio.shape == (0,)
    with pytest.raises(TooShort):
        decode_clip(write_clip(tmp_path / "one.mp4", seconds=1.0), **ARGS, decode_frames=False)

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


def test_decords_cpp_log_line_never_reaches_the_terminal(tmp_path, capfd):
    """decord writes `video_reader.cc:83: ERROR opening: ...` to file descriptor 2 whatever its log level
    when its FFmpeg cannot open a file; the exception says the same, so the line is not shown."""
    from avaudit.media import decode

    text = tmp_path / "notes.mp4"
    text.write_text("not a video\n")
    with pytest.raises(decode._Untimed):
        decode._open_video(text)
    print("still here", file=__import__("sys").stderr)
    captured = capfd.readouterr()
    assert captured.err == "still here\n"


@pytest.mark.slow
def test_a_process_started_without_fd_2_still_decodes(clip10):
    """Started with `2>&-`, Python has no sys.stderr and no fd 2: muting decord must not cost the clip."""
    import subprocess
    import sys

    code = ("import sys; from avaudit.media.decode import decode_clip; "
            f"clip = decode_clip({str(clip10)!r}, steps=10, seconds=10.0, sample_rate=16000, resize=(32, 32), crop=32); "
            "print(sys.stderr, clip.frames.shape)")
    result = subprocess.run(f"{sys.executable} -c {__import__('shlex').quote(code)} 2>&-", shell=True,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout == "None (10, 32, 32, 3)\n", result.stdout


def test_thumbnail_frames_spread_over_the_whole_video(clip10):
    """The report's thumbnails decode through media, not decord directly."""
    frames = thumbnail_frames(clip10, n=5)
    assert frames.shape == (5, 64, 64, 3) and frames.dtype == np.uint8
    red = frames[..., 0].mean(axis=(1, 2))  # frame i of clip10 has red = i: 250 frames, first to last
    assert red[0] < 5 and abs(red[2] - 124) < 5 and red[-1] > 244


@pytest.mark.parametrize("name", ["moviepy_no_duration.webm", "torchcodec_av1_video.mkv",
                                  "mmaction2_tests_data_test.avi"])
def test_thumbnails_of_files_decord_cannot_open_or_time(name):
    """A WebM without a duration and AV1 (decord cannot open them), an AVI (decord misplaces its frames):
    the first and last frames come from the start and end of the video, the strip is not black."""
    from pathlib import Path

    from avaudit.media.decode import read_frames

    path = Path(__file__).parent / "data" / "realmedia" / name
    frames = thumbnail_frames(path, n=5, size=(32, 32))
    first, seconds = read_frames(path, steps=1, seconds=0.1, resize=(32, 32), crop=32)
    assert frames.shape == (5, 32, 32, 3) and frames.reshape(5, -1).max(axis=1).min() > 0
    assert np.abs(frames[0].astype(int) - first[0]).mean() < 1
