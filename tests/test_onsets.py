import numpy as np
import torch
import torchaudio

from avaudit.media.onsets import onset_steps
from avaudit.model.backbones import LOG_FLOOR, LogMel


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
