"""Audio onsets (eq. 3's set O): librosa onsets as a mask over the time steps."""
from __future__ import annotations

import numpy as np


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
