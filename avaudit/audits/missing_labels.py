"""Missing labels (eq. 7): classes some layer is surest of that the annotation does not name.

A unimodal layer cannot tell apart two categories that share its modality (the audio layer hears
the same sound in `hum660_orange` and `hum660_teal`), so it proposes the other one on most of the
category's videos. Such a candidate is the layer's systematic confusion, not a missing label: its
`confusion` is the layer's median confidence in the candidate over the *other* videos annotated with
the same label, near 0 for a label missing from a minority of them, large for a confusion, and
large too for a label missing from every video of the class (a sound that always goes with it).
`reciprocal` tells those two apart: a confused layer also names the label on the candidate's own
videos, a co-occurring sound does not. `precision` is the chance the candidate is right, estimated
from how much the layers see it (`candidate_evidence`), its confusion and reciprocal with a logistic
model fitted on the stress bench (`benchmarks/decision_bench.py --fit`; docs/decisions-bench.md), and 0
where the layer names the candidate on most videos of more than MAX_CAPTURED labels (`captured`: a layer
biased towards a class, which confusion and reciprocal take for a label missing from whole classes).
Given the categories' groups, a model trained with a sound that goes with every video of a visual class
(its audio layer names each class on the other's videos, as a confused layer does) keeps that sound as a
candidate, and a candidate must be heard and/or seen as its group needs. The estimate assumes layers as
reliable as the bench's, so a candidate whose layer is not reliable in this run, judged on its single-labelled
videos (`layertrust.reliable_layers`: a weak model's layers name look-alikes very surely), gets 0 too.

Pure functions: a manifest table and logits in, a DataFrame out, no model and no I/O.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd

from avaudit.audits.decisions import softmax
from avaudit.audits.layertrust import SURE, LayerEvidence, layer_evidence
from avaudit.audits.missing_scan import (
    MEDIAN_VALUES,
    Reader,
    annotated,
    blocks,
    eq7_candidates,
    label_medians,
)
from avaudit.vocab import LAYERS

COLUMNS = ("video_id", "path", "label", "candidate", "layer", "confidence", "confusion", "reciprocal",
           "mean_confidence", "precision")
# Logistic weights of a candidate's precision: intercept, logit(evidence), confusion, reciprocal (NaN counts
# 0), fitted on the bench's tuning seeds (`benchmarks/decision_bench.py --fit`).
PRECISION_WEIGHTS = (4.464, 2.739, 4.119, -80.689)
MAX_CAPTURED = 1  # a layer naming a class on most videos of more labels than this is biased to it: planted tuning
LONE_POWER = 6  # a unimodal layer alone counts as its confidence to this power: chosen on the bench
WHOLE_CLASS = 0.5  # with groups: a layer naming a candidate at this median confusion names it class-wide
MODALITY_FLOOR = 1.0  # with groups: a candidate its category's layers perceive under this x chance (1 / C) on
# its video is not there (chosen on the bench's learned co-occurrences: docs/decisions-bench.md)
CANDIDATES_AT_ONCE = 65_536  # candidates whose (C,) annotations and modality checks are made at once


def candidate_evidence(confidence: np.ndarray, mean_confidence: np.ndarray, unimodal: np.ndarray) -> np.ndarray:
    """How much the layers see a candidate: their mean confidence, or where a unimodal layer names it, that
    layer's confidence to LONE_POWER if larger. (M,) each -> (M,).

    A label only one modality carries (a sight in a video annotated with a sound) is invisible to the
    other unimodal layer and to the fused layers that follow the annotated event: its mean is low
    however sure the layer that names it is; a lone layer must be very sure to count (0.95 -> 0.74).
    """
    return np.maximum(mean_confidence, np.where(unimodal, confidence ** LONE_POWER, 0.0))


def estimated_precision(evidence: np.ndarray, confusion: np.ndarray, reciprocal: np.ndarray) -> np.ndarray:
    """The chance each candidate is a missing label, from the bench's logistic model. (M,) each -> (M,)."""
    p = np.clip(evidence, 1e-4, 1 - 1e-4)
    features = np.stack([np.ones(len(evidence)), np.log(p / (1 - p)), np.nan_to_num(confusion),
                         np.nan_to_num(reciprocal)], axis=1)
    return 1 / (1 + np.exp(-features @ np.asarray(PRECISION_WEIGHTS)))


