"""Temperature scaling per layer: the paper's raw layer confidences are not comparable across layers.

Each layer gets one temperature fitted on held-out labels (Guo et al., 2017), so that "the most
confident layer" compares like with like. Pure functions over arrays, no model and no I/O.
"""
from __future__ import annotations

import numpy as np

from avaudit.audits.decisions import calibrated_softmax, check_layer_arrays, softmax  # noqa: F401 - the trainer reads it here
from avaudit.vocab import LAYERS

T_MIN, T_MAX = 0.05, 20.0  # temperatures outside this range mean the fit is degenerate, not informative
_STEPS = 45  # golden-section steps: the log T interval (width 6) shrinks to ~1e-9


def _check(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    logits, labels = check_layer_arrays(np.asarray(logits, float), labels)
    return logits, labels.astype(int)


def _nll(logits: np.ndarray, labels: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """Mean negative log-likelihood of each layer at its temperature. (N, 5, C), (N,), (5,) -> (5,)."""
    scaled = logits / temperatures[None, :, None]
    top = scaled.max(axis=-1)
    lse = top + np.log(np.exp(scaled - top[..., None]).sum(axis=-1))  # (N, 5)
    own = scaled[np.arange(len(labels)), :, labels]  # (N, 5)
    return (lse - own).mean(axis=0)


def fit_temperatures(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """One temperature per layer minimising the NLL of softmax(logits[:, i] / T_i). (N, 5, C), (N,) -> (5,).

    The NLL is convex in 1/T, hence unimodal in log T, so a golden-section search over
    [log T_MIN, log T_MAX] finds the minimum deterministically. A layer the search cannot improve
    (e.g. constant logits) keeps T = 1; no labels at all give ones.
    """
    logits, labels = _check(logits, labels)
    if len(labels) == 0:
        return np.ones(len(LAYERS))

    def nll(log_t):
        return _nll(logits, labels, np.exp(log_t))

    # Golden section on every layer at once, reusing one inner point per step: one NLL pass a step.
    ratio = (np.sqrt(5) - 1) / 2
    lo, hi = np.full(len(LAYERS), np.log(T_MIN)), np.full(len(LAYERS), np.log(T_MAX))
    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fc, fd = nll(c), nll(d)
    for _ in range(_STEPS):
        left = fc <= fd  # the minimum lies in [lo, d]
        lo, hi = np.where(left, lo, c), np.where(left, d, hi)
        kept, f_kept = np.where(left, c, d), np.where(left, fc, fd)
        new = np.where(left, hi - ratio * (hi - lo), lo + ratio * (hi - lo))
        f_new = nll(new)
        c, fc = np.where(left, new, kept), np.where(left, f_new, f_kept)
        d, fd = np.where(left, kept, new), np.where(left, f_kept, f_new)
    fitted = np.clip(np.exp((lo + hi) / 2), T_MIN, T_MAX)
    ones = np.ones(len(LAYERS))
    return np.where(_nll(logits, labels, fitted) < _nll(logits, labels, ones), fitted, ones)


def expected_calibration_error(confidences: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> float:
    """Top-label ECE of one layer: sum over equal-width bins of |B|/N * |accuracy(B) - confidence(B)|.

    confidences: (N, C) probabilities; labels: (N,) class indices. Bins are (k/bins, (k+1)/bins],
    the first also holding 0. NaN when N = 0: there is nothing to measure.
    """
    confidences, labels = np.asarray(confidences, float), np.asarray(labels)
    if confidences.ndim != 2 or labels.shape != confidences.shape[:1]:
        raise ValueError(f"expected confidences (N, C) and labels (N,), got {confidences.shape}, {labels.shape}")
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    if len(labels) == 0:
        return float("nan")
    top = confidences.max(axis=1)
    correct = (confidences.argmax(axis=1) == labels).astype(float)
    which = np.clip(np.ceil(top * bins).astype(int) - 1, 0, bins - 1)
    gap = np.bincount(which, weights=correct - top, minlength=bins)  # sum of (accuracy - confidence) per bin
    return float(np.abs(gap).sum() / len(labels))


def layer_ece(probabilities: np.ndarray, labels: np.ndarray, *, bins: int = 15) -> dict[str, float]:
    """expected_calibration_error for each layer. (N, 5, C), (N,) -> {layer: ECE}."""
    probabilities, labels = _check(probabilities, labels)
    return {name: expected_calibration_error(probabilities[:, i], labels, bins=bins) for i, name in enumerate(LAYERS)}
