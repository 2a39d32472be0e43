"""Decisions from the five layers' outputs: pure functions over arrays, no model and no I/O.

Shapes: logits and confidences are (N, 5, C) in LAYERS order; labels are (N,) class indices.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from avaudit.vocab import LAYERS


def check_layer_arrays(logits, labels) -> tuple[np.ndarray, np.ndarray]:
    """(logits (N, 5, C), labels (N,)) as arrays, or a ValueError saying which shape is wrong."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if logits.ndim != 3 or logits.shape[1] != len(LAYERS):
        raise ValueError(f"logits must be (N, {len(LAYERS)}, C), got {logits.shape}")
    if labels.shape != logits.shape[:1]:
        raise ValueError(f"labels must be ({len(logits)},), got {labels.shape}")
    return logits, labels


def softmax(logits: np.ndarray) -> np.ndarray:
    """Per-layer softmax over classes: the confidences the audits use by default. (N, 5, C)."""
    logits = np.asarray(logits)
    out = (logits - logits.max(axis=-1, keepdims=True)).astype(np.result_type(logits, np.float32), copy=False)
    return _exp_normalised(out)


def _exp_normalised(out: np.ndarray) -> np.ndarray:
    """exp(out) / its sum over classes, in place: a re-audit of ten million videos holds 800 million of these."""
    np.exp(out, out=out)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def calibrated_softmax(logits: np.ndarray, temperatures: np.ndarray) -> np.ndarray:
    """softmax(logits / T) per layer. (N, 5, C), (5,) -> (N, 5, C)."""
    temperatures = np.asarray(temperatures, float)
    if temperatures.shape != (len(LAYERS),) or not np.all(temperatures > 0):
        raise ValueError(f"temperatures must be {len(LAYERS)} positive numbers, got {temperatures!r}")
    scaled = np.divide(logits, temperatures[None, :, None], dtype=float)  # the one (N, 5, C) array it makes
    scaled -= scaled.max(axis=-1, keepdims=True)
    return _exp_normalised(scaled)


def probabilities(logits: np.ndarray, confidence: str = "raw", temperatures=None) -> np.ndarray:
    """The confidences the audits decide on: per-layer softmax over classes, temperature-scaled
    (calibrated_softmax) with `confidence` "calibrated" (the paper's stated limitation). (N, 5, C)."""
    if confidence == "calibrated":
        return calibrated_softmax(logits, np.asarray(temperatures))
    if confidence != "raw":
        raise ValueError(f"confidence must be raw or calibrated, not {confidence!r}")
    return softmax(logits)


def vote(confidences: np.ndarray) -> np.ndarray:
    """Eq. 6: the label most layers predict. (N, 5, C) -> (N,).

    No majority (two or more labels share the top count, e.g. 2-2-1 or 1-1-1-1-1): the label of
    the single most confident layer, as the paper says. Exact confidence ties go to the earlier
    layer in LAYERS order.
    """
    n, n_layers, n_classes = confidences.shape
    predicted = confidences.argmax(axis=-1)  # (N, 5)
    counts = np.zeros((n, n_classes), int)
    np.add.at(counts, (np.repeat(np.arange(n), n_layers), predicted.ravel()), 1)
    top = counts.max(axis=1)
    unique_top = (counts == top[:, None]).sum(axis=1) == 1
    most_confident_layer = confidences.max(axis=-1).argmax(axis=1)
    fallback = predicted[np.arange(n), most_confident_layer]
    return np.where(unique_top, counts.argmax(axis=1), fallback)


def multilabel(outputs: np.ndarray) -> np.ndarray:
    """Eq. 7: (N, C) bool set. Layer i's argmax p_i is kept iff O[i, p_i] >= O[l, p_i] for all l.

    `outputs` is whatever the caller compares across layers (the paper's O are logits); ties keep
    every tied layer's label, as the >= says.
    """
    n, n_layers, _ = outputs.shape
    predicted = outputs.argmax(axis=-1)  # (N, 5)
    rows = np.arange(n)[:, None]
    own = np.take_along_axis(outputs, predicted[..., None], axis=-1)[..., 0]  # O[i, p_i], (N, 5)
    best = outputs.max(axis=1)[rows, predicted]  # max_l O[l, p_i], (N, 5)
    keep = own >= best
    labels = np.zeros((n, outputs.shape[-1]), bool)
    labels[np.broadcast_to(rows, predicted.shape)[keep], predicted[keep]] = True
    return labels


