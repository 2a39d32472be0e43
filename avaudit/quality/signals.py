"""Per-clip signals and signatures from exactly what the network sees: the window's frames and sound.

`clip_signals` measures how still the picture is and how loud the sound is; `clip_signature` keeps a
perceptual hash of the picture and a band-energy fingerprint of the sound, 129 bytes a clip, from which
`avaudit.quality.duplicates` finds copies without decoding anything again. `flags_of` turns the signals
into the `still` / `silent` flags with the thresholds below (docs/quality.md says how they were chosen).
"""
from __future__ import annotations

import functools

import numpy as np

SIGNAL_NAMES = ("still_fraction", "motion", "level_dbfs", "silent_fraction")

STILL_LAG_SECONDS = 3.0  # a stretch this long is still when its first and last frames show the same picture
STILL_DIFF = 0.4  # mean absolute change per pixel (of 255) under which two frames are the same picture
SILENT_DBFS = -60.0  # RMS level (dBFS, full-scale square wave = 0) under which 100 ms of sound is inaudible
FLOOR_DBFS = -120.0  # the level given to digital silence, which has no finite dB value
FLAG_FRACTION = 0.9  # a clip is flagged `still` / `silent` when this share of its window is
BLANK_STD = 2.0  # spatial standard deviation (of 255) under which a frame shows nothing: a blank picture

HASH_FRAMES = 16  # frames of the window the picture hash looks at, evenly spread
FRAME_COEFFICIENTS = 64  # lowest-frequency DCT coefficients of each frame's 32 x 32 gray thumbnail
SOUND_SEGMENTS = 33  # stretches of the window whose band energies the sound fingerprint compares
SOUND_BANDS = 17  # log-spaced frequency bands, 150 Hz to 0.45 x the sample rate
PICTURE_BYTES = 64  # 512 projection bits
SOUND_BYTES = (SOUND_SEGMENTS - 1) * (SOUND_BANDS - 1) // 8
BLANK, SILENT = 1, 2  # bits of a signature's first byte: the stream carries nothing to compare
SIGNATURE_BYTES = 1 + PICTURE_BYTES + SOUND_BYTES


