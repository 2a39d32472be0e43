import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio

from avaudit.media import onsets
from avaudit.media.onsets import onset_steps
from avaudit.model.backbones import LOG_FLOOR, LogMel

REPO = Path(__file__).resolve().parent.parent
REALMEDIA = Path(__file__).parent / "data" / "realmedia"
# the real clips that have a sound track (the others are `no audio stream` or an audio-only mp3)
SOUNDED = ["torchcodec_nasa_13013.mp4", "moviepy_chaplin.mp4", "mmaction2_tests_data_test.avi",
           "moviepy_fire2.mp4", "moviepy_example2.mp4", "moviepy_no_duration.webm",
           "moviepy_with-attached-pic.mp3"]
SILENT = {"moviepy_no_duration.webm"}  # its Opus track is digital silence (PyAV decodes zeros too)


def real_audio(path: Path) -> np.ndarray:
    """The first 10 s of a file's sound, mono at 16 kHz, as an audit reads it."""
    from avaudit.media import pyav

    audio, _, _ = pyav.read_audio(path, pyav.probe(path), sample_rate=16000, start=0.0, seconds=10.0,
                                  stop=float("inf"))
    return audio


def paper_log_mel():
    return LogMel(sample_rate=16000, n_fft=512, hop_length=160, win_length=320, n_mels=80, n_frames=1000)


def test_log_mel_matches_direct_stft_and_filterbank():
    wave = torch.randn(2, 160000, generator=torch.Generator().manual_seed(0))
    ours = paper_log_mel()(wave)
    assert ours.shape == (2, 1000, 80)
    spec = torch.stft(wave, n_fft=512, hop_length=160, win_length=320, window=torch.hann_window(320),
                      center=True, pad_mode="reflect", return_complex=True).abs() ** 2  # (2, 257, 1001)
    bank = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, 80, 16000)  # (257, 80)
    direct = torch.log(spec.transpose(1, 2) @ bank + LOG_FLOOR)[:, :1000]
    torch.testing.assert_close(ours, direct, rtol=1e-4, atol=1e-4)


def test_log_mel_of_a_tone_peaks_at_its_mel_bin():
    t = torch.arange(160000) / 16000
    mel = paper_log_mel()(torch.sin(2 * torch.pi * 1000 * t)[None])
    bank = torchaudio.functional.melscale_fbanks(257, 0.0, 8000.0, 80, 16000)
    assert mel[0, 500].argmax() == bank[32].argmax()  # FFT bin 32 = 1000 Hz


def test_onsets_of_a_click_train_land_on_their_steps():
    sr = 16000
    audio = np.zeros(10 * sr, np.float32)
    clicks = [0.55, 2.05, 3.33, 6.71, 9.12]
    for t in clicks:
        start = int(t * sr)
        audio[start : start + 400] = np.hanning(400) * np.sin(np.arange(400) * 0.9)
    mask = onset_steps(audio, sample_rate=sr, steps=100, seconds=10.0)
    assert mask.shape == (100,) and mask.dtype == bool
    found = np.flatnonzero(mask)
    expected = np.floor(np.array(clicks) * 10).astype(int)
    assert len(found) == len(clicks)
    assert np.abs(found - expected).max() <= 1


def test_silence_has_no_onsets():
    assert not onset_steps(np.zeros(160000, np.float32), sample_rate=16000, steps=100, seconds=10.0).any()


# --- the numpy onsets are librosa's, bit for bit -------------------------------------------------------


@pytest.fixture(scope="module")
def librosa():
    """librosa itself (a test extra): the reference that avaudit.media.onsets reproduces without numba."""
    import librosa
    import librosa.onset

    assert librosa.__version__ == "0.11.0", "onsets.py mirrors librosa 0.11.0; re-check it against a new one"
    return librosa


def librosa_onsets(librosa, y, sr, hop):
    envelope = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop)
    return envelope, librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop, units="time")


def assert_same_as_librosa(librosa, y, sr, hop):
    """The envelope and the onset times, exactly; returns how many onsets there were."""
    expected_envelope, expected_times = librosa_onsets(librosa, y, sr, hop)
    envelope = onsets.onset_strength(y, sr=sr, hop_length=hop)
    assert envelope.dtype == expected_envelope.dtype == np.float32
    np.testing.assert_array_equal(envelope, expected_envelope)
    times = onsets.onset_detect(envelope, sr=sr, hop_length=hop)
    np.testing.assert_array_equal(times, expected_times)
    return len(expected_times)


def pulse_train(rng, sr=16000, seconds=10.0):
    """Windowed sine bursts of random length, pitch and level at random times, over optional noise."""
    y = np.zeros(int(seconds * sr), np.float32)
    for t in rng.uniform(0, seconds, rng.integers(0, 30)):
        start, length = int(t * sr), int(rng.integers(50, 3000))
        burst = np.hanning(length) * np.sin(np.arange(length) * rng.uniform(0.05, 2.5)) * rng.uniform(0.01, 1)
        y[start : start + length] += burst[: len(y) - start].astype(np.float32)
    return y + rng.normal(0, rng.choice([0.0, 1e-4, 1e-2]), y.shape).astype(np.float32)


