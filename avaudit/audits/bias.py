"""Modality bias (section 4.3, Table 3): which layer carries each video's and category's label.

Under the sufficiency rule a category's group is called on its videos' mean margins (each layer's
capped log-confidence lead of the label over its closest rival: `avaudit.audits.uncertainty.rival_margins`),
its type on the audio-visual layers' confidences in the label, with how sure each call is (`group_support`,
`type_support`); a call less sure than `min_support`, or cut so that at most `false_call_rate` of the
calls made are wrong by chance (`false_call_bar`, over the categories given a group), is `unclear` (group
and type) or `audiovisual` (type only). Each video's own call carries a `margin`, how far its scores are
from changing it.

A category's event type (continuous, instant or onset) is named only when its layer leads the other
audio-visual layers by a margin (`event_type_margin`); a continuous event saturates all three, and
their differences are noise. Otherwise the category's layer is `audiovisual`: type unclear.

Pure functions: arrays and tables in, DataFrames out, no model and no I/O.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from avaudit.audits.decisions import category_modality
from avaudit.audits.reduce import blocks, video_scores
from avaudit.audits.uncertainty import (
    AUDIO,
    FOUND_SHARE,
    GROUP_CODES,
    PERCEIVE_SHARE,
    VISUAL,
    RivalEvidence,
    call_support,
    false_call_bar,
    partner_shift,
    perceived_categories,
    perceiving_layers,
    vouching,
)
from avaudit.errors import UsageError
from avaudit.vocab import (
    ASSIGNMENTS,
    AV_LAYERS,
    CATEGORY_ASSIGNMENTS,
    GROUP_OF,
    GROUPS,
    LAYERS,
    UNCLEAR,
    UNCLEAR_TYPE,
    Group,
    Rule,
)

REDUNDANT = str(Group.redundant)
REDUNDANT_CODE = ASSIGNMENTS.index(REDUNDANT)
SUPPORT_COLUMNS = ("group_support", "support_needed", "type_support", "why_unclear",
                   *(f"mean_{name}" for name in LAYERS))
INFORMATIVE = 0.2  # a unimodal layer under this share of the best audio-visual margin knows nothing: the bench
LONE = 0.6  # a unimodal layer at this share carries the category alone when the other knows nothing: the bench
DRAWS = 400  # redraws of each category's means
LAYER_NAMES = list(dict.fromkeys((*ASSIGNMENTS, *CATEGORY_ASSIGNMENTS)))  # a caller may set any of them
ROWS_AT_ONCE = 65_536  # rows of a per-row rule's working arrays at a time: a few MB, not a few hundred a row


def sufficiency_modality(true_conf: np.ndarray, *, fraction: float) -> np.ndarray:
    """Does a modality alone suffice? (N, 5) true-label confidences -> (N,) assignment names.

    A unimodal layer suffices when its confidence reaches `fraction` of the best audio-visual
    layer's. Audio alone -> audio, visual alone -> visual, both -> redundant, neither -> the most
    confident audio-visual layer (so an instant or onset event still shows as such).
    """
    return np.asarray(ASSIGNMENTS)[sufficiency_codes(true_conf, fraction=fraction)]


def sufficiency_codes(true_conf: np.ndarray, *, fraction: float) -> np.ndarray:
    """`sufficiency_modality`'s calls as int8 codes into ASSIGNMENTS: a byte a row, no name made. (N, 5) -> (N,)."""
    av = true_conf[:, : len(AV_LAYERS)]
    best_av = av.max(axis=1)
    audio_ok = true_conf[:, AUDIO] >= fraction * best_av
    visual_ok = true_conf[:, VISUAL] >= fraction * best_av
    codes = av.argmax(axis=1).astype(np.int8)
    codes[audio_ok & ~visual_ok] = AUDIO
    codes[visual_ok & ~audio_ok] = VISUAL
    codes[audio_ok & visual_ok] = REDUNDANT_CODE
    return codes


def assign_videos(true_conf: np.ndarray, *, rule: str, fraction: float) -> np.ndarray:
    """(N, 5) true-label confidences -> (N,) assignment names under `rule`."""
    return np.asarray(ASSIGNMENTS)[assignment_codes(true_conf, rule=rule, fraction=fraction)]