def _gray(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) uint8 RGB -> (T, H, W) float32 luma (BT.601), 0-255."""
    return frames.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _fps(frames: np.ndarray, audio: np.ndarray, sample_rate: int) -> float:
    """Frames per second of the window: T frames over the seconds its sound spans (10 s if it has none)."""
    seconds = len(audio) / sample_rate if len(audio) else 10.0
    return len(frames) / seconds


def frame_changes(frames: np.ndarray, *, lag: int) -> np.ndarray:
    """(T - lag,) mean absolute gray change per pixel between each frame and the one `lag` steps later."""
    if len(frames) <= lag:
        return np.zeros(0, np.float32)
    gray = _gray(frames)
    return np.abs(gray[lag:] - gray[:-lag]).mean(axis=(1, 2))


def _covered(same: np.ndarray, *, lag: int) -> np.ndarray:
    """(len(same) + lag,) bool: the steps inside some stretch [t, t + lag] whose ends are the same picture."""
    starts = np.r_[same, np.zeros(lag + 1, bool)].astype(np.int64)
    ends = np.r_[np.zeros(lag + 1, bool), same].astype(np.int64)
    return np.cumsum(starts - ends)[: len(same) + lag] > 0


def chunk_levels(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(n,) RMS level in dBFS of each 100 ms of sound, FLOOR_DBFS for digital silence."""
    size = max(1, sample_rate // 10)
    n = len(audio) // size
    if n == 0:
        return np.zeros(0, np.float32)
    power = np.square(audio[: n * size].astype(np.float64)).reshape(n, size).mean(axis=1)
    return _dbfs(power)


def _dbfs(power: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.maximum(10 * np.log10(power), FLOOR_DBFS).astype(np.float32)


def shown_part(frames: np.ndarray, audio: np.ndarray, sample_rate: int,
               shown: float | None) -> tuple[np.ndarray, np.ndarray]:
    """The frames and sound of the first `shown` seconds of the window (all of it when None): a clip shorter
    than the window is padded with black and silence after its end (Clip.duration says how much it holds)."""
    if shown is None or not len(audio):
        return frames, audio
    share = min(1.0, max(0.0, shown * sample_rate / len(audio)))
    return frames[: int(round(share * len(frames)))], audio[: int(round(share * len(audio)))]


def clip_signals(frames: np.ndarray, audio: np.ndarray, sample_rate: int, *,
                 shown: float | None = None) -> np.ndarray:
    """float32 (len(SIGNAL_NAMES),) of one decoded window: frames (T, H, W, 3) uint8, audio (N,) float32,
    measured over its first `shown` seconds (Clip.duration; None: all of it), so padding is not a still picture.

    still_fraction: share of steps inside a STILL_LAG_SECONDS stretch whose first and last frames are the same
    picture, or over the whole window when it is shorter (1 for a single frame); motion: mean gray change per
    pixel over that lag; level_dbfs: the window's RMS level; silent_fraction: share of its 100 ms stretches
    under SILENT_DBFS (1 for an empty waveform).
    """
    frames, audio = shown_part(frames, audio, sample_rate, shown)
    lag = max(1, min(int(round(STILL_LAG_SECONDS * _fps(frames, audio, sample_rate))), len(frames) - 1))
    changes = frame_changes(frames, lag=lag)
    still = float(_covered(changes < STILL_DIFF, lag=lag).mean()) if len(changes) else 1.0
    motion = float(changes.mean()) if len(changes) else 0.0
    levels = chunk_levels(audio, sample_rate)
    level = float(_dbfs(np.array([np.square(audio.astype(np.float64)).mean()]))[0]) if len(audio) else FLOOR_DBFS
    silent = float((levels < SILENT_DBFS).mean()) if len(levels) else 1.0
    return np.array([still, motion, level, silent], np.float32)


def flags_of(signals: np.ndarray) -> list[str]:
    """`;`-joined flags per row of (N, len(SIGNAL_NAMES)) signals: `still`, `silent`, or "" for neither."""
    signals = np.asarray(signals, np.float32).reshape(-1, len(SIGNAL_NAMES))
    still = signals[:, SIGNAL_NAMES.index("still_fraction")] >= FLAG_FRACTION
    silent = signals[:, SIGNAL_NAMES.index("silent_fraction")] >= FLAG_FRACTION
    return [";".join(name for name, on in (("still", a), ("silent", b)) if on) for a, b in zip(still, silent)]


def _resample_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) box filter: each output sample is the mean of the input samples it covers."""
    edges = np.linspace(0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    left = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, left + 1) - np.maximum(lo, left), 0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def _dct_matrix(n: int) -> np.ndarray:
    """(n, n) orthonormal DCT-II."""
    k, i = np.arange(n)[:, None], np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    m[0] /= np.sqrt(2)
    return m


_DCT32 = _dct_matrix(32)
_ZIGZAG = sorted(((i, j) for i in range(32) for j in range(32)), key=lambda ij: (ij[0] + ij[1], ij[0]))
_LOW = tuple(np.array(_ZIGZAG[1 : 1 + FRAME_COEFFICIENTS]).T)  # the lowest-frequency AC coefficients


@functools.cache
def _projection() -> np.ndarray:
    """(PICTURE_BYTES * 8, HASH_FRAMES * FRAME_COEFFICIENTS) float32 of +-1, the same on every machine and
    numpy version (splitmix64 of each entry's index), so a cached signature stays comparable."""
    index = np.arange(PICTURE_BYTES * 8 * HASH_FRAMES * FRAME_COEFFICIENTS, dtype=np.uint64)
    z = index + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    signs = ((z ^ (z >> np.uint64(31))) & np.uint64(1)).astype(np.float32) * 2 - 1
    return signs.reshape(PICTURE_BYTES * 8, HASH_FRAMES * FRAME_COEFFICIENTS)


def picture_hash(frames: np.ndarray) -> tuple[np.ndarray, bool]:
    """(PICTURE_BYTES,) uint8 hash of HASH_FRAMES frames of the window, and whether the picture is blank.

    Each frame: gray, box-resized to 32 x 32, its FRAME_COEFFICIENTS lowest-frequency DCT coefficients;
    the bits are the signs of fixed random projections of all of them (SimHash), so the share of equal
    bits of two clips follows the angle between their coefficients. Large coefficients (the picture's
    layout) weigh most and the small ones that a re-encode or a resize disturbs weigh least; one bit per
    coefficient above the median (a plain pHash) measured worse (docs/quality.md).
    """
    if len(frames) == 0:
        return np.zeros(PICTURE_BYTES, np.uint8), True
    picked = _gray(frames[((np.arange(HASH_FRAMES) + 0.5) * len(frames) / HASH_FRAMES).astype(int)])
    rows, cols = _resample_matrix(picked.shape[1], 32), _resample_matrix(picked.shape[2], 32)
    # Two-operand einsums: a three-operand one loops naively (50x slower), and a matrix product goes through
    # BLAS, whose threads oversubscribe the cores when every decoding worker starts its own.
    thumbs = np.einsum("taw,bw->tab", np.einsum("ah,thw->taw", rows, picked), cols)
    coefficients = np.einsum("tib,jb->tij", np.einsum("ia,tab->tib", _DCT32, thumbs), _DCT32)[:, _LOW[0], _LOW[1]]
    bits = np.einsum("ij,j->i", _projection(), coefficients.reshape(-1).astype(np.float32)) > 0
    blank = bool((picked.std(axis=(1, 2)) < BLANK_STD).all())
    return np.packbits(bits), blank


def _band_energies(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """(SOUND_SEGMENTS, SOUND_BANDS) log energy of each band in each stretch of the window."""
    n_fft = 1024
    edges = np.geomspace(150.0, 0.45 * sample_rate, SOUND_BANDS + 1)
    bins = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    band_of = np.searchsorted(edges, bins, side="right") - 1
    padded = np.pad(audio.astype(np.float32), (0, max(0, n_fft - len(audio))))
    starts = np.linspace(0, len(padded) - n_fft, max(SOUND_SEGMENTS * 8, 1)).astype(int)
    power = np.abs(np.fft.rfft(padded[starts[:, None] + np.arange(n_fft)] * np.hanning(n_fft), axis=1)) ** 2
    # band_of rises with frequency, so each band is a run of bins: summed by reduceat (np.add.at, unbuffered,
    # took most of the fingerprint's time); a band without a bin sums to 0
    edge_bins = np.searchsorted(band_of, np.arange(SOUND_BANDS + 1), side="left")
    inside = power[:, : max(edge_bins[-1], 1)]  # reduceat's last run goes to the end: stop at the top band's
    per_band = np.add.reduceat(inside, np.minimum(edge_bins[:-1], inside.shape[1] - 1), axis=1)
    per_band[:, edge_bins[1:] == edge_bins[:-1]] = 0.0
    per_segment = per_band.reshape(SOUND_SEGMENTS, 8, SOUND_BANDS).mean(axis=1)
    return np.log(per_segment + 1e-12)


def sound_hash(audio: np.ndarray, sample_rate: int) -> tuple[np.ndarray, bool]:
    """(SOUND_BYTES,) uint8 band-energy fingerprint of the window's sound, and whether it is silent.

    One bit per (stretch, band pair): whether the energy difference of two neighbouring bands rose
    from the stretch before (Haitsma and Kalker's fingerprint), so a level change or a re-encode that
    keeps the spectrum's shape keeps the bits.
    """
    levels = chunk_levels(audio, sample_rate)
    silent = not len(levels) or float((levels < SILENT_DBFS).mean()) >= FLAG_FRACTION
    energy = _band_energies(audio, sample_rate)
    across = energy[:, :-1] - energy[:, 1:]
    bits = (across[1:] - across[:-1]) > 0
    return np.packbits(bits.reshape(-1)), silent


def clip_signature(frames: np.ndarray, audio: np.ndarray, sample_rate: int, *,
                   shown: float | None = None) -> np.ndarray:
    """uint8 (SIGNATURE_BYTES,): a content byte (BLANK, SILENT bits), the picture hash, the sound hash, of the
    first `shown` seconds of the window (None: all of it), so two short clips never match by their padding."""
    frames, audio = shown_part(frames, audio, sample_rate, shown)
    picture, blank = picture_hash(frames)
    sound, silent = sound_hash(audio, sample_rate)
    content = np.array([BLANK * blank | SILENT * silent], np.uint8)
    return np.concatenate([content, picture, sound])
