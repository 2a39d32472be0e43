"""Audio features: the paper's 1000 x 80 log-mel, and librosa onsets as time-step indices."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

LOG_FLOOR = 1e-6  # added before the log so that digital silence stays finite


class LogMel(nn.Module):
    """Waveform (B, N) -> log-mel (B, frames, n_mels), supplement section 2.

    n_fft 512, hop 160, win 320, hann window, centred with reflect padding, power spectrum,
    80 mel bins. A 10-s clip at 16 kHz gives 1001 centred frames; the last is dropped so the
    frames split into T steps exactly (1000 x 80).
    """

    def __init__(self, *, sample_rate: int, n_fft: int, hop_length: int, win_length: int, n_mels: int,
                 n_frames: int):
        super().__init__()
        import torchaudio

        self.n_frames = n_frames
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            window_fn=torch.hann_window, center=True, pad_mode="reflect", power=2.0, n_mels=n_mels,
        )

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(waveform.device.type, enabled=False):
            mel = self.mel(waveform.float())  # (B, n_mels, frames)
        return torch.log(mel + LOG_FLOOR)[..., : self.n_frames].transpose(1, 2)


def onset_steps(audio: np.ndarray, *, sample_rate: int, steps: int, seconds: float,
                hop_length: int = 160) -> np.ndarray:
    """(T,) bool mask of the steps holding a librosa onset (eq. 3's set O).

    Onsets are detected on a pre-computed onset-strength envelope (supplement section 2) with the
    log-mel hop, then mapped from seconds to steps: step = floor(t * T / seconds).
    """
    import librosa  # slow first import and numba compile: only when onsets are needed

    envelope = librosa.onset.onset_strength(y=audio.astype(np.float32), sr=sample_rate, hop_length=hop_length)
    times = librosa.onset.onset_detect(onset_envelope=envelope, sr=sample_rate, hop_length=hop_length,
                                       units="time")
    mask = np.zeros(steps, bool)
    index = np.floor(np.asarray(times) * steps / seconds).astype(int)
    mask[index[(index >= 0) & (index < steps)]] = True
    return mask
