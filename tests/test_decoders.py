"""The two frame decoders (PyAV, the default, and decord) and clips held in memory: the right frame at
every step, from a file or from its bytes."""
from pathlib import Path

import numpy as np
import pytest

from avaudit.media.decode import MemorySource, UnreadableContainer, decode_clip

REALMEDIA = Path(__file__).parent / "data" / "realmedia"
PAPER = dict(steps=100, seconds=10.0, sample_rate=16000, resize=(128, 171), crop=112)


@pytest.mark.parametrize("name", ["moviepy_chaplin.mp4", "mmaction2_tests_data_test.avi"])
@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_a_clip_held_in_memory_decodes_as_its_file_does(name, decoder):
    """A WebDataset tar member or a Parquet cell is decoded from its bytes, never written to disk: the
    same frames, sound and window as the file (the AVI's frame rate is read from the bytes' header)."""
    path = REALMEDIA / name
    from_file = decode_clip(path, **PAPER, decoder=decoder)
    from_memory = decode_clip(MemorySource(f"shard-000001.tar/{name}", memoryview(path.read_bytes())), **PAPER,
                              decoder=decoder)
    assert np.array_equal(from_memory.frames, from_file.frames)
    assert np.array_equal(from_memory.audio, from_file.audio)
    assert (from_memory.padded, from_memory.duration) == (from_file.padded, from_file.duration)


@pytest.mark.parametrize("data,detail", [(b"", "empty file"), (b"not a video\n" * 100, "cannot open")])
@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_bad_bytes_in_memory_are_refused_naming_the_member(data, detail, decoder):
    with pytest.raises(UnreadableContainer, match=rf"^shard-000001\.tar/clip7\.mp4: {detail}"):
        decode_clip(MemorySource("shard-000001.tar/clip7.mp4", data), **PAPER, decoder=decoder)


def test_logits_decoded_by_one_decoder_are_never_served_for_the_other(tiny_model, clip10, cache, tmp_path):
    """The decoder is part of the cache's fingerprint and of the run record; each decoder's run is cached."""
    import yaml

    from avaudit import commands

    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"path,label\n{clip10},\n{REALMEDIA / 'mmaction2_tests_data_test.avi'},\n")
    args = dict(model=tiny_model, device="cpu", workers=0, allow_outside_root=True)
    by_pyav = commands.predict(manifest, out=tmp_path / "pyav", **args)
    by_decord = commands.predict(manifest, out=tmp_path / "decord", decoder="decord", **args)
    assert (by_pyav.n_cached, by_decord.n_cached) == (0, 0)
    assert commands.predict(manifest, out=tmp_path / "again", decoder="decord", **args).n_cached == 2
    assert commands.predict(manifest, out=tmp_path / "again", **args).n_cached == 2
    assert yaml.safe_load((tmp_path / "decord" / "predict_run.yaml").read_text())["decoder"] == "decord"


def test_an_unknown_decoder_is_one_line_naming_the_choices(tmp_path):
    from cli_helpers import cli

    from avaudit import commands
    from avaudit.errors import ParameterError

    result = cli("predict", tmp_path, "--decoder", "ffmpeg")
    assert result.exit_code == 2 and "'ffmpeg' is not one of 'pyav', 'decord'" in result.output
    with pytest.raises(ParameterError, match="decoder must be one of pyav, decord, not 'ffmpeg'"):
        commands.predict(tmp_path, decoder="ffmpeg")


def every_frame(path: Path, size: tuple[int, int]) -> tuple[np.ndarray, float, float]:
    """Every frame of an AVI's video stream in the decoder's order, decoded from the first packet and
    converted as media.pyav converts them; its stated frame rate and length."""
    import av

    with av.open(str(path)) as container:
        video = container.streams.video[0]
        frames = [frame.reformat(width=size[1], height=size[0], format="rgb24", interpolation="BICUBIC").to_ndarray()
                  for frame in container.decode(video)]
        assert video.start_time == 0 and container.streams.audio[0].start_time == 0
        return np.stack(frames), float(video.average_rate), float(video.duration * video.time_base)


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_every_step_of_a_real_avi_shows_the_frame_on_screen_at_its_time(decoder):
    """decord 0.6.0 alone showed the wrong frame at 64 of these 100 steps (0.12 s to 4.36 s late:
    benchmarks/README.md). An AVI stores no times: chunk k of its video is frame slot k, [k, k + 1) / fps
    (DivX's packed B-frames keep one shown frame per chunk, a 6-byte placeholder included), and the 164
    frames fill the 6.56 s the file states. Step k must show the frame on screen at k / 10 s, from a
    decode of every frame, and black once the video has ended."""
    path = REALMEDIA / "mmaction2_tests_data_test.avi"
    clip = decode_clip(path, **PAPER, decoder=decoder)
    frames, fps, stated = every_frame(path, PAPER["resize"])
    assert (len(frames), fps, stated) == (164, 25.0, 6.56)
    top, left = (128 - 112) // 2, (171 - 112) // 2
    frames = frames[:, top : top + 112, left : left + 112].astype(int)
    times = np.arange(100) / 10
    on_screen = np.floor(times * fps + 1e-6).astype(int)
    ended = on_screen >= len(frames)
    assert ended.sum() == 34 and not clip.frames[ended].any()
    for step in np.flatnonzero(~ended):  # the scene moves little: neighbours differ by as little as 0.04 levels
        errors = np.abs(frames - clip.frames[step].astype(int)).mean(axis=(1, 2, 3))
        right = on_screen[step]
        assert errors[right] < 1.0 and errors[right] == errors.min(), (
            f"step {step} ({times[step]:.1f} s) shows frame {errors.argmin()}, not {right}")
