"""How sure a category's call is: the sufficiency rule on the category's mean per-layer scores, redrawn.

The scores are each layer's margin of the video's label over the label's closest rival for that
layer (`rival_margins`), log(confidence in the label / confidence in the rival) capped at CAP: a
layer that cannot tell the label from a category sharing its sound or sight scores near 0 however
confident it is (its confidence alone is as high as the audio-visual layers' on a weak model); a
difference of logits shrinks in proportion as a model weakens, where confidences all sink towards
chance together and their ratios to 1; and the cap keeps a layer that is 99.99% sure from
out-scoring one that is 98% sure (the shipped model's audio-visual layers run on a larger logit
scale than its audio layer: uncapped, its audio categories were called audio-visual).
A category's five layer means are estimated from its own videos; by the central limit theorem they
are close to normal around the
truth with the covariance of the videos' scores over n. Redrawing the five means from that normal
(a parametric bootstrap over the category's videos, every category at once) and calling the group
and the type on each draw says how often the same call comes out: the call's `support`. A normal
draw costs (categories x draws x 5) numbers, where resampling the videos themselves costs
(videos x draws x 5), 250 times more on a dataset of 400 categories of 250 videos.

Pure numpy: arrays in, arrays out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avaudit.vocab import AV_LAYERS, LAYERS

GROUP_CODES = ("audiovisual", "audio", "visual", "redundant", "unclear")  # unclear: no layer singles it out
AUDIO, VISUAL = LAYERS.index("audio"), LAYERS.index("visual")
N_AV = len(AV_LAYERS)
CAP = float(np.log(0.98 / 0.02))  # a layer this much surer of the label than of its rival singles it out: bench
FLOOR = 1e-12  # confidences are clipped here before their log
RESOLUTION = 1e-6  # confidences closer than this are equal: float32 sums
RIVAL_SAMPLE = 64  # a category's rival is chosen on at most its first 64 videos: a 400-category set costs a quarter
CHANCE_SHARE = 0.25  # a unimodal layer surer of the label than this share of chance may single it out: bench
PERCEIVE_SHARE = 0.6  # a unimodal layer perceives its modality at this share of the fused layers' pair: bench
PARTNER_LEAN = 2.0  # a pair counts its partner up to this many times the label: a pair the layer cannot split, 2:1
FOUND_SHARE = 0.8  # ... or a category's own sight (sound) at this share, where it perceives nothing else: bench
PRIOR_VARIANCE = 0.0625  # one pseudo-video at sd 0.25: chosen on the bench (docs/decisions-bench.md)


def call_groups(means: np.ndarray, *, fraction: float, informative: float, lone: float,
                perceives: tuple[bool, bool] = (True, True),
                vouches: tuple[bool, bool] = (True, True)) -> tuple[np.ndarray, np.ndarray]:
    """The sufficiency rule on category means. (..., 5) -> (group code (...), leading AV layer (...)).

    A unimodal layer carries the category when its mean margin reaches `fraction` of the best
    audio-visual layer's (it suffices), or `lone` of it while the other unimodal layer stays under
    `informative` of it (the other modality knows nothing of the category: a weak visual layer is
    still the one that sees a visual category). No audio-visual layer with a positive mean: `unclear`,
    nothing to measure a unimodal layer against (the fused layers see all it sees). `perceives` (audio,
    visual): whether each unimodal layer perceives its modality in this run (`perceiving_layers`), or
    each category's (K,) (`perceived_categories`); a
    layer's failure to suffice is evidence that its modality does not only where it does, so a call
    that rests on the failure of a layer that perceives nothing (audio-visual, or the other modality's)
    is `unclear`. `vouches` (audio, visual), bools or (K,): whether each layer's success is evidence
    (`vouching`); a call that rests on a success that is not is `unclear` too. Codes index GROUP_CODES.
    """
    best = means[..., :N_AV].max(axis=-1)
    audio, visual = means[..., AUDIO], means[..., VISUAL]
    audio_ok = (audio >= fraction * best) | ((audio >= lone * best) & (visual < informative * best))
    visual_ok = (visual >= fraction * best) | ((visual >= lone * best) & (audio < informative * best))
    hears, sees = (np.asarray(layer, bool) for layer in perceives)  # bools, or (K,) per category
    unfounded = (~audio_ok & ~hears) | (~visual_ok & ~sees)  # a "no" from a layer that perceives nothing
    unfounded |= (audio_ok & ~np.asarray(vouches[0], bool)) | (visual_ok & ~np.asarray(vouches[1], bool))
    group = np.where(unfounded, GROUP_CODES.index("unclear"), audio_ok * 1 + visual_ok * 2)
    return np.where(best > 0, group, GROUP_CODES.index("unclear")), means[..., :N_AV].argmax(axis=-1)


def rival_margins(confidences: np.ndarray, codes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Each layer's margin (`margin`) of each video's label over the label's closest rival. (N, 5), at most CAP.

    `rival_evidence`'s margins alone.
    """
    return rival_evidence(confidences, codes, classes).margins


@dataclass
class RivalEvidence:
    """What `rival_evidence` measures: per video its margins, per category (K) each layer's rival and more."""
    margins: np.ndarray  # (N, 5) each video's margin of its label over the label's rival
    rival: np.ndarray  # (K, 5) each layer's rival, a category index; -1: none (fewer than two categories)
    lean: np.ndarray  # (K, 2) audio, visual: the layer's mean margin of the label over its rival on the rival's videos
    pair: np.ndarray  # (K, 5) each layer's mean confidence in the label and in its likeliest other class (`paired`)
    partner: np.ndarray  # (K, 5) that likeliest other class, a category index; -1: none
    apart: np.ndarray  # (K, 5) bool: is the layer surer of the label on those videos than on any other category's,
    # and there surer of it than of any other category
    label: np.ndarray  # (K, 5) the layer's mean confidence in the label alone on those videos (`perceived_categories`)
    shared: np.ndarray  # (K, 5) its confidence in the label on the partner's videos over that, at most 1; 1: none


def rival_evidence(confidences: np.ndarray, codes: np.ndarray, classes: np.ndarray) -> RivalEvidence:
    """Each layer's margin of each video's label over the label's closest rival, and what the rival's own videos say.

    confidences (N, 5, C); codes (N,) each video's category index; classes (K,) each category's class
    index. Category k's rival for layer l is the other category on whose own videos l is most confident
    in k: chosen on the rival's videos and measured on k's, so noise does not pick the rival that
    happens to score high on k's videos, and a sound that goes with every video of k (a label missing
    from the whole class) is no rival, as the rival's own videos lack it. Where no other category has
    videos, the rival is each video's most confident other class. Rivals are chosen on each category's
    first RIVAL_SAMPLE videos; every video's margin is measured. A unimodal layer's rival counts as at
    least CHANCE_SHARE of chance (1 / C): the audio layer of a silent visual category whose clips carry
    another class's sound is 0.7% sure of the label and 0.01% of its rival, and knows nothing of it.
    `lean`: the same margin measured on the rival's own videos (`partner_shift`); `pair`: what the layer
    perceives of the label up to a partner it cannot tell it from (`perceiving_layers`); `apart` and `label`:
    whether its success and its failure on the category can be evidence (`vouching`, `perceived_categories`).
    """
    codes, classes = np.asarray(codes, np.int64), np.asarray(classes, np.int64)  # no videos: empty floats
    n, n_layers, n_classes = confidences.shape
    k = len(classes)
    counts = np.bincount(codes, minlength=k)
    if (counts > 0).sum() < 2:  # nobody to be confused with: the video's own closest class
        own = label_confidence(confidences, classes[codes])
        closest = closest_other(confidences, classes[codes])
        first = np.argsort(codes, kind="stable")[:RIVAL_SAMPLE]  # the one category's sample, as below
        pair = np.zeros((k, n_layers))
        if len(first):
            pair[codes[first[0]]] = paired(own[first].mean(axis=0), closest[first].mean(axis=0))
        none = np.full((k, n_layers), -1)
        alone = np.zeros((k, n_layers))
        if len(first):
            alone[codes[first[0]]] = own[first].mean(axis=0)
        return RivalEvidence(margin(own, closest), none, np.zeros((k, 2)), pair, none, np.ones((k, n_layers), bool),
                             alone, np.ones((k, n_layers)))
    order = np.argsort(codes, kind="stable")
    members = [rows[:RIVAL_SAMPLE] for rows in np.split(order, np.cumsum(counts)[:-1])]  # each category's sample
    means = np.stack([confidences[rows][:, :, classes].mean(axis=0) if len(rows)
                      else np.zeros((n_layers, k)) for rows in members])  # (K, 5, K): [y, l, x] on y's videos
    towards = means.transpose(2, 1, 0).copy()  # [x, l, y]: on category y's videos, layer l's mean confidence in x
    towards[:, :, counts == 0] = -np.inf
    towards[np.arange(k), :, np.arange(k)] = -np.inf
    rival = towards.argmax(axis=-1)  # (K, 5) category indices
    margins = margins_over(confidences, codes, classes, rival)
    floor = layer_floor(n_layers, n_classes)
    lean = np.zeros((k, 2))
    for j, layer in enumerate((AUDIO, VISUAL)):
        for y in np.flatnonzero(counts):
            leaning = np.flatnonzero(rival[:, layer] == y)  # the categories whose rival y is
            on_y = confidences[members[y], layer]  # (m, C): the layer on y's own videos
            lean[leaning, j] = margin(on_y[:, classes[leaning]], np.maximum(on_y[:, [classes[y]]], floor[layer])
                                      ).clip(-CAP).mean(axis=0)
    diagonal = means[np.arange(k), :, np.arange(k)]  # (K, 5): on k's videos, the confidence in k
    others = means.copy()
    others[np.arange(k), :, np.arange(k)] = -np.inf
    likeliest = others.max(axis=-1)  # (K, 5): on k's videos, the layer's likeliest other category
    pair = paired(diagonal, likeliest)
    others[:, :, counts == 0] = -np.inf  # the partner: a category with videos, on which its own pair is measured
    partner = np.where(np.isfinite(others.max(axis=-1)), others.argmax(axis=-1), -1)
    apart = (diagonal > towards.max(axis=-1)) & (diagonal > likeliest)  # `vouching`
    on_partner = towards[np.arange(k)[:, None], np.arange(n_layers)[None], np.maximum(partner, 0)]  # (K, 5)
    shared = np.where(partner >= 0, np.minimum(on_partner / np.maximum(diagonal, FLOOR), 1.0), 1.0)
    return RivalEvidence(margins, rival, lean, pair, partner, apart, diagonal, shared)


def paired(label: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """A layer's mean confidence in a label and in its partner together, the partner counted up to PARTNER_LEAN
    times the label: a layer that puts nearly everything on the partner perceives the partner, not the label
    (a visual layer trained too briefly names one class on every video; an audio layer hears the sound that
    goes with every video of a visual category as that sound's own class)."""
    return label + np.minimum(partner, PARTNER_LEAN * label)


def label_confidence(confidences: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Each video's confidence in its label, per layer. (N, 5, C), (N,) class indices -> (N, 5)."""
    return np.take_along_axis(confidences, np.repeat(label[:, None, None], confidences.shape[1], 1), -1)[..., 0]


def closest_other(confidences: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Each video's confidence in its most confident class other than its label, per layer. (N, 5)."""
    others = confidences.copy()
    others[np.arange(len(label)), :, label] = -np.inf
    return others.max(axis=-1, initial=-np.inf)


def layer_floor(n_layers: int, n_classes: int) -> np.ndarray:
    """The least a rival counts as, per layer: FLOOR; CHANCE_SHARE of chance for a unimodal layer."""
    floor = np.full(n_layers, FLOOR)
    floor[[AUDIO, VISUAL]] = CHANCE_SHARE / max(n_classes, 1)
    return floor


def margins_over(confidences: np.ndarray, codes: np.ndarray, classes: np.ndarray, rival: np.ndarray) -> np.ndarray:
    """Each video's margin of its label over its category's rival (`RivalEvidence.rival` (K, 5), category indices)
    in each layer, the rival counted at least `layer_floor`. (N, 5, C), (N,), (K,) -> (N, 5).

    Row by row: the margins of any block of rows are those of the whole array, given the whole array's rivals.
    """
    codes, classes = np.asarray(codes, np.int64), np.asarray(classes, np.int64)
    own = label_confidence(confidences, classes[codes])
    against = np.take_along_axis(confidences, classes[rival][codes][..., None], -1)[..., 0]
    return margin(own, np.maximum(against, layer_floor(*confidences.shape[1:])))


def partner_shift(codes: np.ndarray, evidence: RivalEvidence, *, fraction: float, informative: float,
                  lone: float) -> np.ndarray:
    """How much of each category's unimodal margins its rival's own videos explain. (K, 2): audio, visual.

    A layer that names category X over its rival R on R's own videos as much as on X's (the audio layer
    of a 2 x 2 grid that hears the shared tone as X alone) leads X by habit, not by hearing X: its lean
    on R's videos is subtracted from its margins on X's, where positive. Not where R is carried by the
    other modality alone (R's mean margins, each lean subtracted, call it `visual` for the audio layer):
    R's clips may carry any sound, X's among them (a label missing from the whole of R), which the layer
    rightly names.
    """
    n = np.maximum(np.bincount(codes, minlength=len(evidence.rival)), 1)
    means = np.stack([np.bincount(codes, weights=evidence.margins[:, i], minlength=len(n)) / n
                      for i in range(evidence.margins.shape[1])], axis=1)
    shift = np.maximum(evidence.lean, 0.0)
    means[:, [AUDIO, VISUAL]] -= shift  # sceptical: a layer that leans to R does not make R a unimodal category
    group, _ = call_groups(means, fraction=fraction, informative=informative, lone=lone)
    for j, (layer, other) in enumerate(((AUDIO, "visual"), (VISUAL, "audio"))):
        rival = evidence.rival[:, layer]
        shift[(rival < 0) | (group[np.maximum(rival, 0)] == GROUP_CODES.index(other)), j] = 0.0
    return shift


def perceiving_layers(pair: np.ndarray, means: np.ndarray, n_classes: int, share: float,
                      fraction: float) -> tuple[bool, bool]:
    """Does each unimodal layer perceive its modality in this run? (K, 5) `pair` and mean margins -> (audio, visual).

    A layer perceives when, on the typical (median) category where its modality must carry what the fused
    layers know (a fused layer singles the label out and the other unimodal layer, `means`, stays under
    `fraction` of it), its confidence in the label and the label's likeliest partner together rise above
    chance (2 / C) by at least `share` of what the best audio-visual layer's do: a layer that hears a tone
    two categories share still puts that much on the pair. Measured there, not on every category, so the
    mix does not decide it: a perfect visual layer on a set of mostly audio categories sees nothing on
    those, as it should. A layer near chance everywhere (a visual backbone trained too briefly) fails to
    single out any label, which says nothing of whether its modality would suffice. No such category: every
    category. No categories, or no layer above chance (two classes: every pair is all of them): both
    perceive, as nothing tells them apart.
    """
    if not len(pair):
        return True, True
    best_margin = means[:, :N_AV].max(axis=-1)
    verdicts = []
    for layer, other in ((AUDIO, VISUAL), (VISUAL, AUDIO)):
        needed = (best_margin > 0) & (means[:, other] < fraction * best_margin)
        above = np.median(pair[needed] if needed.any() else pair, axis=0) - 2 / max(n_classes, 1)
        best = above[:N_AV].max()
        verdicts.append(bool(best <= RESOLUTION or above[layer] >= share * best))
    return verdicts[0], verdicts[1]


def perceived_categories(pair: np.ndarray, n_classes: int, share: float, partner: np.ndarray | None = None,
                         label: np.ndarray | None = None, shared: np.ndarray | None = None) -> np.ndarray:
    """Does each unimodal layer perceive each category itself, up to a partner? (K, 5) `pair` -> (K, 2) audio, visual.

    Its confidence in the label and the label's likeliest partner together rise above chance (2 / C) by
    `share` of what the best audio-visual layer's do on the category's videos. A layer that perceives nothing
    in the run (`perceiving_layers`) may still see this category's sight as well as the fused layers do (a
    `tiny` model's visual layer sees the blue cross of two grid categories, and little else): its failure to
    tell the label from that partner is then the modality's, not the layer's. With `partner` (K, 5,
    `RivalEvidence.partner`), on both sides: a sight the two categories share is the same sight on the
    partner's videos, so the layer perceives the partner too; a layer that perceives the label with a partner
    on which it perceives nothing (a weak visual layer that cannot tell a red square from an orange disc, which
    it does not see either) fails by its own weakness. With `label` and `shared` (K, 5, `RivalEvidence`'s), on
    the label's side the partner counts in the pair only as far as the layer is as sure of the label on the
    partner's videos as on the label's own: a sight two categories share is the same sight there, while a layer
    surer of the label at home tells the two sights apart, a little, and its failure to single the label out is
    its own (a visual layer 0.3 sure of a cyan diamond and 0.65 of a blue cross on the diamond's clips, 0.12 sure
    of the diamond on the cross's). A category no fused layer perceives above chance: yes, as nothing tells it.
    """
    above = pair - 2 / max(n_classes, 1)
    best = above[:, :N_AV].max(axis=-1, keepdims=True)
    found = (above[:, [AUDIO, VISUAL]] >= share * best) | (best <= RESOLUTION)
    if partner is None:
        return found
    other = partner[:, [AUDIO, VISUAL]]
    if label is None:
        return found & ((other < 0) | np.take_along_axis(found, np.maximum(other, 0), axis=0))
    own = pair.copy()  # the partner as far as the label's sight (sound) is its, on the unimodal layers
    own[:, [AUDIO, VISUAL]] = (label + (pair - label) * shared)[:, [AUDIO, VISUAL]]
    itself = perceived_categories(own, n_classes, share)
    return itself & ((other < 0) | np.take_along_axis(found, np.maximum(other, 0), axis=0))


def vouching(apart: np.ndarray, run: tuple[bool, bool]) -> np.ndarray:
    """Is each unimodal layer's success on each category evidence? (K, 5) `RivalEvidence.apart` -> (K, 2).

    Where the layer perceives its modality in the run (`perceiving_layers`), or, on the label's own videos, is
    surer of the label than on any other category's videos and than of any other category there: a margin is a
    ratio, which a layer near chance wins over a rival it happens to tell apart while it cannot tell the label's
    videos from another category's (a visual layer 0.11 sure of a magenta-disc category on its clips and on its
    sibling's, 0.12 on an orange disc's), or while it names the label's partner over the label (0.37 for the
    sibling and 0.20 for the label on the label's clips: the success is over the rival, not over the partner).
    """
    return apart[:, [AUDIO, VISUAL]] | np.array(run)


def margin(own: np.ndarray, other: np.ndarray) -> np.ndarray:
    """log(own / other), capped at CAP: a difference of logits, which a weaker model shrinks in proportion."""
    return np.minimum(np.log(np.maximum(own, FLOOR)) - np.log(np.maximum(other, FLOOR)), CAP)


def false_call_bar(support: np.ndarray, rate: float, draws: int, called: np.ndarray | None = None) -> float:
    """The support a call needs when at most `rate` of the calls made may be wrong by chance. (K,) -> float.

    Benjamini-Hochberg over the categories, with each call's p-value its redraws' disagreement
    ((disagreeing + 1) / (draws + 1)): among hundreds of categories that the evidence cannot settle some
    agree with themselves 80% of the time by chance alone, so the bar rises with the number of unsure
    categories, and falls back to `min_support` alone where most calls are clear. `called` (K,) bool: the
    categories given a group, the only calls (default: all); an `unclear` one cannot be a false call, and
    counted, the sure `unclear` of a run whose visual layer perceives nothing lowered the bar for the calls made.
    0 (rate 0, or no calls): no bar; inf: no call stands.
    """
    support = support if called is None else support[np.asarray(called, bool)]
    if rate <= 0 or not len(support):
        return 0.0
    p = ((1 - support) * draws + 1) / (draws + 1)
    passed = np.flatnonzero(np.sort(p) <= rate * np.arange(1, len(p) + 1) / len(p))
    if not len(passed):
        return float("inf")
    threshold = rate * (passed[-1] + 1) / len(p)  # every p under it stands, none above (step-up)
    return float(1 - (threshold * (draws + 1) - 1) / draws) - 1e-9  # as a support; 1e-9: the rounding


def false_call_cut(support: np.ndarray, rate: float, draws: int) -> np.ndarray:
    """Which calls stand under `false_call_bar`. (K,) -> (K,) bool; rate 0 keeps every call."""
    return support >= false_call_bar(support, rate, draws)


def grouped_moments(codes: np.ndarray, scores: np.ndarray, n_groups: int) -> tuple[np.ndarray, ...]:
    """Per group: count (K,), mean (K, 5) and covariance of the mean (K, 5, 5). codes (N,), scores (N, 5) of any
    float type, taken in float64 a column at a time (a float64 copy of float32 scores, their groups' means per row
    and the centred scores were 24 + 40 + 40 bytes a row).

    The covariance of a mean is the videos' covariance over n, plus PRIOR_VARIANCE / n^2 on the
    diagonal (a pseudo-video that could score anywhere): a category of three identical videos is not
    known exactly.
    """
    n = np.bincount(codes, minlength=n_groups).astype(float)
    width = scores.shape[1]
    # bincount sums in float64 whatever the scores' float type, far faster than np.add.at
    mean = np.stack([np.bincount(codes, weights=scores[:, j], minlength=n_groups) for j in range(width)],
                    axis=1) / np.maximum(n, 1)[:, None]

    def centred(j: int) -> np.ndarray:
        """Column j's scores less their group's mean, in float64. (N,)."""
        return scores[:, j] - mean[:, j][codes]

    upper = []  # each pair's summed products (K,), in np.triu_indices' order: one (N,) product at a time
    for r in range(width):  # column r centred once for its pairs, the others one at a time: 3 (N,) arrays at most
        first = centred(r)
        upper += [np.bincount(codes, weights=first * (first if c == r else centred(c)), minlength=n_groups)
                  for c in range(r, width)]
    rows, cols = np.triu_indices(width)
    upper = np.stack(upper, axis=1)  # (K, 15)
    outer = np.zeros((n_groups, width, width))
    outer[:, rows, cols] = upper
    outer[:, cols, rows] = upper
    safe = np.maximum(n, 1)[:, None, None]
    cov = outer / np.maximum(safe - 1, 1) / safe + np.eye(scores.shape[1]) * (PRIOR_VARIANCE / safe ** 2)
    return n, mean, cov


def redraw(codes: np.ndarray, scores: np.ndarray, n_groups: int, draws: int,
           seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(count (K,), mean (K, w), `draws` redrawn means (draws, K, w)) of each group's scores (N, w)."""
    n, mean, cov = grouped_moments(codes, np.asarray(scores), n_groups)  # any float type: float64 a column at a time
    root = np.linalg.cholesky(cov)  # (K, w, w); the diagonal prior keeps it positive definite
    noise = np.random.default_rng(seed).standard_normal((draws, n_groups, scores.shape[1]))
    return n, mean, mean[None] + np.einsum("kij,dkj->dki", root, noise)


def call_support(codes: np.ndarray, scores: np.ndarray, n_groups: int, *, fraction: float, informative: float,
                 lone: float, type_scores: np.ndarray | None = None, draws: int = 400, seed: int = 0,
                 perceives: tuple[bool, bool] = (True, True),
                 vouches: tuple[bool, bool] = (True, True)) -> dict[str, np.ndarray]:
    """Each group's call on its mean scores and how often redrawn means give the same one.

    codes (N,) each video's category index in [0, n_groups); scores (N, 5) its layers' scores, on
    which the group is called; type_scores (N, 3 or more) the audio-visual layers' scores on which
    the type is read (default: scores); perceives, vouches: `call_groups`'. Returns per category (K,): n, means
    (K, 5), group (a GROUP_CODES code), layer (the leading audio-visual layer's index), group_support and
    type_support (shares of `draws`), seeded.
    """
    n, mean, drawn = redraw(codes, scores, n_groups, draws, seed)
    rule = {"fraction": fraction, "informative": informative, "lone": lone, "perceives": perceives,
            "vouches": vouches}
    group, layer = call_groups(mean, **rule)
    drawn_group, drawn_layer = call_groups(drawn, **rule)
    if type_scores is not None:
        _, type_mean, type_drawn = redraw(codes, np.asarray(type_scores)[:, :N_AV], n_groups, draws, seed + 1)
        layer, drawn_layer = type_mean.argmax(axis=-1), type_drawn.argmax(axis=-1)
    return {"n": n, "means": mean, "group": group, "layer": layer,
            "group_support": (drawn_group == group[None]).mean(axis=0),
            "type_support": (drawn_layer == layer[None]).mean(axis=0)}
