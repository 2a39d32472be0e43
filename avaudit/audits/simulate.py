"""Logits for a known truth: the stress bench on which the audits' decisions and defaults are chosen.

A world of categories, each made of a sound and a sight (either may be absent: a unimodal category),
with the structures that fool rules: audio-visual 2 x 2 grids whose sound or sight another category
shares, audio-only, visual-only and redundant categories, categories with few videos, labels missing
from a minority of a class and from all of it (a co-occurring event), and genuine layer confusions.
`simulate` turns it into (N, 5, C) logits at a chosen model quality: each layer's logit for a class
is `quality` x the layer's strength x the evidence it perceives for the class, plus unit noise, so
quality 1 gives a paper-like model (the vote about 55% right) and quality 4 a planted one (about 98%).

Pure numpy and pandas; the audits take what it returns exactly as they take a real audit's arrays.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from avaudit.vocab import AV_LAYERS, LAYERS

# How strongly each audio-visual layer carries an event of each type (the paper's premise: the
# continuous layer sees every event, the others single out instants and onsets).
TYPE_GAIN = {"continuous": (1.0, 0.95, 0.95), "instant": (0.8, 1.0, 0.85), "onset": (0.8, 0.85, 1.0)}
SIGNAL = 1.8  # logit gap at quality 1 for a fully perceived class: with ~34 classes, a vote about 55% right
AUDIO, VISUAL = LAYERS.index("audio"), LAYERS.index("visual")
HARD_SIGHT = 0.25  # the visual layer's share of a hard sight (a shape it barely tells from nothing); the
# audio-visual layers still see it with the sound
BIASED_SHARE = 0.3  # what a biased layer still perceives of the partner it does not name
CO_OCCUR_SHARE = 0.6  # simulate(learned=True): the audio layer's evidence for X on Y's videos, of Y's


@dataclass
class World:
    """The truth: per class its sound and sight ids (-1: none), group, event type and video count,
    the missing labels planted, and the layer confusions."""
    classes: list[str]
    sound: np.ndarray  # (C,) int
    sight: np.ndarray  # (C,) int
    group: np.ndarray  # (C,) audio, visual, audiovisual or redundant
    event_type: np.ndarray  # (C,) continuous, instant, onset ('' where not audio-visual)
    n_videos: np.ndarray  # (C,) int
    minority: list[tuple[int, int]]  # (X, Y): Y's event is in a minority of X's videos, unannotated
    whole: list[tuple[int, int]]  # (X, Y): Y's sound is in every video of X, unannotated
    confusions: list[tuple[int, int, int, bool]]  # (layer, X, Y, both ways): the layer mistakes X for Y
    crossed: list[tuple[int, int]]  # (X, Y): Y, of X's other modality, in a fifth of X's videos; only it sees Y
    sight_gain: np.ndarray  # (C,) how well the visual layer sees each class's sight (the last grid's: hardly)
    biased: list[tuple[int, int, int]]  # (layer, X, R): X and R share what the unimodal layer perceives; it names X
    learned: list[tuple[int, int]] = field(default_factory=list)  # (X, Y) of `whole`: a visual X with an audio Y's
    # sound, which the model was trained on, so its audio layer names X where it hears Y (`add_learned`)


@dataclass
class Draw:
    """One simulated audit: the videos table, logits (N, 5, C) and the truth to score against."""
    videos: pd.DataFrame  # video_id, path, label, labels
    logits: np.ndarray
    label: np.ndarray  # (N,) annotated class index
    missing: np.ndarray  # (N, C) bool: present in the video, absent from its annotation
    world: World


def make_world(rng: np.random.Generator, *, grids: int = 6, unimodal: int = 4, redundant: int = 2,
               videos: int = 20, few: int = 3, few_videos: int = 4, minority: int = 4, whole: int = 3,
               confusions: int = 3, crossed_labels: int = 2, biased: int = 0, co_occur: int = 0,
               visual_only: int | None = None) -> World:
    """A random world: `grids` 2 x 2 audio-visual grids (the last one's sights hard to see:
    `HARD_SIGHT`), `unimodal` audio-only and `visual_only` visual-only categories (default as many; a skewed
    mix, as AudioSet's mostly heard classes, with fewer or more), `redundant` ones with a
    sound and a sight of their own; `few` of the categories have `few_videos` videos, the rest
    `videos`; `crossed_labels` audio-only labels missing from visual-only classes or the reverse;
    `biased` grid pairs whose shared sound (or sight) the audio (or visual) layer hears as one of the two
    alone (an undertrained layer); `co_occur` audio-only sounds in every video of a visual-only class
    (the planted `--co-occur`: a whole-class missing label). The last two are 0 unless asked:
    benchmarks/decision_bench.py asks for them (`TRAPS`)."""
    sound, sight, group, kind = [], [], [], []
    n_sounds = n_sights = 0
    types = list(TYPE_GAIN)
    for g in range(grids):
        for i in range(2):
            for j in range(2):
                sound.append(n_sounds + i)
                sight.append(n_sights + j)
                group.append("audiovisual")
                kind.append(types[(2 * g + i + j) % 3])
        n_sounds, n_sights = n_sounds + 2, n_sights + 2
    visual_only = unimodal if visual_only is None else visual_only
    for name, with_sound, with_sight, count in [("audio", True, False, unimodal), ("visual", False, True, visual_only),
                                               ("redundant", True, True, redundant)]:
        for _ in range(count):
            sound.append(n_sounds if with_sound else -1)
            sight.append(n_sights if with_sight else -1)
            n_sounds, n_sights = n_sounds + with_sound, n_sights + with_sight
            group.append(name)
            kind.append("")
    n = len(group)
    n_videos = np.full(n, videos)
    n_videos[rng.choice(n, size=few, replace=False)] = few_videos
    classes = [f"{g[:2]}{i:02d}_{k or 'none'}" for i, (g, k) in enumerate(zip(group, kind))]
    # Missing labels: a second event in some of X's videos; a sound that goes with every video of X.
    pairs = rng.permutation([(x, y) for x in range(n) for y in range(n) if x != y and sound[y] != sound[x]
                             and sight[y] != sight[x] and n_videos[x] == videos])
    taken = pairs[:minority + whole].tolist()
    whole_pairs = [(x, y) for x, y in taken[minority:] if sound[y] >= 0]
    confused = []
    for x, y in rng.permutation([(x, y) for x in range(n) for y in range(x + 1, n)])[:confusions].tolist():
        confused.append((int(rng.choice(len(LAYERS))), x, y, bool(rng.random() < 0.5)))
    # Labels of one modality in videos of the other: only that unimodal layer sees them (drawn last, so
    # the draws above stay those of worlds without them).
    one = [(x, y) for x in range(n) for y in range(n) if {group[x], group[y]} == {"audio", "visual"}
           and n_videos[x] == videos]
    crossed = rng.permutation(one)[:crossed_labels].tolist() if one else []
    sight_gain = np.ones(n)
    sight_gain[4 * (grids - 1):4 * grids] = HARD_SIGHT  # no grids: an empty slice
    # Drawn last, so the draws above stay those of worlds without them.
    shared = [(layer, x, r) for x in range(4 * grids) for r in range(4 * grids) if x != r
              for layer, ids in ((AUDIO, sound), (VISUAL, sight)) if ids[x] == ids[r]]
    biased_pairs = [tuple(p) for p in rng.permutation(shared)[:biased].tolist()] if shared else []
    used = {c for pair in taken + crossed for c in pair}
    lone_sights = [x for x in range(n) if group[x] == "visual" and x not in used and n_videos[x] == videos]
    lone_sounds = [y for y in range(n) if group[y] == "audio" and y not in used]
    co = list(zip(rng.permutation(lone_sights).tolist(), rng.permutation(lone_sounds).tolist()))[:co_occur]
    return World(classes, np.array(sound), np.array(sight), np.array(group), np.array(kind), n_videos,
                 [tuple(p) for p in taken[:minority]], [tuple(p) for p in whole_pairs] + co, confused,
                 [tuple(p) for p in crossed], sight_gain, biased_pairs)


def evidence(world: World, sounds: np.ndarray, sights: np.ndarray) -> np.ndarray:
    """What each layer perceives of each class. sounds, sights (N, C) bool: whose sound, whose sight
    is in each video -> (N, 5, C) in [0, 1].

    The audio layer perceives a class whose sound is present, the visual layer one whose sight is;
    an audio-visual layer perceives the mean of the class's modalities present (a grid category
    whose sound is present but not its sight: 0.5), scaled by its event type's gain.
    """
    n, n_classes = sounds.shape

    def heard(ids: np.ndarray, present: np.ndarray) -> np.ndarray:
        """(N, C): class c's id (sound or sight) is among the present events' ids."""
        has = ids >= 0
        on = np.zeros((n, ids.max() + 2), bool)
        rows, cols = np.nonzero(present & has[None])
        on[rows, ids[cols]] = True
        return np.where(has[None], on[:, np.where(has, ids, 0)], False)

    sound, sight = heard(world.sound, sounds), heard(world.sight, sights)
    modalities = (world.sound >= 0).astype(float) + (world.sight >= 0)
    both = (sound.astype(float) + sight) / modalities[None]
    out = np.empty((n, len(LAYERS), n_classes))
    gain = np.array([TYPE_GAIN[t] if t else (1.0, 1.0, 1.0) for t in world.event_type])  # (C, 3)
    for i in range(len(AV_LAYERS)):
        out[:, i] = both * gain[None, :, i]
    out[:, VISUAL], out[:, AUDIO] = sight * world.sight_gain[None], sound
    return out


def simulate(world: World, *, quality: float, rng: np.random.Generator, visual_strength: float = 0.8,
             spread: float = 0.35, learned: bool = False, seen: float = 0.0) -> Draw:
    """Logits for every video of `world` at `quality` (1: paper-like, 4: planted).

    `visual_strength` scales the visual layer against the others (a weak visual backbone); each
    video's signal is scaled by a lognormal of sd `spread` (easy and hard videos). `learned`: the model
    was trained on the whole-class missing labels too, so its audio layer also names class X on the
    videos of the sound Y that went with every video of X (`tiny` models trained with `--co-occur`).
    `seen`: the share of sights (every 1/seen-th) the visual layer sees at full strength (1) whatever
    `visual_strength` (the `tiny` models' visual layers see the orange disc, and little else). No draw changes.
    """
    label = np.repeat(np.arange(len(world.classes)), world.n_videos)
    n, n_classes = len(label), len(world.classes)
    present = np.zeros((n, n_classes), bool)
    present[np.arange(n), label] = True
    for x, y in world.minority:
        rows = np.flatnonzero(label == x)
        present[rng.choice(rows, size=max(1, len(rows) // 5), replace=False), y] = True
    sounds = present.copy()  # a whole class's missing label: only Y's sound, its sight is not there
    for x, y in world.whole:
        sounds[label == x, y] = True
    crossed = [(np.flatnonzero(label == x), y) for x, y in world.crossed]
    crossed = [(rows[: max(1, len(rows) // 5)], y) for rows, y in crossed]  # the class's first fifth
    for rows, y in crossed:
        present[rows, y] = sounds[rows, y] = True  # Y has one modality: the other mark is ignored
    signal = evidence(world, sounds, present)
    for rows, y in crossed:
        signal[rows[:, None], np.arange(len(AV_LAYERS))[None], y] = 0.0  # fused layers follow the annotated event
    for layer, x, r in world.biased:  # the shared sound or sight heard as X alone, on R's videos as on X's
        signal[label == r, layer, x] = signal[label == r, layer, r]
        signal[(label == r) | (label == x), layer, r] *= BIASED_SHARE
    if learned:
        for x, y in world.whole:
            hear_as(signal, sounds[:, y], x, y, CO_OCCUR_SHARE)  # every video with Y's sound: Y's own and X's
    add_learned(world, signal, label)
    for layer, x, y, both_ways in world.confusions:
        for a, b in [(x, y), (y, x)] if both_ways else [(x, y)]:
            rows = label == a
            signal[rows, layer, b] = np.maximum(signal[rows, layer, b], 0.8 * signal[rows, layer, a])
    strength = np.ones(len(LAYERS))
    strength[VISUAL] = visual_strength
    if seen > 0:
        sharp = (world.sight >= 0) & (world.sight % round(1 / seen) == 0)
        signal[:, VISUAL, sharp] /= visual_strength  # those sights at full strength
    scale = quality * SIGNAL * strength[None, :, None] * rng.lognormal(0.0, spread, size=(n, 1, 1))
    logits = scale * signal + rng.normal(size=signal.shape)
    names = np.asarray(world.classes)
    missing = sounds.copy()
    missing[np.arange(n), label] = False
    ids = [f"v{i:05d}" for i in range(n)]
    videos = pd.DataFrame({"video_id": ids, "path": [f"{names[c]}/{v}.mp4" for c, v in zip(label, ids)],
                           "label": names[label], "labels": names[label]})
    return Draw(videos, logits.astype(np.float32), label, missing, world)


LEARNED_SHARE = 0.9  # the audio layer's evidence for a visual class X on hearing the audio Y that went with it


def with_learned(world: World, rng: np.random.Generator, pairs: int) -> World:
    """`world` plus `pairs` labels missing from a whole visual-only class X: an audio-only Y's sound in every
    video of X, which the model was trained on (issue 18's `make-samples --co-occur` trained into a model).
    Drawn from `rng` apart from make_world's draws, so the rest of the world stays the same."""
    options = [(x, y) for x in np.flatnonzero((world.group == "visual") & (world.n_videos == world.n_videos.max()))
               for y in np.flatnonzero(world.group == "audio")]
    chosen = [tuple(int(i) for i in p) for p in rng.permutation(options)[:pairs]] if options else []
    return World(**{**world.__dict__, "whole": world.whole + chosen, "learned": world.learned + chosen})


def hear_as(signal: np.ndarray, rows: np.ndarray, x: int, y: int, share: float) -> None:
    """In place: on `rows` the audio layer's evidence for X is at least `share` of its evidence for Y."""
    signal[rows, AUDIO, x] = np.maximum(signal[rows, AUDIO, x], share * signal[rows, AUDIO, y])


def add_learned(world: World, signal: np.ndarray, label: np.ndarray) -> None:
    """In place: where the audio layer hears a learned pair's Y (Y's videos and X's), it also perceives X
    (LEARNED_SHARE of Y): the model learned X from the sound that went with every training video of X. The
    audio-visual layers, trained to name X where they see X's sight with that sound, keep 1 - LEARNED_SHARE of
    their evidence for Y on X's videos (the audio layer alone hears Y there)."""
    for x, y in world.learned:
        hear_as(signal, (label == x) | (label == y), x, y, LEARNED_SHARE)
        signal[(label == x)[:, None] & (np.arange(len(LAYERS)) < len(AV_LAYERS))[None], y] *= 1 - LEARNED_SHARE


def score_groups(world: World, categories: pd.DataFrame) -> dict:
    """How a bias audit's categories (category, group, layer) compare with the truth.

    right / wrong / unclear count the categories by group (`unclear`: no group given);
    precision is right over those given one. Types: of the audio-visual categories, those named
    their planted type, another one, or left unclear (`audiovisual`, `unclear`).
    """
    truth = pd.DataFrame({"category": world.classes, "true_group": world.group, "true_type": world.event_type})
    scored = truth.merge(categories[["category", "group", "layer"]], on="category", how="left")
    given = scored["group"].isin(["audio", "visual", "audiovisual", "redundant"])
    right = given & (scored["group"] == scored["true_group"])
    av = scored["true_group"] == "audiovisual"
    named = av & scored["layer"].isin(AV_LAYERS)
    type_right = named & (scored["layer"] == scored["true_type"])
    return {"groups_right": int(right.sum()), "groups_wrong": int((given & ~right).sum()),
            "groups_unclear": int((~given).sum()), "group_precision": right.sum() / max(1, given.sum()),
            "group_recovery": right.mean(), "types_right": int(type_right.sum()),
            "types_wrong": int((named & ~type_right).sum()), "types_unclear": int((av & ~named).sum()),
            "type_precision": type_right.sum() / max(1, named.sum())}


def score_candidates(draw: Draw, candidates: pd.DataFrame) -> dict:
    """Precision and recall of missing-label candidates (video_id, candidate) against the planted ones;
    recall also apart for labels missing from a minority of a class and from all of it, and how many
    whole-class missing labels were found on at least one video of the class."""
    index = {name: i for i, name in enumerate(draw.world.classes)}
    row = {v: i for i, v in enumerate(draw.videos["video_id"])}
    video = candidates["video_id"].map(row).to_numpy(int)
    cls = candidates["candidate"].map(index).to_numpy(int)
    hit = draw.missing[video, cls]
    found = np.zeros_like(draw.missing)
    found[video[hit], cls[hit]] = True
    whole = np.zeros_like(draw.missing)
    for x, y in draw.world.whole:
        whole[draw.label == x, y] = True
    minority = draw.missing & ~whole

    def recall(mask: np.ndarray) -> float:
        return found[mask].sum() / mask.sum() if mask.any() else float("nan")

    pairs = [found[draw.label == x, y].any() for x, y in draw.world.whole]
    return {"candidates": int(len(candidates)), "right": int(hit.sum()),
            "precision": hit.mean() if len(hit) else float("nan"), "recall": recall(draw.missing),
            "recall_minority": recall(minority), "recall_whole": recall(whole),
            "whole_found": int(sum(pairs)), "whole_pairs": len(pairs)}