def learned_cooccurrence(groups: np.ndarray, layer: np.ndarray, label: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Is a unimodal layer naming label A on the videos of class Y something it learned, not a confusion? (K,) bool.

    groups (C,): each class's group as `bias` calls it (audio, visual, audiovisual, redundant, unclear);
    layer, label, cls (K,): the layer, A and Y. True where the layer is the audio (visual) layer, A's group
    is visual (audio) and Y's is not: A cannot be heard, so an audio layer that names it learned it from a
    sound that went with A's training videos, annotated or not; naming A on Y's videos and Y on A's is then
    no sign that it cannot tell two sounds apart, and Y's sound may well be in A's videos. Y's own group is
    often not `audio` then: its audio layer is torn between Y and A, so `bias` may call it unclear.
    """
    audio, visual = LAYERS.index("audio"), LAYERS.index("visual")
    other = np.where(layer == audio, "visual", np.where(layer == visual, "audio", ""))
    return (other != "") & (groups[label] == other) & (groups[cls] != other)


def unowned_class_wide(groups: np.ndarray, layer: np.ndarray, cls: np.ndarray, confusion: np.ndarray,
                       labels: np.ndarray) -> np.ndarray:
    """Is a layer naming class Y on most videos of a label (confusion >= WHOLE_CLASS) where the groups do not say
    that Y is there? (M,) bool.

    groups (C,) as `bias` calls them; layer, cls, confusion (M,); labels (M, C) each candidate's video's
    annotation. A layer that names Y on every video of X gives the same outputs whether Y is missing from all
    of X or the layer mistakes X for Y: the audio layer of a weak model trained where Y's videos all carried
    X's sound names Y wherever it hears it; a fused layer whose sight is weak names a grid sibling (same
    sound, other sight) on all of X. Only the groups tell them apart: for a unimodal layer, Y of the layer's
    modality (audio-visual, redundant) owns what the layer perceives, and a label of the other modality
    cannot; for a fused layer, Y's group must be known. Unclear: no candidate, rather than a confident wrong one.
    """
    audio, visual = LAYERS.index("audio"), LAYERS.index("visual")
    unimodal = (layer == audio) | (layer == visual)
    own, other = np.where(layer == audio, "audio", "visual"), np.where(layer == audio, "visual", "audio")
    owned = np.where(unimodal, np.isin(groups[cls], ["audiovisual", "redundant"]) | (groups[cls] == own),
                     groups[cls] != "unclear")
    disowned = unimodal & labels.any(axis=1) & ~(labels & (groups[None, :] != other[:, None])).any(axis=1)
    return ~owned & ~disowned & (np.nan_to_num(confusion) >= WHOLE_CLASS)


def modality_support(layer_conf: np.ndarray, cls: np.ndarray, groups: np.ndarray,
                     perceives: np.ndarray | None = None, layers: LayerEvidence | None = None,
                     labels: np.ndarray | None = None) -> np.ndarray:
    """How much the unimodal layers that a candidate's category needs perceive it on its video. (M,).

    layer_conf (M, 5): each candidate's layers' confidences in it on its video; cls (M,) its class.
    An audio category must be heard (the audio layer's confidence in it), a visual one seen, an audio-visual
    one both heard and seen (the smaller), a redundant one either (the larger). `perceives` (audio, visual)
    bool: a layer that perceives nothing in this run (`layertrust.reliable_layers`) hears or sees nothing it
    could vouch for (0): a candidate that needs it is not confirmed. A class of another group (unclear) needs
    nothing (inf), or with `layers` (`layertrust.layer_evidence`) and `labels` (M, C: each candidate's video's
    annotation) what `unclear_support` asks.
    """
    reliable = np.asarray((True, True) if perceives is None else perceives, bool)
    heard = layer_conf[:, LAYERS.index("audio")] * reliable[0]
    seen = layer_conf[:, LAYERS.index("visual")] * reliable[1]
    unclear = np.full(len(cls), np.inf) if layers is None or labels is None else \
        unclear_support(np.stack([heard, seen], axis=1), cls, groups, reliable, layers, labels)
    group = groups[cls]
    return np.select([group == "audio", group == "visual", group == "audiovisual", group == "redundant"],
                     [heard, seen, np.minimum(heard, seen), np.maximum(heard, seen)], unclear)


def unclear_support(perceived: np.ndarray, cls: np.ndarray, groups: np.ndarray, reliable: np.ndarray,
                    layers: LayerEvidence, labels: np.ndarray) -> np.ndarray:
    """How much the evidence vouches for candidates whose category's group is unclear. (M, 2) heard and seen
    (0 by a layer that perceives nothing in the run: `reliable` (2,)), (M,) classes -> (M,).

    The unimodal layers that perceive the class wherever it is annotated (`LayerEvidence.perceived`) must
    perceive it where it is proposed (a weak model's fused layer that sees an orange disc in a red square, on
    a video of another sound, proposes a category whose sound is not there), and at least one layer must:
    whatever its group, some modality carries it (a fused layer that learned a tone with every shape of a
    category proposes it on the tone's clips with any shape). Where no layer perceives the class wherever it is
    annotated, a layer vouches for it only where the other modality's layer perceives its modality in the run, or
    where it names it surely (`layertrust.SURE`): a weak audio layer gives a grid sibling of the label that shares
    its tone a sixth of its confidence, and with a blind visual layer nothing tells the sibling's sight. What a
    layer perceives as one of the video's own labels (the class's partner, that it cannot tell it from) is the
    label's, unless the label's group is the other modality's. A layer that perceives the class but does not
    single it out alone (`LayerEvidence.suffices`: a tone two grid categories share) says "the class or its
    partner": where the other modality's layer perceives nothing in the run, nothing tells which (0), unless the
    partner is one of the video's labels of the other modality, which owns nothing the layer perceives (the audio
    layer of a model trained where every `visual_cyan_diamond` clip sounded `audio_tone1450` hears that tone as
    "the tone or the diamond": on a diamond clip, a visual label, it is the tone).
    """
    partner = layers.partner[cls]  # (M, 2) class indices, -1: none
    annotated = (partner >= 0) & np.take_along_axis(labels, np.maximum(partner, 0), axis=1)
    unowned = groups[np.maximum(partner, 0)] == np.array(["visual", "audio"])  # a visual label owns no sound
    explained = annotated & ~unowned
    own = perceived * ~explained
    needed = layers.perceived[cls] & reliable & ~explained
    untold = needed & ~layers.suffices[cls] & ~reliable[::-1] & ~(annotated & unowned)
    told = own * (reliable[::-1] | (own >= SURE))  # where nothing perceives the class where it is annotated
    support = np.where(needed.any(axis=1), np.where(needed, own, np.inf).min(axis=1), told.max(axis=1))
    return np.where(untold.any(axis=1), 0.0, support)


def captured(named: np.ndarray, per_label: np.ndarray) -> np.ndarray:
    """On how many other labels' videos does each layer name each class on most of them? (5, C) counts, of
    `missing_scan.captured_counts`' (5, C, C) and (C,) summed over the rows.

    A sound that goes with every video of a class is named on that class's videos; a layer that names Y
    on the videos of several classes is biased towards Y (a weak model's audio layer that hears every
    tone as one), not hearing a label the annotators left off each of them.
    """
    named = named.copy()
    named[:, np.arange(named.shape[1]), np.arange(named.shape[1])] = 0  # its own label is no capture
    return (named * 2 > per_label[None, :, None]).sum(axis=1)


def missing_label_candidates(videos: pd.DataFrame, logits: np.ndarray, classes: list[str], *,
                             confidences: np.ndarray | None = None, min_confidence: float = 0.0,
                             groups: dict[str, str] | None = None, fraction: float = 0.7) -> pd.DataFrame:
    """One row per eq. 7 label that the video's annotation lacks, most confident first: `candidates_of` over
    whole arrays.

    videos: video_id, path, labels (';'-joined) for each row of logits (N, 5, C); classes: the C
    names. The set is taken over `logits`, whatever per-layer scores the caller compares (the
    paper's O are logits; the audit passes confidences, docs/decisions.md says why); `confidences`
    (N, 5, C), by default the softmax of the logits, scores the rows.
    """
    scores, logits = logits, np.asarray(logits, float)
    if logits.ndim != 3 or logits.shape[1] != len(LAYERS) or logits.shape[2] != len(classes):
        raise ValueError(f"logits must be (N, {len(LAYERS)}, {len(classes)}), got {logits.shape}")
    if len(videos) != len(logits):
        raise ValueError(f"{len(videos)} videos but {len(logits)} rows of logits")
    confidences = softmax(logits) if confidences is None else logits if confidences is scores else \
        np.asarray(confidences, float)  # the audit passes its confidences as both: one float64 copy, not two
    if confidences.shape != logits.shape:
        raise ValueError(f"confidences must match logits {logits.shape}, got {confidences.shape}")
    return with_videos(candidates_of(lambda rows: (logits[rows], confidences[rows]), videos, classes,
                                     min_confidence=min_confidence, groups=groups, fraction=fraction,
                                     size=max(len(logits), 1)), videos)


def candidates_of(read: Reader, videos: pd.DataFrame, classes: list[str], *, min_confidence: float = 0.0,
                  groups: dict[str, str] | None = None, fraction: float = 0.7, size: int,
                  budget: int = MEDIAN_VALUES, narrow: bool = False) -> pd.DataFrame:
    """One row per eq. 7 label that the video's annotation lacks, most confident first, of the rows `read`
    gives (`missing_scan.Reader`: float64 scores and confidences of rows 0..len(videos)-1), `size` rows at a
    time: the (N, 5, C) confidences are never held (missing_scan says how; `budget`: its MEDIAN_VALUES; `narrow`: the
    confidences are float32 values, label_medians says why).

    Candidates below `min_confidence` are left out.
    `layer` is the layer whose argmax kept the candidate (the most confident one when exact ties
    keep several) and `confidence` is that layer's confidence in it; `confusion` is
    its layer's median confidence in it on the other videos of its video's labels (`missing_scan.label_medians`;
    NaN where no other video shares a label): `split_confusions` sets apart
    the candidates that are a layer's systematic confusion. `groups` (category -> group, as
    `bias_categories.csv` has them; classes it does not name count as unclear) lets `reciprocal` tell a
    sound learned with a visual category (or a sight with an audio one) from a confusion
    (`learned_cooccurrence`), and gives estimated precision 0 to a candidate that the unimodal layers its
    category needs perceive under MODALITY_FLOOR / C on the video (`modality_support`). A candidate named by
    a layer unreliable in this run (`layertrust.reliable_layers`, judged as `bias` judges perception at `fraction`, its
    default here) gets estimated precision 0; so does, with `groups`, a class-wide candidate whose groups do
    not say it is there (`unowned_class_wide`).
    Returns columns row (the candidate's video's row of `videos`: `with_videos` names it), label (the
    annotation as given), candidate, layer, confidence, confusion, reciprocal, mean_confidence, precision.
    """
    marks = annotated(videos["labels"], classes)
    # judged first, while no candidate is held: its row arrays (~60 bytes a row) beside the candidates' were the peak
    layers = layer_evidence(read, marks, fraction=fraction, size=size)
    video, cls, best, layer_conf, counts = eq7_candidates(read, marks, len(classes), min_confidence=min_confidence,
                                                          size=size)
    confidence = layer_conf[np.arange(len(video)), best]
    known = None if groups is None else np.array([groups.get(name, "unclear") for name in classes], dtype=object)
    learned = None if known is None else partial(learned_cooccurrence, known)
    confusion, reciprocal = label_medians(read, marks, video, best, cls, confidence, learned=learned, size=size,
                                          budget=budget, narrow=narrow)
    mean_confidence = layer_conf.mean(axis=1)
    unbiased = captured(*counts)[best, cls] <= MAX_CAPTURED
    unbiased &= layers.reliable[best]  # a layer often wrong in this run is no evidence
    if known is not None:  # not heard, or not seen, where its category needs it; a block of candidates at a time
        unimodal = [LAYERS.index("audio"), LAYERS.index("visual")]
        for part in blocks(len(video), CANDIDATES_AT_ONCE):
            labels = marks.marks(video[part])
            unbiased[part] &= modality_support(layer_conf[part], cls[part], known, layers.reliable[unimodal], layers,
                                               labels) * len(classes) >= MODALITY_FLOOR
            unbiased[part] &= ~unowned_class_wide(known, best[part], cls[part], confusion[part], labels)  # whose?
    del layer_conf
    evidence = candidate_evidence(confidence, mean_confidence, np.isin(best, [LAYERS.index("audio"),
                                                                            LAYERS.index("visual")]))
    precision = np.where(unbiased, estimated_precision(evidence, confusion, reciprocal), 0.0)
    del evidence, unbiased
    order = candidate_order(confidence, video, cls, videos["video_id"], classes)
    # each column put in order and its source let go before the next: never every column twice
    table = {"row": video[order]}
    del video
    table["label"] = texts_at(videos["labels"], table["row"])
    table["candidate"] = np.asarray(classes, dtype=object)[cls[order]]  # a pointer to one name each
    del cls
    table["layer"] = np.asarray(LAYERS, dtype=object)[best[order]]
    del best
    rest = {"confidence": confidence.astype(float, copy=False), "confusion": confusion, "reciprocal": reciprocal,
            "mean_confidence": mean_confidence, "precision": precision}
    del confidence, confusion, reciprocal, mean_confidence, precision
    for name in list(rest):
        table[name] = rest.pop(name)[order]  # its source let go here, not with the others'
    return pd.DataFrame(table, copy=False)  # the columns as they are: no block of them all copied


def texts_at(column: pd.Series, rows: np.ndarray) -> np.ndarray:
    """`column.iloc[rows].to_numpy()`: of a categorical of text, a pointer to each category's one string (NaN where
    missing), where to_numpy made a new string a row (~60 bytes a candidate: 300 MB of five million)."""
    if isinstance(column.dtype, pd.CategoricalDtype) and pd.api.types.is_string_dtype(column.cat.categories):
        names = np.append(np.asarray(column.cat.categories, dtype=object), np.nan)  # code -1: the last, NaN
        return names[column.cat.codes.to_numpy()[rows]]
    return column.iloc[rows].to_numpy()


def candidate_order(confidence: np.ndarray, video: np.ndarray, cls: np.ndarray, video_ids: pd.Series,
                    classes: list[str]) -> np.ndarray:
    """The candidates most confident first, then by video_id and candidate name as text sorts, ties in the order
    given: the order a stable sort of the table by those three columns gives, taken on their ranks alone (the
    table sorted whole held two of it: ten million rows may keep five million candidates). (M,) each -> (M,)."""
    rows, which = np.unique(video, return_inverse=True)
    video_rank = pd.factorize(video_ids.iloc[rows], sort=True, use_na_sentinel=False)[0][which]  # a missing id: last
    name_rank = np.empty(len(classes), np.int64)
    name_rank[np.argsort(np.asarray(classes, dtype=object), kind="stable")] = np.arange(len(classes))
    return np.lexsort((name_rank[cls], video_rank, -confidence))


def with_videos(candidates: pd.DataFrame, videos: pd.DataFrame) -> pd.DataFrame:
    """`candidates_of`'s table with each candidate's video_id and path (of `videos` at its `row`) in place of the
    row: COLUMNS. The command names only the candidates it keeps (`split_confusions` counts the others)."""
    row = candidates["row"].to_numpy()
    return candidates.drop(columns="row").assign(video_id=videos["video_id"].iloc[row].to_numpy(),
                                                 path=videos["path"].iloc[row].to_numpy())[list(COLUMNS)]


CONFUSION_COLUMNS = ("label", "candidate", "layer", "n_videos", "median_confusion", "max_confidence")


def split_confusions(candidates: pd.DataFrame, *, max_confusion: float | None,
                     min_precision: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(candidates whose estimated precision reaches min_precision and whose confusion is under
    max_confusion or unknown, the others by label pair).

    The second frame has one row per (label, candidate, layer) set apart: how many videos, the
    median of their confusion and their highest confidence, most videos first. max_confusion None
    and min_precision 0 keep all.
    """
    systematic = (candidates["precision"] < min_precision).to_numpy(copy=True)
    if max_confusion is not None:
        systematic |= (candidates["confusion"] >= max_confusion).to_numpy()
    needed = ["label", "candidate", "layer", "confidence", "confusion"]  # not a copy of the whole table (5M at 10M)
    confused = candidates.loc[systematic, needed].groupby(["label", "candidate", "layer"], sort=True).agg(
        n_videos=("confidence", "size"), median_confusion=("confusion", "median"),
        max_confidence=("confidence", "max")).reset_index()
    confused = confused.sort_values("n_videos", ascending=False, kind="mergesort", ignore_index=True)
    return candidates[~systematic].reset_index(drop=True), confused[list(CONFUSION_COLUMNS)]
