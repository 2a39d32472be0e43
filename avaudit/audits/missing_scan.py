"""What missing-labels measures over every row, taken a block of rows at a time: never the (N, 5, C) float64
confidences (6.4 GB at ten million rows of 16 classes), only what its rules keep of them.

`read(rows)` gives (scores, confidences), each (n, 5, C) float64, of rows numbered 0..N-1 (any subset, in
ascending order): the scores eq. 7 compares, the confidences the rules measure. Three kinds of reading:
- `eq7_candidates`: one pass over every row: the eq. 7 labels the annotation lacks, each with its layers'
  confidences in it, and the counts `captured` is decided on;
- `label_medians`: per label, its rows (those annotated with it) read again, a group of (layer, class) columns
  at a time: the medians of each candidate's confusion and reciprocal confusion, which need every value of a
  column of the label's rows at once. A group holds at most MEDIAN_VALUES of them;
- the rows with one label, for `reliable_layers` (layertrust.py).
Each gives exactly what the same rule computes over the whole array at once, bit for bit: the same values in
the same order reach the same numpy calls.

Pure numpy and pandas: a reader in, arrays out.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from avaudit.audits.decisions import multilabel
from avaudit.vocab import LAYERS

Reader = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
RECIPROCAL_AT_ONCE = 8  # columns whose reciprocal medians are taken at a time
MEDIAN_VALUES = 1 << 25  # float64 values a group of columns holds for its medians: 256 MB (twice as many float32
# ones); at 10M rows of 16 classes every column of a label in one group, its rows read once


@dataclass
class Annotation:
    """Each row's annotated classes: a code a row into the distinct label texts, and each text's classes.

    A row's marks are `sets[codes[row]]`; code -1 (no label, or not text) is the last set, which has none.
    """
    codes: np.ndarray  # (N,) integer codes into sets[:-1], -1: none
    sets: np.ndarray  # (K + 1, C) bool

    def __len__(self) -> int:
        return len(self.codes)

    def marks(self, rows: np.ndarray | slice) -> np.ndarray:
        """(n, C) bool: the classes each of `rows` is annotated with."""
        return self.sets[self.codes[rows]]

    def members(self, cls: int) -> np.ndarray:
        """The rows annotated with class `cls`, ascending."""
        return np.flatnonzero(self.sets[:, cls][self.codes])


def annotated(labels: pd.Series, classes: list[str]) -> Annotation:
    """Each row's classes among its ';'-joined labels (missing or unknown names: none), a code a row.

    A categorical column (the manifest's `labels`) keeps its own codes; other text is coded first.
    """
    if isinstance(labels.dtype, pd.CategoricalDtype):
        codes, texts = labels.cat.codes.to_numpy(), labels.cat.categories.to_numpy(dtype=object)
    else:
        codes, texts = pd.factorize(pd.Series([value if isinstance(value, str) else "" for value in
                                               labels.to_numpy(dtype=object).tolist()], dtype=object))
    index = {name: i for i, name in enumerate(classes)}
    text = pd.Series([value if isinstance(value, str) else "" for value in np.asarray(texts).tolist()], dtype=str)
    names = text.str.split(";").explode() if text.str.contains(";", regex=False).any() else text
    found = names.str.strip().map(index)
    known = found.notna().to_numpy()
    sets = np.zeros((len(text) + 1, len(classes)), bool)
    sets[names.index.to_numpy()[known], found.to_numpy()[known].astype(int)] = True
    return Annotation(np.asarray(codes), sets)


def blocks(n: int, size: int) -> list[slice]:
    """Slices of `size` rows covering n."""
    return [slice(start, start + size) for start in range(0, n, max(size, 1))]


def eq7_candidates(read: Reader, annotation: Annotation, n_classes: int, *, min_confidence: float,
                   size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """(video, cls, layer, layer confidences (M, 5), `captured`'s counts (5, C, C) and (C,)) of every (video,
    class) eq. 7 keeps that the annotation lacks, in video then class order, whose `layer` (the most confident
    of the layers whose argmax kept it, earliest on ties) is at least `min_confidence` sure of it.

    Eq. 7's set is taken over the scores; the layers whose argmax is the candidate and that eq. 7 keeps are
    those holding its largest score.
    """
    parts: tuple[list[np.ndarray], ...] = ([np.zeros(0, np.int64)], [np.zeros(0, np.int32)], [np.zeros(0, np.int8)],
                                           [np.zeros((0, len(LAYERS)))])  # video, cls, layer, layer confidences
    named = np.zeros((len(LAYERS), n_classes, n_classes), np.int64)
    per_label = np.zeros(n_classes, np.int64)
    for part in blocks(len(annotation), size):
        rows = np.arange(part.start, min(part.stop, len(annotation)))
        scores, confidences = read(rows)
        marks = annotation.marks(part)
        video, cls = np.nonzero(multilabel(scores) & ~marks)
        layer_scores = scores[video, :, cls]  # (m, 5): each layer's score for the candidate
        voters = (scores.argmax(axis=-1)[video] == cls[:, None]) & (layer_scores >= layer_scores.max(axis=1,
                                                                                                     keepdims=True))
        layer_conf = confidences[video, :, cls]
        best = np.where(voters, layer_conf, -np.inf).argmax(axis=1)
        keep = layer_conf[np.arange(len(video)), best] >= min_confidence
        for column, values in zip(parts, (rows[video[keep]], cls[keep].astype(np.int32), best[keep].astype(np.int8),
                                          layer_conf[keep])):
            column.append(values)
        label_named, label_count = captured_counts(confidences, marks)
        named += label_named
        per_label += label_count
    joined = []
    for column in parts:  # each column's blocks let go once joined: one column held twice, not all of them
        joined.append(np.concatenate(column))
        column.clear()
    return joined[0], joined[1], joined[2], joined[3], (named, per_label)


def captured_counts(confidences: np.ndarray, marks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(on the videos of each label, how often each layer's argmax is each class: (5, C, C) [layer, label, class];
    each label's videos (C,)), of a block of rows: counts, summed over blocks."""
    n_classes = marks.shape[1]
    top = confidences.argmax(axis=-1)  # (n, 5)
    video, label = np.nonzero(marks)
    named = np.stack([np.bincount(label * n_classes + top[video, layer], minlength=n_classes ** 2).reshape(
        n_classes, -1) for layer in range(top.shape[1])])
    return named.astype(np.int64), np.bincount(label, minlength=n_classes)


def leave_one_out_median(values: np.ndarray, row: np.ndarray, own: np.ndarray) -> np.ndarray:
    """Median of values[row[j]] without one entry equal to own[j], for each j, in float64. (J,).

    values (K, n), partitioned in place (float32 ones too: their order is their float64 values'); every own[j]
    must be in its row (removing any one of several equal entries leaves the same values). Fewer than 2 entries
    a row leave nothing: NaN.
    """
    n = values.shape[1]
    if n < 2:
        return np.full(len(own), np.nan)
    lo, hi = (n - 2) // 2, (n - 1) // 2  # the middle of the n - 1 entries left
    values.partition(sorted({lo, lo + 1, hi, hi + 1}), axis=1)  # those order statistics, in place

    def left(j: int) -> np.ndarray:
        """The j-th smallest once own is gone: the next one up where own ranks at or below j."""
        return np.where(values[row, j] >= own, values[row, j + 1], values[row, j]).astype(float, copy=False)

    return (left(lo) + left(hi)) / 2


def label_medians(read: Reader, annotation: Annotation, video: np.ndarray, layer: np.ndarray, cls: np.ndarray,
                  own: np.ndarray, *, learned: Callable | None = None, size: int,
                  budget: int = MEDIAN_VALUES, narrow: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(confusion, reciprocal confusion) of each candidate (video, layer, cls (M,); own (M,) its layer's
    confidence in cls on its video), NaN where nothing judges it.

    confusion: for each label A of the candidate's video, the median over the other videos annotated A of the
    layer's confidence in cls; the largest over the video's labels. reciprocal: for each label A of the video,
    the median over the videos annotated cls and not A of the layer's confidence in A; the largest.
    `learned(layer, A, cls)` (K,) bool: the (layer, A) columns left out of cls's reciprocal.
    Both are medians over one label's rows: each label's rows are read a group of (layer, class) columns at a
    time (`column_groups`), the confusion's columns (layer, cls) and the reciprocal's (layer, A) together.
    `narrow`: the confidences `read` gives are float32 values (a raw softmax of float32 logits) in float64, so
    the columns are held in float32, exactly, twice as many in the same bytes: at ten million rows of 16 classes
    a label's rows were read three times over, for three groups of columns (benchmarks/README.md, eighth round).
    """
    confusion, reciprocal = np.full(len(video), np.nan), np.full(len(video), np.nan)
    pair, label = np.nonzero(annotation.marks(video))  # (candidate, one of its video's labels)
    store = np.empty(0, np.float32 if narrow else float)  # every group's columns, in one buffer: fresh pages cost
    for a in np.unique(np.r_[label, cls[pair]]):
        members = annotation.members(a)
        if not len(members):
            continue
        near = pair[label == a]  # confusion: the candidates of a video annotated a
        far, far_label = pair[cls[pair] == a], label[cls[pair] == a]  # reciprocal: those of class a, each label
        near_keys, near_column = np.unique(np.stack([layer[near], cls[near]]), axis=1, return_inverse=True)
        far_keys, far_column = np.unique(np.stack([layer[far], far_label]), axis=1, return_inverse=True)
        counted = np.ones(far_keys.shape[1], bool) if learned is None else \
            ~learned(far_keys[0], far_keys[1], np.full(far_keys.shape[1], a))
        keys = np.unique(np.concatenate([near_keys, far_keys[:, counted]], axis=1), axis=1)
        for group in column_groups(keys.shape[1], len(members), budget * (2 if narrow else 1)):
            if store.size < len(group) * len(members):
                store = np.empty(len(group) * len(members), store.dtype)
            values = column_values(read, members, keys[:, group], size,
                                   store[: len(group) * len(members)].reshape(len(group), len(members)))
            place = {key: i for i, key in enumerate(zip(*keys[:, group].tolist()))}
            far_at = np.array([place.get(key, -1) for key in zip(*far_keys.tolist())], np.int64)
            far_at[~counted] = -1
            held, rows, pairs = held_rows(far_at, far_column.ravel())
            if pairs.any():
                median = reciprocal_medians(values, far_at[held], annotation.marks(members), far_keys[1, held])
                np.fmax.at(reciprocal, far[pairs], median[rows])
            near_at = np.array([place.get(key, -1) for key in zip(*near_keys.tolist())], np.int64)
            pairs = near_at[near_column.ravel()] >= 0
            if pairs.any():  # values partitioned in place, the reciprocal's medians taken
                np.fmax.at(confusion, near[pairs], leave_one_out_median(values, near_at[near_column.ravel()[pairs]],
                                                                        own[near[pairs]]))
    return confusion, reciprocal


def reciprocal_medians(values: np.ndarray, at: np.ndarray, marks: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """The median of each column values[at[j]] over the members not annotated classes[j] (marks (n, C): the
    members' classes), in float64. (J,). A few columns at a time (RECIPROCAL_AT_ONCE): a float64 copy of every
    held column at once was 375 MB at ten million rows of 16 classes."""
    median = np.empty(len(at))
    for start in range(0, len(at), RECIPROCAL_AT_ONCE):
        part = slice(start, start + RECIPROCAL_AT_ONCE)
        chosen = values[at[part]].astype(float)  # a copy, NaN where a member is annotated the column's class too
        chosen[marks[:, classes[part]].T] = np.nan
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a key whose every video is annotated A: NaN
            median[part] = np.nanmedian(chosen, axis=1)
    return median


def held_rows(at: np.ndarray, column: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(the keys held in a group (h,), each held pair's row among them, which pairs are held (P,) bool) of keys'
    places `at` (K,) in the group (-1: not in it) and each pair's key `column` (P,)."""
    held = np.flatnonzero(at >= 0)
    rank = np.full(len(at), -1)
    rank[held] = np.arange(len(held))
    pairs = rank[column] >= 0
    return held, rank[column[pairs]], pairs


def column_groups(n_keys: int, n_rows: int, budget: int) -> list[np.ndarray]:
    """The keys 0..n_keys-1 in groups of at most budget // n_rows (at least one)."""
    per_group = max(budget // max(n_rows, 1), 1)
    return [np.arange(start, min(start + per_group, n_keys)) for start in range(0, n_keys, per_group)]


def column_values(read: Reader, rows: np.ndarray, keys: np.ndarray, size: int, out: np.ndarray) -> np.ndarray:
    """`out` (k, n) filled with the confidences of `rows` (ascending) in (layer, class) columns `keys` (2, k), read
    a block of rows at a time, each block within `size` row numbers (`spans`)."""
    values = out
    for part in spans(rows, size):
        values[:, part] = read(rows[part])[1][:, keys[0], keys[1]].T
    return values


def spans(rows: np.ndarray, size: int) -> list[slice]:
    """Slices of `rows` (ascending) each within `size` row numbers, so at most `size` rows: one label's rows
    spread over the run (every 16th row of 16 classes) are read as the cache stores them, a span of rows a
    read, not a span 16 blocks long."""
    cuts, start = [], 0
    while start < len(rows):
        end = min(int(np.searchsorted(rows, rows[start] + max(size, 1))), start + max(size, 1))
        cuts.append(slice(start, end))
        start = end
    return cuts
