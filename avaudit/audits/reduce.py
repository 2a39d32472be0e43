"""The audits' inputs taken a block of rows at a time: each decision keeps what it needs of the (N, 5, C)
confidences (per row values, per-class counts), never the array (3.2 GB at ten million rows of 16 classes).

`read(position)` gives (logits, confidences), each (n, 5, C), of the rows at `position` (any order, repeats
allowed); the caller owns where they come from (the logit cache, inference.pipeline.Audit). Each function
returns exactly what its rule computes over the whole array at once, bit for bit.

Pure numpy (and pandas' categoricals for text a row): a reader in, arrays out.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Callable

import numpy as np
import pandas as pd

from avaudit.audits.decisions import multilabel, true_label_confidence, vote
from avaudit.audits.layerstats import layer_statistics
from avaudit.audits.uncertainty import RIVAL_SAMPLE, RivalEvidence, margins_over, rival_evidence
from avaudit.vocab import LAYERS

Reader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def blocks(n: int, size: int) -> list[slice]:
    """Slices of `size` rows covering n."""
    return [slice(start, start + size) for start in range(0, n, max(size, 1))]


def gathered(read: Reader, rows: np.ndarray, size: int, dtype=None) -> np.ndarray:
    """The confidences (n, 5, C) of `rows` in one array of `dtype` (default theirs), read `size` rows at a time:
    the logits and confidences of every row read at once would be twice its size again."""
    size = max(size, 1)
    first = read(rows[:size])[1]
    out = np.empty((len(rows), *first.shape[1:]), dtype or first.dtype)
    out[:size] = first
    for part in blocks(len(rows), size)[1:]:
        out[part] = read(rows[part])[1]
    return out


def video_scores(confidences: np.ndarray, labels: np.ndarray, *,
                 rule: str) -> tuple[np.ndarray, RivalEvidence | None]:
    """(true-label confidences (N, 5), `rival_evidence` under sufficiency, None under the paper's rule) of the
    whole array at once, the categories numbered in sorted order."""
    true_conf = true_label_confidence(confidences, labels)  # (N, 5)
    if rule != "sufficiency":
        return true_conf, None
    present = np.unique(labels)
    return true_conf, rival_evidence(confidences, np.searchsorted(present, labels), present)


def rival_sample(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Row numbers of each category's first RIVAL_SAMPLE rows, in order: the rows `rival_margins` chooses rivals on."""
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(codes, minlength=n_groups))[:-1]]
    rank = np.arange(len(order)) - starts[codes[order]]
    return np.sort(order[rank < RIVAL_SAMPLE])


class Inexact(ValueError):
    """A true-label confidence that the narrower type asked for does not hold exactly."""


def bias_inputs(read: Reader, position: np.ndarray, labels: np.ndarray, *, rule: str, size: int,
                narrow: bool = False) -> tuple[np.ndarray, RivalEvidence | None, dict]:
    """(true-label confidences (N, 5), `rival_evidence` or None: `video_scores`; layer_statistics of the logits)
    of the rows at `position` with class `labels`, read `size` rows at a time, each row once.

    The rivals, leans and pairs are `rival_evidence`'s of the rival sample (each category's first RIVAL_SAMPLE
    rows, read first and kept), the rows it measures them on over the whole array too; each block of the other
    rows then has its margins `margins_over` those rivals, row by row, as over the whole array.
    `narrow`: the true-label confidences held in float32 where each is exactly a float32 (float32 confidences
    read in float64, the rules' type: 20 bytes a row, not 40), the same values; read again in the reader's type
    from the first one that is not (calibrated confidences: at the first block).
    """
    if narrow:
        try:
            return scores_of(read, position, labels, rule=rule, size=size, store=np.dtype(np.float32))
        except Inexact:
            pass
    return scores_of(read, position, labels, rule=rule, size=size, store=None)


