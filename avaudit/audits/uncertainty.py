"""How sure a category's call is: the sufficiency rule on the category's mean per-layer scores, redrawn.

A category's five layer means (its videos' confidences in its label, or their top-1 hits) are
estimated from its own videos; by the central limit theorem they are close to normal around the
truth with the covariance of the videos' scores over n. Redrawing the five means from that normal
(a parametric bootstrap over the category's videos, every category at once) and calling the group
and the type on each draw says how often the same call comes out: the call's `support`. A normal
draw costs (categories x draws x 5) numbers, where resampling the videos themselves costs
(videos x draws x 5), 250 times more on a dataset of 400 categories of 250 videos.

Pure numpy: arrays in, arrays out.
"""
from __future__ import annotations

import numpy as np

from avaudit.vocab import AV_LAYERS, LAYERS

GROUP_CODES = ("audiovisual", "audio", "visual", "redundant")
AUDIO, VISUAL = LAYERS.index("audio"), LAYERS.index("visual")
N_AV = len(AV_LAYERS)
SURE = 0.5  # audio-visual layers this confident in the label are right more often than not: chosen on the bench
PRIOR_VARIANCE = 0.0625  # one pseudo-video at sd 0.25: chosen on the bench (docs/decisions-bench.md)


def call_groups(means: np.ndarray, *, fraction: float, informative: float,
                lone: float) -> tuple[np.ndarray, np.ndarray]:
    """The sufficiency rule on category means. (..., 5) -> (group code (...), leading AV layer (...)).

    A unimodal layer carries the category when its mean reaches `fraction` of the best
    audio-visual layer's (it suffices), or when the other unimodal layer stays under `informative`
    of it (the other modality knows nothing of the category: a weak visual layer is still the one
    that sees a visual category) while this one reaches `informative` of it, or `lone` where the
    best audio-visual mean reaches SURE. Audio-visual layers that sure are right, and a unimodal
    layer at about half of them may be splitting its confidence with a category that shares its
    sound or sight: the mark of an audio-visual grid category whose other layer is weak, not of a
    unimodal one. Codes index GROUP_CODES.
    """
    best = means[..., :N_AV].max(axis=-1)
    audio, visual = means[..., AUDIO], means[..., VISUAL]
    alone = np.where(best >= SURE, lone, informative) * best  # what a layer needs to carry it alone
    audio_ok = (audio >= fraction * best) | ((audio >= alone) & (visual < informative * best))
    visual_ok = (visual >= fraction * best) | ((visual >= alone) & (audio < informative * best))
    return audio_ok * 1 + visual_ok * 2, means[..., :N_AV].argmax(axis=-1)


def grouped_moments(codes: np.ndarray, scores: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """Per group: count (K,), mean (K, 5) and covariance of the mean (K, 5, 5). codes (N,), scores (N, 5).

    The covariance of a mean is the videos' covariance over n, plus PRIOR_VARIANCE / n^2 on the
    diagonal (a pseudo-video that could score anywhere): a category of three identical videos is not
    known exactly.
    """
    n = np.bincount(codes, minlength=n_groups).astype(float)
    width = scores.shape[1]

    def sums(values: np.ndarray) -> np.ndarray:
        """Per-group sums of each column of values (N, k) -> (K, k): bincount, far faster than np.add.at."""
        return np.stack([np.bincount(codes, weights=values[:, j], minlength=n_groups) for j in range(values.shape[1])],
                        axis=1)

    mean = sums(scores) / np.maximum(n, 1)[:, None]
    centred = scores - mean[codes]
    rows, cols = np.triu_indices(width)
    upper = sums(centred[:, rows] * centred[:, cols])  # (K, 15): each pair once
    outer = np.zeros((n_groups, width, width))
    outer[:, rows, cols] = upper
    outer[:, cols, rows] = upper
    safe = np.maximum(n, 1)[:, None, None]
    cov = outer / np.maximum(safe - 1, 1) / safe + np.eye(scores.shape[1]) * (PRIOR_VARIANCE / safe ** 2)
    return n, mean, cov


def call_support(codes: np.ndarray, scores: np.ndarray, n_groups: int, *, fraction: float, informative: float,
                 lone: float, draws: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """Each group's call on its mean scores and how often redrawn means give the same one.

    codes (N,) each video's category index in [0, n_groups); scores (N, 5) its layers' scores.
    Returns per category (K,): n, means (K, 5), group (a GROUP_CODES code), layer (the leading
    audio-visual layer's index), group_support and type_support (shares of `draws`), seeded.
    """
    n, mean, cov = grouped_moments(codes, np.asarray(scores, float), n_groups)
    group, layer = call_groups(mean, fraction=fraction, informative=informative, lone=lone)
    root = np.linalg.cholesky(cov)  # (K, 5, 5); the diagonal prior keeps it positive definite
    noise = np.random.default_rng(seed).standard_normal((draws, n_groups, scores.shape[1]))
    drawn = mean[None] + np.einsum("kij,dkj->dki", root, noise)
    drawn_group, drawn_layer = call_groups(drawn, fraction=fraction, informative=informative, lone=lone)
    return {"n": n, "means": mean, "group": group, "layer": layer,
            "group_support": (drawn_group == group[None]).mean(axis=0),
            "type_support": (drawn_layer == layer[None]).mean(axis=0)}