@pytest.mark.slow
def test_onsets_equal_librosa_on_click_and_pulse_trains(librosa):
    rng = np.random.default_rng(0)
    found = 0
    click = np.zeros(160000, np.float32)
    click[::4000] = 1.0  # a click every 0.25 s
    found += assert_same_as_librosa(librosa, click, 16000, 160)
    for _ in range(40):
        found += assert_same_as_librosa(librosa, pulse_train(rng), 16000, 160)
    found += assert_same_as_librosa(librosa, pulse_train(rng, sr=22050, seconds=4.0), 22050, 512)
    assert found > 300  # not a comparison of empty results


@pytest.mark.slow
@pytest.mark.parametrize("name", SOUNDED)
def test_onsets_equal_librosa_on_real_audio(librosa, name):
    audio = real_audio(REALMEDIA / name)
    found = assert_same_as_librosa(librosa, audio, 16000, 160)
    assert (found == 0) if name in SILENT else (found > 0)
    assert_same_as_librosa(librosa, audio, 16000, 512)


@pytest.mark.slow
def test_peak_pick_equals_librosa_on_ties_and_thresholds(librosa):
    """Envelopes quantized to sevenths put frames exactly on the max and on mean + delta (delta = 1/7)."""
    rng = np.random.default_rng(1)
    for case in range(600):
        n = int(rng.integers(1, 300))
        x = (rng.integers(0, 8, n) / 7).astype(np.float32) if case % 2 else rng.random(n).astype(np.float32)
        params = dict(pre_max=int(rng.integers(0, 5)), post_max=int(rng.integers(1, 5)),
                      pre_avg=int(rng.integers(0, 12)), post_avg=int(rng.integers(1, 12)),
                      delta=float(rng.choice([0.0, 0.07, 1 / 7])), wait=int(rng.integers(0, 5)))
        np.testing.assert_array_equal(onsets.peak_pick(x, **params), librosa.util.peak_pick(x, **params),
                                      err_msg=f"case {case}: {params}")


def test_non_finite_audio_is_refused():
    audio = np.zeros(16000, np.float32)
    audio[5] = np.nan
    with pytest.raises(ValueError, match="^Audio buffer is not finite everywhere$"):
        onset_steps(audio, sample_rate=16000, steps=10, seconds=1.0)


# --- onsets in fresh processes: no JIT, no crash ---------------------------------------------------------

ONSETS_SCRIPT = """
import json, sys
from pathlib import Path
from avaudit.media import pyav
from avaudit.media.onsets import onset_steps
out = {}
for name in sys.argv[1:]:
    path = Path(%r) / name
    audio = pyav.read_audio(path, pyav.probe(path), sample_rate=16000, start=0.0, seconds=10.0, stop=float("inf"))[0]
    out[name] = onset_steps(audio, sample_rate=16000, steps=100, seconds=10.0).nonzero()[0].tolist()
out["jit modules"] = sorted(m for m in ("librosa", "numba", "llvmlite") if m in sys.modules)
print(json.dumps(out))
""" % str(REALMEDIA)


def expected_steps(names):
    steps = {}
    for name in names:
        audio = real_audio(REALMEDIA / name)
        steps[name] = onset_steps(audio, sample_rate=16000, steps=100, seconds=10.0).nonzero()[0].tolist()
    steps["jit modules"] = []
    return steps


def onset_processes(count, numba_cache, names):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache), PYTHONPATH=os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return [subprocess.Popen([sys.executable, "-c", ONSETS_SCRIPT, *names], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(count)]


def finish(process):
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, f"onset process exited {process.returncode}: {err[-2000:]}"
    return json.loads(out)


@pytest.mark.slow
def test_onsets_of_real_audio_in_a_subprocess_do_not_crash_and_load_no_jit(tmp_path):
    """A native crash in onset detection (as librosa's numba peak picker had) fails here, not the runner."""
    (result,) = [finish(p) for p in onset_processes(1, tmp_path / "numba", SOUNDED)]
    assert result == expected_steps(SOUNDED)
    assert sum(len(result[name]) for name in SOUNDED) > 20


@pytest.mark.slow
def test_concurrent_first_onsets_on_fresh_jit_caches_never_crash(tmp_path):
    """4 decoding processes at once on an empty NUMBA_CACHE_DIR, then 4 more on the same one, 6 times.

    With librosa's onsets, concurrent first compilations wrote its numba cache and left it poisoned in 2 of
    4 fresh installs; now nothing is compiled, so nothing is written there.
    """
    names = ["torchcodec_nasa_13013.mp4", "moviepy_chaplin.mp4"]
    expected = expected_steps(names)
    for round_ in range(6):
        cache = tmp_path / f"numba{round_}"
        cache.mkdir()
        for wave in ("first", "again"):
            results = [finish(p) for p in onset_processes(4, cache, names)]
            assert results == [expected] * 4, f"round {round_}, {wave} wave"
        assert list(cache.iterdir()) == []