def scores_of(read: Reader, position: np.ndarray, labels: np.ndarray, *, rule: str, size: int,
              store: np.dtype | None) -> tuple[np.ndarray, RivalEvidence | None, dict]:
    """`bias_inputs`, the true-label confidences held in `store` (None: the confidences' own type)."""
    present = np.unique(labels)
    codes = np.searchsorted(present, labels)
    sample = rival_sample(codes, len(present)) if rule == "sufficiency" else np.zeros(0, np.int64)
    nothing = read(position[:0])[1]  # the confidences' dtype (float64 when calibrated) and row shape
    sample_conf = np.empty((len(sample), *nothing.shape[1:]), nothing.dtype)
    # filled in place a block at a time: a list of blocks joined at the end held both (2 x 400 MB at 10M rows)
    true_conf = np.empty((len(position), len(LAYERS)), nothing.dtype if store is None else store)
    statistics = layer_statistics(np.zeros((0, len(LAYERS), 1), np.float32), np.zeros(0, np.int64))
    for part in blocks(len(sample), size):
        sample_conf[part], statistics = read_into(true_conf, statistics, read, position, labels, sample[part])
    on_sample = rival_evidence(sample_conf, codes[sample], present) if rule == "sufficiency" else None
    del sample_conf
    one = on_sample is not None and (on_sample.rival < 0).any()  # one category: each video's own closest class
    margins = None if on_sample is None else np.empty((len(position), len(LAYERS)), on_sample.margins.dtype)
    if on_sample is not None:
        margins[sample] = on_sample.margins  # margins_over the rivals, as a block's
    read_before = np.zeros(len(position), bool)
    read_before[sample] = True
    for part in blocks(len(position), size):
        rows = part.start + np.flatnonzero(~read_before[part])
        confidences, statistics = read_into(true_conf, statistics, read, position, labels, rows)
        if on_sample is not None:
            margins[rows] = (rival_evidence(confidences, codes[rows], present).margins if one else
                             margins_over(confidences, codes[rows], present, on_sample.rival))
    if on_sample is None:
        return true_conf, None, statistics
    return true_conf, replace(on_sample, margins=margins), statistics


def read_into(true_conf: np.ndarray, statistics: dict, read: Reader, position: np.ndarray, labels: np.ndarray,
              rows: np.ndarray) -> tuple[np.ndarray, dict]:
    """(the confidences of `rows` (n, 5, C), `statistics` with their layer_statistics added); their true-label
    confidences written into `true_conf`."""
    logits, confidences = read(position[rows])
    values = true_label_confidence(confidences, labels[rows])
    if values.dtype != true_conf.dtype and not np.array_equal(values.astype(true_conf.dtype), values):
        raise Inexact(f"true-label confidences not held exactly in {true_conf.dtype}")
    true_conf[rows] = values
    return confidences, summed(statistics, layer_statistics(logits, labels[rows]))


def summed(counts: dict, more: dict) -> dict:
    """Two count documents (layer_statistics) added key by key."""
    return {key: summed(value, more[key]) if isinstance(value, dict) else value + more[key]
            for key, value in counts.items()}


def predict_columns(read: Reader, position: np.ndarray, classes: list[str], *,
                    size: int) -> dict[str, np.ndarray | pd.Categorical]:
    """Each row's vote (eq. 6), its eq. 7 labels (';'-joined) and each layer's top confidence (conf_<layer>), over
    confidences, read `size` rows at a time. The vote and the labels are categoricals: a code a row, each class
    name and each distinct set's text held once (a run holds a few hundred sets, not a string a row)."""
    votes, sets, chosen = [], {}, []
    top: dict[str, list] = {f"conf_{layer}": [] for layer in LAYERS}
    for part in blocks(len(position), size):
        probs = read(position[part])[1]
        votes.append(vote(probs))
        chosen.append(set_codes(multilabel(probs), sets))
        for i, layer in enumerate(LAYERS):
            top[f"conf_{layer}"].append(probs[:, i].max(axis=-1))
    names = np.asarray(classes, dtype=object)
    texts = [";".join(names[np.unpackbits(np.frombuffer(key, np.uint8), count=len(names)).astype(bool)])
             for key in sets]
    distinct, recode = np.unique(np.asarray(texts, dtype=object), return_inverse=True)  # sets of one text, one code
    return {"vote": pd.Categorical.from_codes(joined(votes, np.int64), classes),
            "labels_eq7": pd.Categorical.from_codes(recode.astype(np.int64)[joined(chosen, np.int64)], distinct),
            **{name: joined(parts, np.float32) for name, parts in top.items()}}


def set_codes(chosen: np.ndarray, sets: dict[bytes, int]) -> np.ndarray:
    """Each row's set of chosen classes (n, C) bool as a number (n,), the sets numbered as first met across blocks:
    `sets` maps each set's packed bits to its number and grows with the new ones."""
    distinct, which = np.unique(np.packbits(chosen, axis=1), axis=0, return_inverse=True)
    numbers = np.array([sets.setdefault(row.tobytes(), len(sets)) for row in distinct], np.int64)
    return numbers[which.ravel()]


def joined(parts: list[np.ndarray], dtype) -> np.ndarray:
    """The blocks' arrays as one, of `dtype` when there were none."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype)
