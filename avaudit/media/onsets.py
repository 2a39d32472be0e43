"""Audio onsets (eq. 3's set O): librosa's onsets, computed in plain numpy, as a mask over the time steps.

The paper's onsets are librosa's: `librosa.onset.onset_detect(onset_envelope=onset_strength(y, sr,
hop_length), sr, hop_length, units="time")` with librosa's defaults. librosa compiles its peak picking
(and, on import, a dozen other functions) with numba and caches the machine code inside site-packages;
decoding workers that import it at once on a fresh install wrote that cache concurrently and left it in a
state where every later run segfaulted. So this module does the same arithmetic in numpy, operation for
operation, and never imports librosa or numba: `tests/test_onsets.py` checks it against librosa 0.11.0
(and the numba peak picker) sample for sample on synthetic pulse trains and on real audio.

What librosa does with those defaults:
- onset strength: a 2048-point STFT (periodic Hann window, centred with zero padding, hop `hop_length`),
  power spectrum, 128-band Slaney mel filter bank up to sr/2, power_to_db (ref 1, amin 1e-10, top 80 dB),
  the positive first difference along time averaged over the mel bands, shifted right by
  1 + n_fft // (2 * hop) frames and cut to the spectrogram's length;
- detection: the envelope scaled to [0, 1], then greedy peak picking: frame n is an onset when it is the
  maximum of x[n - pre_max : n + post_max], at least delta above the mean of x[n - pre_avg : n + post_avg],
  and more than `wait` frames after the previous onset (pre_max = 30 ms, post_max = 1 frame, pre_avg =
  100 ms, post_avg = 100 ms + 1 frame, wait = 30 ms, delta = 0.07).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

N_FFT = 2048  # librosa.onset.onset_strength's default
N_MELS = 128  # librosa.feature.melspectrogram's default
MAX_MEM_BLOCK = 2**8 * 2**10  # librosa.util.MAX_MEM_BLOCK: the STFT runs in blocks of this many bytes


@lru_cache(maxsize=4)
def _hann(n: int) -> np.ndarray:
    """scipy.signal.get_window("hann", n, fftbins=True): the periodic Hann window, as scipy computes it."""
    fac = np.linspace(-np.pi, np.pi, n + 1, dtype=np.float64)
    w = np.zeros(n + 1, dtype=np.float64)
    for k, a in enumerate((0.5, 0.5)):
        w += np.float64(a) * np.cos(k * fac)
    w = w[:-1]
    w.flags.writeable = False
    return w


def _hz_to_mel(f):
    """librosa.hz_to_mel, Slaney scale (linear below 1 kHz, logarithmic above)."""
    f = np.asanyarray(f)
    f_sp = 200.0 / 3
    mels = (f - 0.0) / f_sp
    min_log_mel = (1000.0 - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    if f.ndim:
        log_t = f >= 1000.0
        mels[log_t] = min_log_mel + np.log(f[log_t] / 1000.0) / logstep
    elif f >= 1000.0:
        mels = min_log_mel + np.log(f / 1000.0) / logstep
    return mels


def _mel_to_hz(mels):
    """librosa.mel_to_hz, Slaney scale."""
    mels = np.asanyarray(mels)
    f_sp = 200.0 / 3
    freqs = 0.0 + f_sp * mels
    min_log_mel = (1000.0 - 0.0) / f_sp
    logstep = np.log(6.4) / 27.0
    if mels.ndim:
        log_t = mels >= min_log_mel
        freqs[log_t] = 1000.0 * np.exp(logstep * (mels[log_t] - min_log_mel))
    elif mels >= min_log_mel:
        freqs = 1000.0 * np.exp(logstep * (mels - min_log_mel))
    return freqs


@lru_cache(maxsize=4)
def _mel_basis(sr: float, n_fft: int, n_mels: int = N_MELS) -> np.ndarray:
    """librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmax=sr/2): Slaney-normalised, float32."""
    fmax = 0.5 * sr
    weights = np.zeros((n_mels, int(1 + n_fft // 2)), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(fmax), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    enorm = 2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels])
    weights *= enorm[:, np.newaxis]
    weights.flags.writeable = False
    return weights


def _frame(x: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """librosa.util.frame for 1-D x: a (frame_length, n_frames) strided view."""
    windows = np.lib.stride_tricks.sliding_window_view(x, frame_length)  # (len - fl + 1, fl)
    return np.moveaxis(windows, -1, -2)[..., ::hop_length]


def _stft_power(y: np.ndarray, n_fft: int, hop_length: int) -> np.ndarray:
    """np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length)) ** 2 (centred, zero padding)."""
    window = _hann(n_fft)[:, np.newaxis]
    padded = np.pad(y, (n_fft // 2, n_fft // 2), mode="constant")
    frames = _frame(padded, n_fft, hop_length)
    # librosa writes the float64 spectra into a complex64 Fortran-ordered matrix, block by block
    stft = np.zeros((1 + n_fft // 2, frames.shape[-1]), dtype=np.complex64, order="F")
    n_columns = max(int(MAX_MEM_BLOCK // (np.prod(frames.shape[:-1]) * frames.itemsize)), 1)
    for start in range(0, frames.shape[-1], n_columns):
        stop = min(start + n_columns, frames.shape[-1])
        stft[:, start:stop] = np.fft.rfft(window * frames[:, start:stop], axis=-2)
    return np.abs(stft) ** 2.0


def onset_strength(y: np.ndarray, *, sr: float, hop_length: int) -> np.ndarray:
    """librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length), float32 in, float32 out.

    Raises ValueError for audio that is not finite everywhere, as librosa does (its ParameterError).
    """
    y = np.asarray(y)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.floating):
        raise ValueError(f"audio must be a 1-D floating-point array, not {y.dtype} of shape {y.shape}")
    if not np.isfinite(y).all():
        raise ValueError("Audio buffer is not finite everywhere")
    power = _stft_power(y, N_FFT, hop_length)
    mel = np.abs(np.einsum("...ft,mf->...mt", power, _mel_basis(float(sr), N_FFT), optimize=True))
    # power_to_db(mel, ref=1.0, amin=1e-10, top_db=80.0)
    db = 10.0 * np.log10(np.maximum(1e-10, mel))
    db -= 10.0 * np.log10(np.maximum(1e-10, np.abs(1.0)))
    db = np.maximum(db, db.max() - 80.0)
    db = np.atleast_2d(db)
    # lag 1, max_size 1: the reference spectrum is the spectrum itself
    diff = np.maximum(0.0, db[..., 1:] - db[..., :-1])
    envelope = np.empty((1, diff.shape[-1]), order="F" if np.isfortran(diff) else "C", dtype=diff.dtype)
    envelope[0, :] = np.mean(diff, axis=-2)
    pad_width = 1 + N_FFT // (2 * hop_length)
    envelope = np.pad(envelope, [(0, 0), (int(pad_width), 0)], mode="constant")
    return envelope[..., : db.shape[-1]][0]


def peak_pick(x: np.ndarray, *, pre_max: int, post_max: int, pre_avg: int, post_avg: int, delta: float,
              wait: int) -> np.ndarray:
    """librosa.util.peak_pick(x, ...) for a finite 1-D float32/float64 x: the indices of the peaks.

    librosa runs this greedy loop as a numba gufunc with `delta` passed as float32 and its numba's
    `np.mean` (a sequential sum in x's dtype, divided in float64 and cast back); the same rounding is
    reproduced here, so a frame that sits exactly on the threshold is decided the same way.
    """
    x = np.ascontiguousarray(x)
    if x.ndim != 1:
        raise ValueError(f"peak_pick takes a 1-D array, not shape {x.shape}")
    n = x.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    pre_max, post_max, pre_avg, post_avg, wait = (int(np.ceil(v)) for v in (pre_max, post_max, pre_avg,
                                                                            post_avg, wait))
    if pre_max < 0 or pre_avg < 0 or wait < 0 or delta < 0 or post_max <= 0 or post_avg <= 0:
        raise ValueError("pre_max, pre_avg, wait and delta must be >= 0, post_max and post_avg > 0")
    # 1. x[i] is the maximum of x[i - pre_max : i + post_max] (windows clipped at the ends)
    padded = np.concatenate([np.full(pre_max, -np.inf, x.dtype), x, np.full(post_max - 1, -np.inf, x.dtype)])
    local_max = np.lib.stride_tricks.sliding_window_view(padded, pre_max + post_max).max(axis=-1)
    candidates = np.flatnonzero(x == local_max)
    delta_t = np.float32(delta)
    peaks = []
    next_allowed = 0
    for i in candidates:
        if i < next_allowed:  # 3. within `wait` frames of the previous peak
            continue
        window = x[max(0, i - pre_avg) : min(i + post_avg, n)]
        total = np.cumsum(window, dtype=x.dtype)[-1]  # numba's mean: a sequential sum in x's dtype
        mean = x.dtype.type(np.float64(total) / window.size)
        if x[i] >= mean + delta_t:  # 2. at least delta above the local mean
            peaks.append(i)
            next_allowed = i + wait + 1
    return np.asarray(peaks, dtype=np.int64)


def onset_detect(envelope: np.ndarray, *, sr: float, hop_length: int) -> np.ndarray:
    """librosa.onset.onset_detect(onset_envelope=envelope, sr=sr, hop_length=hop_length, units="time").

    Default normalisation (to [0, 1]), backtrack=False, librosa's peak-picking parameters. Returns seconds.
    """
    envelope = np.asarray(envelope)
    envelope = envelope - np.min(envelope, keepdims=True, axis=-1)
    envelope /= np.max(envelope, keepdims=True, axis=-1) + np.finfo(envelope.dtype).tiny
    if not envelope.any() or not np.all(np.isfinite(envelope)):
        frames = np.array([], dtype=int)
    else:
        frames = peak_pick(envelope,
                           pre_max=0.03 * sr // hop_length,  # 30 ms
                           post_max=0.00 * sr // hop_length + 1,  # 0 ms
                           pre_avg=0.10 * sr // hop_length,  # 100 ms
                           post_avg=0.10 * sr // hop_length + 1,  # 100 ms
                           wait=0.03 * sr // hop_length,  # 30 ms
                           delta=0.07)
    return (np.asanyarray(frames) * hop_length).astype(int) / float(sr)


def onset_steps(audio: np.ndarray, *, sample_rate: int, steps: int, seconds: float,
                hop_length: int = 160) -> np.ndarray:
    """(T,) bool mask of the steps holding a librosa onset (eq. 3's set O).

    Onsets are detected on the onset-strength envelope (supplement section 2) with the log-mel hop,
    then mapped from seconds to steps: step = floor(t * T / seconds).
    """
    envelope = onset_strength(audio.astype(np.float32), sr=sample_rate, hop_length=hop_length)
    times = onset_detect(envelope, sr=sample_rate, hop_length=hop_length)
    mask = np.zeros(steps, bool)
    index = np.floor(np.asarray(times) * steps / seconds).astype(int)
    mask[index[(index >= 0) & (index < steps)]] = True
    return mask
