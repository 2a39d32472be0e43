"""Which layers of a run can vouch for a missing label, judged on the run's own single-labelled videos.

A weak model's layers name look-alikes very surely; a visual backbone trained too briefly names classes at
random; an audio layer hears a sound that goes with every video of a visual category as that sound's own
class. missing-labels asks these before it counts a layer's name, or a layer's silence, as evidence
(docs/decisions-bench.md, Rule 2). Pure numpy: arrays in, arrays out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avaudit.audits.bias import shifted_margins
from avaudit.audits.uncertainty import (
    FOUND_SHARE,
    PERCEIVE_SHARE,
    perceived_categories,
    perceiving_layers,
    rival_evidence,
)
from avaudit.vocab import AV_LAYERS, LAYERS

NAMES_RIGHT = 0.8  # a fused layer whose sure names (SURE) are the annotated label less often than this names nothing;
PAIR_NAMES_RIGHT = 0.5  # a unimodal one, the label or its partner (all three chosen on planted seeds 23 and 32,
SURE = 0.5  # checked on the bench's tuning seeds: docs/decisions-bench.md)


@dataclass
class LayerEvidence:
    """What the run's single-labelled videos say of its layers (`layer_evidence`)."""
    reliable: np.ndarray  # (5,) bool: whose names count as evidence of a missing label (`reliable_layers`)
    perceived: np.ndarray  # (C, 2) bool: does the audio (visual) layer perceive the class, up to a partner, on its
    # own videos (`perceived_categories` at FOUND_SHARE, on both sides); no such videos: no
    partner: np.ndarray  # (C, 2) that partner, a class index; -1: none
    suffices: np.ndarray  # (C, 2) bool: does the layer single the class out alone there (its mean margin over the
    # class's rival at least `fraction` of the best fused layer's, as `bias` asks); no such videos: no


def reliable_layers(confidences: np.ndarray, marks: np.ndarray, *, fraction: float) -> np.ndarray:
    """Which layers' names count as evidence of a missing label in this run: `layer_evidence`'s `reliable`."""
    return layer_evidence(confidences, marks, fraction=fraction).reliable


def layer_evidence(confidences: np.ndarray, marks: np.ndarray, *, fraction: float) -> LayerEvidence:
    """Which layers' names count as evidence of a missing label in this run, and which classes the unimodal
    layers perceive, judged on its single-labelled videos. (N, 5, C), (N, C) -> `LayerEvidence`.

    A unimodal layer must perceive its modality as `bias` asks it (`perceiving_layers` at `fraction`, bias's
    sufficiency fraction): one that does not (a
    visual backbone trained too briefly: top-1 near chance, yet often very sure) names classes at random.
    And a layer's sure names must be right (`names_right`): the label itself, at least NAMES_RIGHT of the
    time, for a fused layer; the label or the partner it cannot tell the label from (its rival, as `bias`
    chooses it), at least PAIR_NAMES_RIGHT, for a unimodal one. Fewer than two single-labelled videos: all
    reliable, no class perceived.
    """
    out = np.ones(len(LAYERS), bool)
    perceived = np.zeros((marks.shape[1], 2), bool)
    partner = np.full((marks.shape[1], 2), -1)
    single = marks.sum(axis=1) == 1
    if single.sum() < 2:
        return LayerEvidence(out, perceived, partner, perceived.copy())
    present, codes = np.unique(marks[single].argmax(axis=1), return_inverse=True)
    confidences = confidences if single.all() else confidences[single]  # no copy of a single-labelled set
    evidence = rival_evidence(confidences, codes, present)
    unimodal = [LAYERS.index("audio"), LAYERS.index("visual")]
    _, means, _ = shifted_margins(evidence, present[codes], fraction=fraction)
    out[unimodal] = perceiving_layers(evidence.pair, means, marks.shape[1], PERCEIVE_SHARE, fraction)
    rival = np.where(evidence.rival >= 0, present[evidence.rival], -1)[codes]  # (n, 5) class indices
    rival[:, :len(AV_LAYERS)] = -1  # a fused layer tells every pair apart
    bar = np.full(len(LAYERS), NAMES_RIGHT)
    bar[unimodal] = PAIR_NAMES_RIGHT
    perceived[present] = perceived_categories(evidence.pair, marks.shape[1], FOUND_SHARE, evidence.partner)
    partner[present] = np.where(evidence.partner >= 0, present[evidence.partner], -1)[:, unimodal]
    suffices = np.zeros_like(perceived)
    best = means[:, :len(AV_LAYERS)].max(axis=1, keepdims=True)
    suffices[present] = (best > 0) & (means[:, unimodal] >= fraction * best)
    return LayerEvidence(out & (names_right(confidences, present[codes], rival) >= bar), perceived, partner, suffices)


def names_right(confidences: np.ndarray, label: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """How often each layer's sure names (top-1 confidence >= SURE) are the video's label, or its partner.
    (n, 5, C), (n,) class indices, (n, 5) class indices (-1: none) -> (5,) in [0, 1]; 1 where never sure.

    The run's own measure of a layer's reliability: a fused layer of a model trained a few epochs names a
    look-alike of the label, very sure, on a third of the videos, and its disagreements with the annotation
    are then mostly its errors; a strong layer's are rare, and more often the missing labels sought. Missing
    labels lower it a little (the layer is right and the annotation is not): the bars leave room for that.
    """
    top = confidences.argmax(axis=-1)  # (n, 5)
    sure = np.take_along_axis(confidences, top[..., None], axis=-1)[..., 0] >= SURE
    right = ((top == label[:, None]) | (top == partner)) & sure
    return np.where(sure.any(axis=0), right.sum(axis=0) / np.maximum(sure.sum(axis=0), 1), 1.0)
