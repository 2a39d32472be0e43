"""Group calls that a weak or biased unimodal layer cannot make confidently wrong (issue 18's planted check with
`tiny` models: benchmarks/weak_model.py, docs/decisions-bench.md)."""
import numpy as np
import pandas as pd

from avaudit.audits.bias import bias_audit
from avaudit.audits.uncertainty import (
    GROUP_CODES,
    call_groups,
    paired,
    perceived_categories,
    perceiving_layers,
    vouching,
)
from avaudit.vocab import LAYERS

VIDEOS = 12
AUDIO, VISUAL = LAYERS.index("audio"), LAYERS.index("visual")


def audit(layer_confidences, n_classes):
    """bias_audit of VIDEOS videos per class; layer_confidences(label) -> (5, C) each layer's confidences."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_classes), VIDEOS)
    confidences = np.stack([layer_confidences(label) for label in labels])
    confidences = confidences * rng.uniform(0.9, 1.1, confidences.shape)  # a little spread between videos
    confidences /= confidences.sum(axis=-1, keepdims=True)
    names = [f"c{i}" for i in range(n_classes)]
    videos = pd.DataFrame({"video_id": [f"v{i}" for i in range(len(labels))],
                           "path": [f"v{i}.mp4" for i in range(len(labels))], "label": np.asarray(names)[labels]})
    per_video, categories, _ = bias_audit(videos, confidences, names, rule="sufficiency", fraction=0.7,
                                          min_support=0.8, video_noise=0.2, false_call_rate=0.1)
    return per_video, categories.set_index("category")


def spread(n_classes, weights):
    """(C,) confidences: `weights` {class: share}, the rest shared evenly by the other classes."""
    out = np.full(n_classes, (1 - sum(weights.values())) / (n_classes - len(weights)))
    for cls, share in weights.items():
        out[cls] = share
    return out


def grid(label, n_classes=4, biased=False, sees=True):
    """A 2 x 2 grid: classes 0 and 1 share a tone, 2 and 3 another; 0 and 2 share a shape, 1 and 3 another. The
    fused layers tell all four apart; the audio layer hears the tone (both classes alike, or, `biased`, the
    first tone's as class 0 alone); the visual layer sees the shape, or (not `sees`) nothing at all."""
    tone, shape = [0, 1] if label < 2 else [2, 3], [0, 2] if label % 2 == 0 else [1, 3]
    out = np.tile(spread(n_classes, {label: 0.9}), (5, 1))
    out[AUDIO] = spread(n_classes, {0: 0.9} if biased and label < 2 else {tone[0]: 0.45, tone[1]: 0.45})
    out[VISUAL] = spread(n_classes, {shape[0]: 0.45, shape[1]: 0.45}) if sees else np.full(n_classes, 1 / n_classes)
    return out


def test_a_unimodal_lead_that_the_rivals_own_videos_show_too_is_no_lead():
    """The 2-epoch model's `cont_tone1970_blue_cross`: its audio layer hears the tone that `cont_tone1970_orange_disc`
    shares as blue_cross alone, on both categories' clips (0.99), so blue_cross's margin over orange_disc was full
    and the category was called audio. What the layer gives blue_cross over orange_disc on orange_disc's own clips
    is a habit, not hearing: subtracted, the audio layer does not single blue_cross out."""
    _, honest = audit(lambda label: grid(label), 4)
    assert set(honest["group"]) == {"audiovisual"}
    per_video, biased = audit(lambda label: grid(label, biased=True), 4)
    assert biased.loc["c0", "group"] == "audiovisual"  # was audio
    assert (per_video.loc[per_video["label"] == "c0", "group"] == "audiovisual").all()  # its videos say the same


def test_a_sound_a_visual_category_always_carries_is_not_a_bias_of_the_audio_layer():
    """The shipped model on the planted `--co-occur` set: every clip of `visual_cyan_diamond` sounds
    `audio_tone1450`, and the audio layer names the tone there as on the tone's own clips. The diamond is carried by
    the visual layer alone, so its clips may hold any sound: the tone stays an audio category."""
    def layers(label):  # 0: a tone; 1: a shape whose clips all sound tone 0; 2: another tone; 3: another shape
        out = np.tile(spread(4, {label: 0.9}), (5, 1))
        out[AUDIO] = spread(4, {0: 0.9} if label in (0, 1) else {2: 0.9} if label == 2 else {})
        out[VISUAL] = spread(4, {label: 0.9} if label in (1, 3) else {0: 0.45, 2: 0.45})  # the tones: blank
        return out
    _, table = audit(layers, 4)
    assert table["group"].to_dict() == {"c0": "audio", "c1": "visual", "c2": "audio", "c3": "visual"}


def test_a_layer_that_perceives_nothing_in_the_run_is_no_evidence_that_its_modality_does_not_suffice():
    """The `tiny` models' visual layers (top-1 0.25 against the fused layers' 0.65-0.9, their confidence in a label
    and its likeliest partner 0.04-0.21 of the fused layers' above chance, the shipped model's 0.75): with them
    `visual_cyan_diamond` and `audio_tone200` were called audio-visual, the visual layer's failure read as the
    modality's. Every call that rests on that failure is unclear; the video calls are not `clear` either."""
    _, table = audit(lambda label: grid(label), 4)
    assert set(table["group"]) == {"audiovisual"} and set(table["why_unclear"]) == {""}
    per_video, table = audit(lambda label: grid(label, sees=False), 4)
    assert set(table["group"]) == {"unclear"}
    assert set(table["why_unclear"]) == {"the visual layer perceives nothing in this run"}  # though sure of it
    assert not per_video["clear"].any()


def test_a_layer_blind_in_the_run_that_sees_a_category_as_well_as_the_fused_layers_is_evidence_there():
    """The 4- and 8-epoch `tiny` models: a visual layer near chance on most sights (blind in the run) sees the orange
    disc of two grid categories as well as the fused layers do, up to the disc's partner (its confidence in the
    label and the partner 0.86-0.95 of theirs above chance). That it cannot tell them apart is the modality's
    failure, not the layer's: those two are audio-visual; the others stay unclear, and say why."""
    def layers(label):
        out = grid(label)
        if label % 2 == 0:  # classes 0 and 2: a shape this visual layer does not see
            out[VISUAL] = np.full(4, 0.25)
        return out
    per_video, table = audit(layers, 4)
    assert table["group"].to_dict() == {"c0": "unclear", "c1": "audiovisual", "c2": "unclear", "c3": "audiovisual"}
    assert set(table.loc[["c0", "c2"], "why_unclear"]) == {"the visual layer perceives nothing in this run"}
    assert not per_video.loc[per_video["label"].isin(["c0", "c2"]), "clear"].any()


def test_perceiving_is_measured_above_chance_against_the_fused_layers():
    pair = np.array([[0.9, 0.9, 0.9, 0.3, 0.9], [0.9, 0.9, 0.9, 0.3, 0.9], [0.9, 0.9, 0.9, 0.8, 0.9]])
    means = np.array([[2.0, 2.0, 2.0, 0.0, 0.0]] * 3)  # neither unimodal layer suffices anywhere
    assert perceiving_layers(pair, means, n_classes=10, share=0.6, fraction=0.7) == (True, False)  # visual 0.1 of 0.7
    assert perceiving_layers(pair * 0 + 1, means, n_classes=2, share=0.6, fraction=0.7) == (True, True)  # two classes
    assert perceiving_layers(np.zeros((0, 5)), np.zeros((0, 5)), n_classes=10, share=0.6, fraction=0.7) == (True, True)


def test_a_layer_is_judged_where_its_modality_must_carry_the_fused_layers_not_on_the_median_category():
    """A perfect visual layer on an AudioSet-like mix (VGGSounder's majorities: 250 audio-visual, 57 audio, 2 visual
    classes; here 8 audio categories and 2 visual): on the median category it sees nothing, as there is nothing to
    see, and the rule on the median declared it blind, leaving every category unclear. Where the audio layer does
    not carry the fused layers' call (the visual categories) it sees as much as they do."""
    audio_pair, visual_pair = [0.9, 0.9, 0.9, 0.1, 0.9], [0.9, 0.9, 0.9, 0.9, 0.1]
    pair = np.array([audio_pair] * 8 + [visual_pair] * 2)
    means = np.array([[3.0, 3.0, 3.0, -1.0, 3.0]] * 8 + [[3.0, 3.0, 3.0, 3.0, -1.0]] * 2)
    assert perceiving_layers(pair, means, n_classes=10, share=0.6, fraction=0.7) == (True, True)  # was (True, False)
    blind = pair.copy()
    blind[8:, VISUAL] = 0.25  # the visual categories' sights: barely above chance (0.2)
    assert perceiving_layers(blind, means, n_classes=10, share=0.6, fraction=0.7) == (True, False)

    def layers(label):  # classes 0-7 heard, not seen; 8 and 9 seen, not heard; every layer sure where it perceives
        out = np.tile(spread(10, {label: 0.9}), (5, 1))
        out[VISUAL if label < 8 else AUDIO] = np.full(10, 0.1)
        return out
    _, table = audit(layers, 10)
    assert table["group"].to_dict() == {**{f"c{i}": "audio" for i in range(8)}, "c8": "visual", "c9": "visual"}


def test_no_unimodal_call_where_no_fused_layer_singles_the_label_out():
    """The 2-epoch model's `instant_tone2620_yellow_triangle`: every fused layer under its rival (mean margins
    -2.4, -4.3, -2.1), its near-chance visual layer 0.35 over its own: called visual, as 0.35 reached 0.7 of a
    negative best. The fused layers see all the visual layer sees; where none singles the label out, nothing does."""
    group, _ = call_groups(np.array([[-2.4, -4.3, -2.1, 0.35, -23.0], [2.0, 2.5, 2.2, 2.4, -3.0]]), fraction=0.7,
                           informative=0.2, lone=0.6)
    assert [GROUP_CODES[g] for g in group] == ["unclear", "visual"]


def test_a_category_perceived_up_to_a_partner_counts_only_where_the_partner_is_perceived_too():
    """The 6-epoch `wide` model (benchmarks/weak_model.py, seed 47): its visual layer, blind in the run, put 0.82 of
    the fused layers' share on `visual_red_square` and an orange disc together, on the square's clips, so its
    failure to tell them apart was read as sight's, and the square was called audio-visual. A sight two categories
    share is the same sight on the partner's clips; on the disc's own clips that layer perceived little (0.72)."""
    def layers(label):
        out = grid(label)
        if label != 1:  # the visual layer sees class 1 with its partner 3 on 1's videos, and nothing elsewhere
            out[VISUAL] = np.full(4, 0.25)
        return out
    _, table = audit(layers, 4)
    assert table.loc["c1", "group"] == "unclear"  # was audiovisual
    assert table.loc["c1", "why_unclear"] == "the visual layer perceives nothing in this run"


def test_a_layer_that_names_one_class_on_every_video_perceives_nothing():
    """The 3-epoch `deep` model (seed 49): its visual layer named `visual_red_square` on every clip. Its confidence
    in each label and that partner together was high everywhere, so it seemed to perceive its modality, and its
    failure on the square (whose clips all sound another class's tone) made the square audio-visual. A pair counts
    its partner up to twice the label: a layer with everything on the partner perceives the partner, not the label."""
    def layers(label):
        out = grid(label)
        out[VISUAL] = spread(4, {0: 0.9})
        return out
    _, table = audit(layers, 4)
    assert set(table["group"]) == {"unclear"}  # were audio-visual
    assert set(table["why_unclear"]) == {"the visual layer perceives nothing in this run"}
    assert perceiving_layers(np.array([[0.9, 0.9, 0.9, paired(0.05, 0.9), 0.9]]), np.array([[2.0, 2, 2, 0, 0]]),
                             n_classes=10, share=0.6, fraction=0.7) == (True, False)
    assert np.allclose([paired(0.45, 0.45), paired(0.3, 0.6), paired(0.05, 0.9)], [0.9, 0.9, 0.15])


def test_a_layer_blind_in_the_run_vouches_only_for_a_label_it_is_surer_of_at_home_than_anywhere_else():
    """The 3-epoch `mid` model (benchmarks/weak_model.py, seed 67): its visual layer, blind in the run, was 0.11
    sure of `onset_tone1030_magenta_disc` on its clips and on its magenta-disc sibling's, 0.12 on an orange disc's,
    where it was far surer of the disc; chosen as the rival there, that disc gave the magenta category a full
    visual margin on its own clips, and it was called visual (it is a grid category). A margin is a ratio: the
    layer's success counts only where it tells the label's videos from every other category's."""
    def layers(label):  # 0-3 a 2 x 2 grid (tones 0/1 and 2/3, shapes 0/2 and 1/3); 4 seen, not heard; 5-7 heard
        out = np.tile(spread(8, {label: 0.6}), (5, 1))
        tones = {0: {0: 0.3, 1: 0.3}, 1: {0: 0.3, 1: 0.3}, 2: {2: 0.3, 3: 0.3}, 3: {2: 0.3, 3: 0.3}}
        out[AUDIO] = spread(8, tones[label]) if label < 4 else np.full(8, 1 / 8) if label == 4 else out[0]
        out[VISUAL] = (spread(8, {0: 0.2, 2: 0.2, 4: 0.005}) if label in (0, 2) else  # the shared shape, dimly
                       spread(8, {4: 0.6, 0: 0.25}) if label == 4 else np.full(8, 1 / 8))  # surer of 0 on 4's
        return out
    per_video, table = audit(layers, 8)
    assert table.loc["c0", "group"] == "unclear"  # was visual
    assert table.loc["c0", "why_unclear"] == "the visual layer perceives nothing in this run"
    assert not per_video.loc[per_video["label"] == "c0", "clear"].any()
    assert table.loc["c4", "group"] == "visual"  # a sight it tells from every other: still its call
    assert vouching(np.array([[True] * 3 + [False, True]]), (True, False)).tolist() == [[True, False]]
    assert vouching(np.array([[True] * 3 + [False, False]]), (True, True)).tolist() == [[True, True]]


def test_a_layer_blind_in_the_run_vouches_only_for_a_label_it_names_over_its_partner_at_home():
    """The 5-epoch `keen` model (benchmarks/weak_model.py, seed 69): its visual layer, blind in the run, was 0.20
    sure of `onset_tone1030_magenta_disc` on its clips and 0.37 of its magenta-disc sibling there; off its own
    clips it was at most 0.17 sure of the category (on `visual_red_square`'s, its rival), so it was surer of the
    label at home than anywhere else, and with the margin measured against that rival the category was called
    visual (it is a grid category). A success over the rival while the layer names the partner is no success."""
    def layers(label):  # 0-3 a 2 x 2 grid (tones 0/1 and 2/3, shapes 0/2 and 1/3); 4 seen, not heard; 5-7 heard
        out = np.tile(spread(8, {label: 0.6}), (5, 1))
        tones = {0: {0: 0.3, 1: 0.3}, 1: {0: 0.3, 1: 0.3}, 2: {2: 0.3, 3: 0.3}, 3: {2: 0.3, 3: 0.3}}
        out[AUDIO] = spread(8, tones[label]) if label < 4 else np.full(8, 1 / 8) if label == 4 else out[0]
        out[VISUAL] = (spread(8, {0: 0.2, 2: 0.37, 4: 0.005}) if label == 0 else  # names its sibling 2 over it
                       spread(8, {0: 0.13, 2: 0.13, 4: 0.005}) if label == 2 else
                       spread(8, {4: 0.6, 0: 0.17}) if label == 4 else np.full(8, 1 / 8))  # 0's rival: class 4
        return out
    per_video, table = audit(layers, 8)
    assert table.loc["c0", "group"] == "unclear"  # was visual
    assert table.loc["c0", "why_unclear"] == "the visual layer perceives nothing in this run"
    assert not per_video.loc[per_video["label"] == "c0", "clear"].any()
    assert table.loc["c4", "group"] == "visual"  # a sight it tells from every other and names first: its call


def test_a_failure_counts_as_the_modalitys_only_as_far_as_the_partners_videos_draw_the_label_as_its_own_do():
    """The 5-epoch `mid` model (seeds 67 and 62): its visual layer, blind in the run, was 0.29-0.30 sure of
    `visual_cyan_diamond` on its clips and about 0.7 of `cont_tone420_blue_cross` (top-1 on 5 or 6 clips of 6), and
    perceived that cross on its own clips; the pair, the partner counted up to twice the label, reached 0.84-0.89 of
    the fused layers' share, so its failure was read as sight's and the diamond, whose clips all sound
    `audio_tone1450`, was called audio-visual (it is visual). On the cross's clips it was 0.12-0.19 sure of the
    diamond: a shared sight would draw it as much there; a layer surer of the label at home tells the two sights
    apart, a little, and its failure to single the label out is its own."""
    def layers(label):  # 0-3 the grid; 4 seen, its clips all sounding 5's tone; 5-7 heard
        out = np.tile(spread(8, {label: 0.9}), (5, 1))
        tones = {0: {0: 0.45, 1: 0.45}, 1: {0: 0.45, 1: 0.45}, 2: {2: 0.45, 3: 0.45}, 3: {2: 0.45, 3: 0.45}}
        out[AUDIO] = (spread(8, tones[label]) if label < 4 else spread(8, {4: 0.55, 5: 0.43}) if label in (4, 5)
                      else out[0])
        out[VISUAL] = (spread(8, {1: 0.45, 3: 0.45}) if label in (1, 3) else  # it sees shape 1/3 only ...
                       spread(8, {1: 0.7, 4: 0.29}) if label == 4 else np.full(8, 1 / 8))  # ... and calls 4 class 1
        return out
    _, table = audit(layers, 8)
    assert table.loc["c4", "group"] == "unclear"  # was audiovisual
    assert table.loc["c4", "why_unclear"] == "the visual layer perceives nothing in this run"
    assert table.loc[["c1", "c3"], "group"].tolist() == ["audiovisual", "audiovisual"]  # the shape it sees
    pair, partner = np.array([[1.0, 1.0, 1.0, 0.9, 0.9]] * 2), np.array([[1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
    label = np.array([[0.95, 0.95, 0.95, 0.3, 0.45], [0.95, 0.95, 0.95, 0.45, 0.45]])  # visual: 0.3 + 0.6, 0.45 + 0.45
    shared = np.array([[1.0, 1, 1, 0.4, 1], [1.0, 1, 1, 1, 1]])  # row 0's partner draws the label's sight at 0.4
    assert perceived_categories(pair, 8, 0.8, partner).tolist() == [[True, True], [True, True]]
    assert perceived_categories(pair, 8, 0.8, partner, label, shared).tolist() == [[True, False], [True, True]]
    assert perceived_categories(pair, 8, 0.8, partner, label, shared * 0 + 1).tolist() == [[True, True]] * 2