def true_label_confidence(confidences: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each layer's confidence for the video's own label. (N, 5, C), (N,) -> (N, 5)."""
    labels = np.asarray(labels, dtype=np.int64)  # no videos: an empty float array from pandas
    return np.take_along_axis(confidences, labels[:, None, None].repeat(confidences.shape[1], 1), -1)[..., 0]


def video_modality(confidences: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The paper's rule: the layer most confident in the true label. -> (N,) layer indices.

    Ties go to the earlier layer in LAYERS order.
    """
    return true_label_confidence(confidences, labels).argmax(axis=1)


def category_modality(categories, layers, confidence, *, names=LAYERS) -> pd.DataFrame:
    """Table 3's per-category assignment: the majority of a category's videos' layers.

    categories: (N,) names; layers: (N,) layer names; confidence: (N,) each video's confidence in
    its true label at its assigned layer. A tie between layers goes to the one whose videos hold
    the larger summed confidence, then to the earlier layer name in LAYERS order.
    `names` lists every assignment a video can have (the five layers, plus `redundant` under the
    sufficiency rule); its order is the final tie-break.
    Returns one row per category (in the order of pandas' crosstab: a categorical's, or the names sorted):
    category, layer, n_videos, votes_<name> for every name.
    The votes are counted by code (`np.bincount`), and the summed confidences, by pandas' grouped sums
    (`tie_masses`), only where a tie needs them: a crosstab and pivot table of every video were ~100 bytes a row.
    """
    category, layer = pd.Categorical(categories), pd.Categorical(layers)
    names = list(names)
    # each layer category's column in `names`; one past them: a layer not among them (counted in no column, but
    # its category has a row, as in a crosstab); last, a missing layer (code -1): no row at all
    column = np.array([*(names.index(name) if name in names else len(names) for name in layer.categories), -1])
    where = column[layer.codes]
    counted = (where >= 0) & (category.codes >= 0)
    cells = np.bincount(category.codes[counted].astype(np.int64) * (len(names) + 1) + where[counted],
                        minlength=len(category.categories) * (len(names) + 1)).reshape(-1, len(names) + 1)
    present = np.flatnonzero(cells.sum(axis=1))
    count = cells[present, : len(names)]
    is_top = count == count.max(axis=1, keepdims=True)
    tied = is_top.sum(axis=1) > 1
    # Lexicographic key: votes first, then summed confidence; argmax takes the first (earliest) on ties.
    key = is_top.astype(float)
    if tied.any():
        mass = tie_masses(category, layer, confidence, present[tied], names)
        if not count.sum(axis=0).all():  # as a pivot table of every video reindexed to `names`: widened to float64
            mass = mass.astype(float)
        key[tied] = np.where(is_top[tied], mass + 1.0, 0.0)  # in the sums' float type, as the pivot table's
    result = pd.DataFrame({"category": category.categories[present], "layer": np.asarray(names)[key.argmax(axis=1)],
                           "n_videos": count.sum(axis=1)})
    for i, name in enumerate(names):
        result[f"votes_{name}"] = count[:, i]
    return result


def tie_masses(category: pd.Categorical, layer: pd.Categorical, confidence, tied: np.ndarray,
               names: list[str]) -> np.ndarray:
    """The summed confidence of each tied category's (codes `tied`) videos by layer (len(tied), len(names)): pandas'
    grouped sums of those categories' rows, each group's rows in their order, so each sum is the one a pivot table of
    every video gives, bit for bit."""
    rows = np.flatnonzero(np.isin(category.codes, tied))
    frame = pd.DataFrame({"category": np.asarray(category[rows], dtype=object),  # text: no unobserved rows or columns
                          "layer": np.asarray(layer[rows], dtype=object),
                          "confidence": np.asarray(confidence)[rows]})
    mass = frame.pivot_table(index="category", columns="layer", values="confidence", aggfunc="sum", fill_value=0.0)
    summed = mass.dtypes.iloc[0]  # the sums' own type: a reindex may widen the columns it adds
    return mass.reindex(index=category.categories[tied], columns=names, fill_value=0.0).to_numpy(summed)