def assignment_codes(true_conf: np.ndarray, *, rule: str, fraction: float) -> np.ndarray:
    """`assign_videos`' calls as int8 codes into ASSIGNMENTS. (N, 5) -> (N,)."""
    if rule == "paper":
        return true_conf.argmax(axis=1).astype(np.int8)
    if rule == "sufficiency":
        return sufficiency_codes(true_conf, fraction=fraction)
    raise UsageError(f"unknown rule {rule!r}; choose one of {', '.join(Rule)}")


def video_calls(scores: np.ndarray, *, rule: str, fraction: float,
                margins: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Each video's assignment (`assignment_codes`) and `video_margin` (None without `margins`: the categories
    alone need none), ROWS_AT_ONCE rows at a time: their working arrays at once were ~130 bytes a row.
    (N, 5) -> ((N,) int8, (N,) of the scores' dtype)."""
    choice, margin = np.empty(len(scores), np.int8), np.empty(len(scores), scores.dtype) if margins else None
    for part in blocks(len(scores), ROWS_AT_ONCE) or [slice(0, 0)]:  # no rows: an unknown rule is still refused
        choice[part] = assignment_codes(scores[part], rule=rule, fraction=fraction)
        if margins:
            margin[part] = video_margin(scores[part], rule=rule, fraction=fraction)
    return choice, margin


def video_margin(true_conf: np.ndarray, *, rule: str, fraction: float) -> np.ndarray:
    """How far each video's confidences are from changing its call. (N, 5) -> (N,), in confidence.

    paper: the most confident layer's lead over the next; sufficiency: the nearest of the two
    unimodal layers' distances to `fraction` of the best audio-visual layer, and where neither
    suffices also the best audio-visual layer's lead over the next one.
    """
    if rule == "paper":
        top2 = np.sort(true_conf, axis=1)[:, -2:]
        return top2[:, 1] - top2[:, 0]
    av = np.sort(true_conf[:, : len(AV_LAYERS)], axis=1)
    bound = fraction * av[:, -1]
    unimodal = np.abs(true_conf[:, [LAYERS.index("audio"), LAYERS.index("visual")]] - bound[:, None]).min(axis=1)
    neither = (true_conf[:, LAYERS.index("audio")] < bound) & (true_conf[:, LAYERS.index("visual")] < bound)
    return np.where(neither, np.minimum(unimodal, av[:, -1] - av[:, -2]), unimodal)


def event_type_margin(labels: pd.Series, true_conf: np.ndarray, categories: pd.DataFrame) -> np.ndarray:
    """How far each category's audio-visual layer leads the other two, typically. (len(categories),).

    labels (N,) each video's category; true_conf (N, 5) its layers' confidences in it; categories:
    category, layer. Per video, the category's layer's confidence minus the best other audio-visual
    layer's; per category, the median over its videos. NaN where the layer is not audio-visual.
    Videos are grouped by their category's code and taken ROWS_AT_ONCE at a time: a string of every
    video's label, or every video's audio-visual confidences in float64, was ~130 bytes a row.
    """
    label = pd.Categorical(labels)
    index = {name: i for i, name in enumerate(AV_LAYERS)}
    layer_of = dict(zip(categories["category"], categories["layer"].map(index)))
    # each code's audio-visual layer, NaN where none; last, the NaN of a missing label (code -1)
    own = np.array([*(layer_of.get(name, np.nan) for name in label.categories), np.nan], float)[label.codes]
    rows = np.flatnonzero(~np.isnan(own))
    chosen = own[rows].astype(int)
    lead = np.empty(len(rows))
    for part in blocks(len(rows), ROWS_AT_ONCE):
        av = true_conf[rows[part], : len(AV_LAYERS)].astype(float)
        at = np.arange(len(av)), chosen[part]
        own_layer = av[at]
        av[at] = -np.inf
        lead[part] = own_layer - av.max(axis=1)
    median = pd.Series(lead).groupby(label.codes[rows]).median()
    by_name = pd.Series(median.to_numpy(), index=label.categories[median.index.to_numpy()])
    return categories["category"].map(by_name).to_numpy(float)


def deaf_layer(codes: np.ndarray, confidences: np.ndarray, n_groups: int, chance: float) -> np.ndarray:
    """Is a unimodal layer, on a category's videos, on average less sure of its label than chance? (K,) bool.

    codes (N,) each video's category; confidences (N, 5) its layers' confidences in its label. An
    audio-visual call says neither modality alone suffices, each layer hearing or seeing the label but
    unable to tell it from a rival; a layer under chance does not perceive the label at all (a weak
    visual layer, or the audio layer of a silent visual category), so the call would rest on a layer that
    is merely weak. 0: never.
    """
    n = np.maximum(np.bincount(codes, minlength=n_groups), 1)
    mean = [np.bincount(codes, weights=confidences[:, i], minlength=n_groups) / n
            for i in (LAYERS.index("audio"), LAYERS.index("visual"))]
    return (np.minimum(*mean) < chance) & (chance > 0)


def call_categories(categories: pd.Series, labels: pd.Series, margins: np.ndarray, type_scores: np.ndarray, *,
                    fraction: float, min_support: float, false_call_rate: float = 0.0,
                    seed: int = 0, chance: float = 0.0,
                    founded: np.ndarray | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """The sufficiency rule on each category's mean margins, with its support (`call_support`).

    categories (K,) their names; labels (N,) each video's category; margins (N, 5) `rival_margins`;
    type_scores (N, 5) what the type is read on (the layers' confidences in the label).
    Returns each category's layer (a group, or the leading audio-visual layer; `unclear` where the
    group's support is under `support_needed`, the larger of `min_support` and `false_call_bar` (min_support 0:
    neither),
    `audiovisual` where only the type's support is under `min_support`; `unclear` too where it would be
    audio-visual but a unimodal layer is less sure of the label than `chance` (`deaf_layer`; not with
    min_support 0); `founded` (N, 4): whether the audio and the visual layer's failure, then their success, on
    each video's category is evidence (`sufficiency_scores`; default yes), the categories' as `call_groups`
    takes them, not with min_support 0) and a frame of
    group_support,
    support_needed (the same for every category of the run), type_support (NaN outside the audio-visual
    group), why_unclear (`unclear_reasons`) and mean_<layer> (the mean margin) per layer.
    """
    codes = pd.Categorical(labels, categories=categories).codes.astype(np.int64)
    unfounded = np.zeros((len(codes), 4), bool) if founded is None else ~np.asarray(founded, bool)
    every = np.stack([np.bincount(codes, weights=unfounded[:, j], minlength=len(categories)) == 0
                      for j in range(4)], axis=1) | (min_support <= 0)  # (K, 4); min_support 0: every one
    perceives, vouches = every[:, :2], every[:, 2:]
    calls = call_support(codes, margins, len(categories), fraction=fraction, informative=INFORMATIVE, lone=LONE,
                         type_scores=type_scores, draws=DRAWS, seed=seed, perceives=(perceives[:, 0], perceives[:, 1]),
                         vouches=(vouches[:, 0], vouches[:, 1]))
    group = np.asarray(GROUP_CODES)[calls["group"]]
    audiovisual = group == str(Group.audiovisual)
    layer = np.where(audiovisual, np.asarray(AV_LAYERS)[calls["layer"]], group)
    type_support = np.where(audiovisual, calls["type_support"], np.nan)
    layer = np.where(audiovisual & (type_support < min_support), UNCLEAR_TYPE, layer)
    cut = false_call_rate if min_support > 0 else 0.0  # min_support 0 decides every category, as it always did
    needed = max(min_support, false_call_bar(calls["group_support"], cut, DRAWS, called=group != UNCLEAR))
    layer = np.where(calls["group_support"] >= needed, layer, UNCLEAR)
    deaf = deaf_layer(codes, type_scores, len(categories), chance if min_support > 0 else 0.0)
    layer = np.where(audiovisual & deaf, UNCLEAR, layer)
    why = unclear_reasons(calls["means"], group == UNCLEAR, calls["group_support"] < needed, audiovisual & deaf,
                          perceives & vouches)
    support = pd.DataFrame({"group_support": calls["group_support"], "support_needed": needed,
                            "type_support": type_support, "why_unclear": np.where(layer == UNCLEAR, why, ""),
                            **{f"mean_{name}": calls["means"][:, i] for i, name in enumerate(LAYERS)}})
    return layer, support


def unclear_reasons(means: np.ndarray, uncalled: np.ndarray, unsure: np.ndarray, deaf: np.ndarray,
                    perceives: np.ndarray) -> np.ndarray:
    """Why each category's group would be unclear, the first that holds. (K, 5) mean margins -> (K,) str.

    No fused layer singles the label out (nothing to measure the unimodal layers against); the call on
    the means is `unclear` (`uncalled`) as it rests on the failure of a unimodal layer that perceives
    nothing in this run (`perceiving_layers`); the call's support is under the run's bar (`unsure`); a
    unimodal layer under chance on the category's videos would leave an audio-visual call resting on a
    layer that does not perceive the label (`deaf`). perceives (K, 2): audio, visual, per category.
    """
    blind = np.select([~perceives[:, 0] & ~perceives[:, 1], ~perceives[:, 0], ~perceives[:, 1]],
                      ["the audio and visual layers perceive", "the audio layer perceives",
                       "the visual layer perceives"], "")
    return np.select([means[:, :len(AV_LAYERS)].max(axis=1) <= 0, uncalled & (blind != ""), unsure, deaf],
                     ["no fused layer singles the label out", np.char.add(blind.astype(str), " nothing in this run"),
                      "support under the run's bar", "a unimodal layer under chance"], "")


def unfounded_videos(choice: np.ndarray, founded: np.ndarray) -> np.ndarray:
    """Which videos' calls (codes into ASSIGNMENTS) rest on a unimodal layer's failure, or success, that is no
    evidence (`founded` (N, 4) false: audio's and visual's failure, then their success). (N,)."""
    audio = (choice == AUDIO) | (choice == REDUNDANT_CODE)
    visual = (choice == VISUAL) | (choice == REDUNDANT_CODE)
    return ~np.where(audio, founded[:, 2], founded[:, 0]) | ~np.where(visual, founded[:, 3], founded[:, 1])


def sufficiency_scores(evidence: RivalEvidence, labels: np.ndarray, *, n_classes: int, fraction: float,
                       in_place: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Each video's margins (N, 5) the sufficiency rule calls on (`shifted_margins`), and whether each unimodal
    layer's failure, then its success, on the video's category is evidence (N, 4): audio, visual, audio, visual.

    A failure is evidence where the layer perceives its modality in the run (`perceiving_layers` at
    PERCEIVE_SHARE on the categories' mean shifted margins) or the category itself (`perceived_categories` at
    FOUND_SHARE); a success where it perceives its modality in the run or tells the category's videos from
    every other's (`vouching`). `in_place`: `shifted_margins`'.
    """
    scores, means, codes = shifted_margins(evidence, labels, fraction=fraction, in_place=in_place)
    run = perceiving_layers(evidence.pair, means, n_classes, PERCEIVE_SHARE, fraction)
    found = perceived_categories(evidence.pair, n_classes, FOUND_SHARE, evidence.partner, evidence.label,
                                 evidence.shared)
    return scores, np.concatenate([found | np.array(run), vouching(evidence.apart, run)], axis=1)[codes]


def shifted_margins(evidence: RivalEvidence, labels: np.ndarray, *, fraction: float,
                    in_place: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(each video's margins (N, 5), each category's mean of them (K, 5), each video's category (N,)).

    `rival_evidence`'s margins (of the videos of `labels`, their categories numbered in sorted order), less
    each unimodal layer's lean towards the label on its rival's own videos (`partner_shift`: a lead the layer
    gives the label wherever the pair's shared sound or sight is). `in_place`: the evidence's own margins are
    shifted and returned, not a copy of them (40 bytes a row: 400 MB at ten million rows).
    """
    present = np.unique(labels)
    codes = np.searchsorted(present, labels)
    shift = partner_shift(codes, evidence, fraction=fraction, informative=INFORMATIVE, lone=LONE)
    scores = evidence.margins if in_place else evidence.margins.copy()
    for j, layer in enumerate((AUDIO, VISUAL)):  # a column at a time: no (N, 2) copies
        scores[:, layer] -= shift[codes, j]
    n = np.maximum(np.bincount(codes, minlength=len(present)), 1)[:, None]
    means = np.stack([np.bincount(codes, weights=column, minlength=len(present)) for column in scores.T], 1) / n
    return scores, means, codes


def bias_audit(videos: pd.DataFrame, confidences: np.ndarray, classes: list[str], *, rule: str,
               fraction: float, type_margin: float = 0.0, min_support: float = 0.0, video_noise: float = 0.0,
               false_call_rate: float = 0.0, votes: np.ndarray | None = None,
               reduced: tuple[np.ndarray, RivalEvidence | None] | None = None
               ) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Per-video assignment, per-category assignment and the dataset's Table 3 row.

    videos: video_id, path, label (a known class) for each row of confidences (N, 5, C).
    paper: a category takes its videos' majority layer, as the paper does. sufficiency: a category
    is called on its mean margins (`call_categories`), `unclear` under `min_support` or past the
    `false_call_rate` cut, and each video on its own margins (`rival_margins`) with the same fraction.
    A category assigned an audio-visual layer keeps it when its `type_margin` column
    (`event_type_margin`) reaches `type_margin`, and becomes `audiovisual` (type unclear) otherwise;
    0 names every type, as the paper does. A video whose `margin` is under `video_noise` is not
    `clear`: its layers are within noise of each other. `votes` (N,) bool: the videos whose confidences decide
    their category (default all; the others, e.g. still pictures, get their own call only); a category none
    of whose videos vote is decided by all of them. `n_videos` counts them all, `votes_<name>` the voters.
    `reduced`: (true-label confidences (N, 5), the sufficiency rule's `rival_evidence`, None under the paper's
    rule) taken from the confidences a block of rows at a time (audits.reduce.bias_inputs); `confidences` is
    then not read (None), and its margins are shifted in place (`shifted_margins`): the caller's are not kept.
    """
    labels = videos["label"].map({name: i for i, name in enumerate(classes)}).to_numpy(np.int64)
    true_conf, evidence = reduced if reduced is not None else video_scores(confidences, labels, rule=rule)
    scores, founded = true_conf, np.ones((len(labels), 4), bool)
    if rule == "sufficiency":
        scores, founded = sufficiency_scores(evidence, labels, n_classes=len(classes), fraction=fraction,
                                             in_place=True)
    # each video's assignment as a code into ASSIGNMENTS (1 byte a row), its names only as the table's categories
    choice, margin = video_calls(scores, rule=rule, fraction=fraction)
    unperceived = unfounded_videos(choice, founded) & (min_support > 0)  # as its category's call
    group_names = list(dict.fromkeys(GROUP_OF.values()))
    group_of = np.array([group_names.index(GROUP_OF[name]) for name in ASSIGNMENTS], np.int8)
    per_video = videos[["video_id", "path", "label"]].reset_index(drop=True).assign(
        layer=pd.Categorical.from_codes(choice, LAYER_NAMES), group=pd.Categorical.from_codes(group_of[choice],
                                                                                              group_names))
    per_video = pd.concat([per_video, pd.DataFrame(true_conf, columns=[f"conf_{name}" for name in LAYERS],
                                                   copy=False)], axis=1)
    per_video["margin"] = margin
    per_video["clear"] = (per_video["margin"] >= video_noise) & ~unperceived
    categories, summary = decide_categories(labels, classes, choice, lambda: assigned_confidence(choice, true_conf),
                                            scores, true_conf, founded, votes=votes, rule=rule, fraction=fraction,
                                            type_margin=type_margin, min_support=min_support,
                                            false_call_rate=false_call_rate)
    summary["video_noise"] = video_noise
    return per_video, categories, summary


def assigned_confidence(choice: np.ndarray, true_conf: np.ndarray) -> np.ndarray:
    """A video's weight in a category tie: its confidence at its assignment (its best if redundant). (N,)."""
    layer = np.minimum(choice, len(LAYERS) - 1)[:, None]
    return np.where(choice < len(LAYERS), np.take_along_axis(true_conf, layer, axis=1)[:, 0], true_conf.max(axis=1))


def category_calls(labels: np.ndarray, true_conf: np.ndarray, evidence: RivalEvidence | None, classes: list[str], *,
                   rule: str, fraction: float, type_margin: float = 0.0, min_support: float = 0.0,
                   false_call_rate: float = 0.0, wide=None) -> pd.DataFrame:
    """`bias_audit`'s categories table alone, every video voting: no per-video table, no video's margin (the
    categories' groups missing-labels judges with). labels (N,) class indices; true_conf and evidence as
    `bias_audit`'s `reduced` (the evidence's margins shifted in place). `wide`: the float type the rule takes
    `true_conf` in where it is held narrower (float32 holding float64's values exactly): the ties' weights."""
    scores, founded = true_conf, np.ones((len(labels), 4), bool)
    if rule == "sufficiency":
        scores, founded = sufficiency_scores(evidence, labels, n_classes=len(classes), fraction=fraction,
                                             in_place=True)
    choice, _ = video_calls(scores, rule=rule, fraction=fraction, margins=False)
    wide = true_conf.dtype if wide is None else wide
    return decide_categories(labels, classes, choice, lambda: assigned_confidence(choice, true_conf).astype(wide),
                             scores, true_conf, founded, votes=None, rule=rule, fraction=fraction,
                             type_margin=type_margin, min_support=min_support, false_call_rate=false_call_rate)[0]


def decide_categories(labels: np.ndarray, classes: list[str], choice: np.ndarray, weigh: Callable[[], np.ndarray],
                      scores: np.ndarray, true_conf: np.ndarray, founded: np.ndarray, *, votes: np.ndarray | None,
                      rule: str, fraction: float, type_margin: float, min_support: float,
                      false_call_rate: float) -> tuple[pd.DataFrame, dict]:
    """(the categories' table, the summary) of `bias_audit`, from each video's class index, call (a code into
    ASSIGNMENTS), scores, true-label confidences and founded failures and successes; `weigh()` gives each
    video's tie weight (`assigned_confidence`), made only for the votes, not held while the categories are called."""
    voting = np.ones(len(labels), bool) if votes is None else np.asarray(votes, bool)
    voting |= (np.bincount(labels, weights=voting, minlength=len(classes)) == 0)[labels]  # a category none votes on
    voters = slice(None) if voting.all() else voting  # every row: views of the per-row arrays, not copies
    # the voters' labels as codes into the categories present, in the order their names sort (as crosstab's)
    present = np.flatnonzero(np.bincount(labels, minlength=len(classes)))
    names = np.asarray(classes, dtype=object)[present]
    rank = np.zeros(len(classes), np.int64)
    rank[present[np.argsort(names)]] = np.arange(len(present))
    label = pd.Series(pd.Categorical.from_codes(rank[labels[voters]], np.sort(names)))
    categories = category_modality(label, pd.Categorical.from_codes(choice[voters], LAYER_NAMES),
                                   weigh()[voters], names=ASSIGNMENTS)
    categories["category"] = categories["category"].astype("str")
    categories["n_videos"] = categories["category"].map(dict(zip(classes, np.bincount(labels, minlength=len(classes))))
                                                        ).to_numpy()
    support = pd.DataFrame(np.nan, index=categories.index, columns=SUPPORT_COLUMNS)
    if rule == "sufficiency":
        categories["layer"], support = call_categories(categories["category"], label, scores[voters],
                                                       true_conf[voters], fraction=fraction,
                                                       min_support=min_support, false_call_rate=false_call_rate,
                                                       chance=1 / len(classes), founded=founded[voters])
    categories["type_margin"] = event_type_margin(label, true_conf[voters], categories)
    if type_margin > 0:
        categories.loc[categories["type_margin"] < type_margin, "layer"] = UNCLEAR_TYPE
    categories.insert(2, "group", categories["layer"].map(GROUP_OF))
    categories = pd.concat([categories, support], axis=1)
    summary = {"rule": rule, "fraction": fraction if rule == "sufficiency" else None, "type_margin": type_margin,
               "min_support": min_support if rule == "sufficiency" else None, "video_noise": None,
               "categories_per_layer": {name: int((categories["layer"] == name).sum())
                                        for name in CATEGORY_ASSIGNMENTS},
               "categories_per_group": {g: int((categories["group"] == g).sum()) for g in (*GROUPS, UNCLEAR)},
               "total": int(len(categories)), "n_videos": int(len(labels))}
    return categories, summary
