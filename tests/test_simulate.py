"""The stress bench's generator and scores (avaudit.audits.simulate) on small draws."""
import numpy as np
import pandas as pd

from avaudit.audits.decisions import softmax, vote
from avaudit.audits.simulate import make_world, score_candidates, score_groups, simulate, with_learned


def small_world(seed=0):
    return make_world(np.random.default_rng(seed), grids=2, unimodal=2, redundant=1, videos=10, few=2,
                      minority=2, whole=2, confusions=1)


def test_a_draw_has_one_row_of_logits_per_video_and_its_accuracy_rises_with_quality():
    world = small_world()
    accuracy = []
    for quality in (0.5, 4.0):
        draw = simulate(world, quality=quality, rng=np.random.default_rng(1))
        assert draw.logits.shape == (int(world.n_videos.sum()), 5, len(world.classes))
        assert len(draw.videos) == len(draw.logits) and (draw.videos["label"] == draw.videos["labels"]).all()
        accuracy.append((vote(softmax(draw.logits)) == draw.label).mean())
    assert accuracy[0] < 0.6 < 0.9 < accuracy[1]


def test_a_whole_class_missing_label_is_missing_from_every_video_of_the_class():
    world = small_world()
    draw = simulate(world, quality=2.0, rng=np.random.default_rng(1))
    assert world.whole
    for x, y in world.whole:
        assert draw.missing[draw.label == x, y].all()
    for x, y in world.minority:
        assert 0 < draw.missing[draw.label == x, y].sum() < (draw.label == x).sum()
    assert not draw.missing[np.arange(len(draw.label)), draw.label].any()


def test_grid_categories_share_a_sound_or_a_sight_so_a_unimodal_layer_confuses_them():
    world = small_world()
    draw = simulate(world, quality=4.0, rng=np.random.default_rng(2))
    grid = world.group == "audiovisual"
    audio_right = (draw.logits[:, 4].argmax(-1) == draw.label)[grid[draw.label]].mean()
    av_right = max((draw.logits[:, i].argmax(-1) == draw.label)[grid[draw.label]].mean() for i in range(3))
    assert audio_right < 0.7 < 0.85 < av_right


def test_group_scores_count_right_wrong_and_unclear_and_types_apart():
    world = small_world()
    truth = dict(zip(world.classes, world.group))
    categories = pd.DataFrame({"category": world.classes, "group": world.group, "layer": world.event_type})
    categories.loc[categories["group"] != "audiovisual", "layer"] = categories["group"]
    first_av = categories.index[categories["group"] == "audiovisual"][0]
    categories.loc[0, ["group", "layer"]] = "unclear"  # the first class, audio-visual in every world
    categories.loc[first_av + 1, "layer"] = "audiovisual"  # type left unclear
    scores = score_groups(world, categories)
    assert truth[world.classes[0]] == "audiovisual"
    assert (scores["groups_right"], scores["groups_wrong"], scores["groups_unclear"]) == (len(world.classes) - 1, 0, 1)
    assert scores["group_precision"] == 1.0
    assert (scores["types_right"], scores["types_wrong"], scores["types_unclear"]) == (6, 0, 2)


def test_candidate_scores_split_recall_by_minority_and_whole_class():
    world = small_world()
    draw = simulate(world, quality=2.0, rng=np.random.default_rng(1))
    video, cls = np.nonzero(draw.missing)
    x, y = world.whole[0]
    whole_rows = (draw.label[video] == x) & (cls == y)
    right = pd.DataFrame({"video_id": draw.videos["video_id"].to_numpy()[video[whole_rows]],
                          "candidate": np.asarray(world.classes)[cls[whole_rows]]})
    wrong = pd.DataFrame({"video_id": [draw.videos["video_id"][0]], "candidate": [world.classes[draw.label[0]]]})
    scores = score_candidates(draw, pd.concat([right, wrong]))
    assert scores["precision"] == whole_rows.sum() / (whole_rows.sum() + 1)
    assert scores["recall_minority"] == 0.0
    assert scores["recall_whole"] == whole_rows.sum() / sum((draw.label == a).sum() for a, _ in world.whole)


def test_a_crossed_label_is_seen_by_one_unimodal_layer_only_and_a_hard_sight_by_the_fused_layers_only():
    world = make_world(np.random.default_rng(0))
    draw = simulate(world, quality=4.0, rng=np.random.default_rng(1))
    confidences = softmax(draw.logits)
    assert world.crossed
    for x, y in world.crossed:
        rows = np.flatnonzero(draw.missing[:, y] & (draw.label == x))
        assert len(rows) == (draw.label == x).sum() // 5
        seen_by = 3 if world.group[y] == "visual" else 4
        assert confidences[rows, seen_by, y].mean() > 0.5 > 0.1 > confidences[rows, :3, y].mean()
    hard = world.sight_gain < 1
    assert (world.group[hard] == "audiovisual").all() and hard.sum() == 4
    on_hard = hard[draw.label]
    own = confidences[np.arange(len(draw.label)), :, draw.label]
    assert own[on_hard, 3].mean() < 0.2 < 0.8 < own[on_hard, :3].max(axis=1).mean()


def test_a_biased_layer_names_one_category_of_a_pair_on_both_and_a_learned_co_occurrence_names_the_class():
    """The structures behind the `tiny` models' wrong groups (docs/decisions-bench.md): a unimodal layer that hears
    the sound two grid categories share as the first alone, and an audio layer that learned the sound that went with
    every clip of a visual class as that class too."""
    world = make_world(np.random.default_rng(0), biased=2, co_occur=1)
    assert not make_world(np.random.default_rng(0)).biased  # asked for only
    assert len(world.biased) == 2 and world.whole[-1] in [(x, y) for x in range(len(world.classes))
                                                          for y in range(len(world.classes))
                                                          if world.group[x] == "visual" and world.group[y] == "audio"]
    draw = simulate(world, quality=4.0, rng=np.random.default_rng(1))
    for layer, x, r in world.biased:
        assert (draw.logits[draw.label == r, layer].argmax(-1) == x).mean() > 0.8  # X named on R's videos
    x, y = world.whole[-1]
    plain = simulate(world, quality=4.0, rng=np.random.default_rng(1))
    learned = simulate(world, quality=4.0, rng=np.random.default_rng(1), learned=True)
    gap = learned.logits[draw.label == y, 4, x] - plain.logits[draw.label == y, 4, x]
    assert (gap > 2).all()  # the audio layer names the visual class X on the sound's own videos


def test_a_learned_cooccurrence_is_heard_as_the_visual_class_on_the_sounds_own_videos_and_nowhere_else_changes():
    world = small_world()
    learned = with_learned(world, np.random.default_rng(5), 1)
    (x, y), = learned.learned
    assert learned.group[x] == "visual" and learned.group[y] == "audio" and (x, y) in learned.whole
    assert learned.whole[:-1] == world.whole and learned.minority == world.minority
    plain = simulate(world, quality=4.0, rng=np.random.default_rng(1))
    draw = simulate(learned, quality=4.0, rng=np.random.default_rng(1))
    assert draw.missing[draw.label == x, y].all()
    audio = softmax(draw.logits)[:, 4]
    assert np.median(audio[draw.label == y, x]) > 0.2 > np.median(softmax(plain.logits)[plain.label == y, 4, x])
    fused = softmax(draw.logits)[draw.label == x, :3, y]
    assert np.median(fused) < 0.05 < np.median(audio[draw.label == x, y])  # the audio layer alone hears Y there


def test_a_skewed_mix_has_many_categories_of_one_modality_and_few_of_the_other():
    """The bench's `mostly audio` and `mostly visual` worlds (VGGSounder's majorities: 57 audio, 2 visual classes):
    the rule that judges whether a unimodal layer perceives must not depend on the mix."""
    world = make_world(np.random.default_rng(0), grids=2, unimodal=12, visual_only=1, redundant=1)
    assert {g: int((world.group == g).sum()) for g in ("audiovisual", "audio", "visual", "redundant")} == {
        "audiovisual": 8, "audio": 12, "visual": 1, "redundant": 1}
    assert (world.sight[world.group == "audio"] == -1).all() and (world.sound[world.group == "visual"] == -1).all()
    standard = make_world(np.random.default_rng(0))
    assert (standard.group == "audio").sum() == (standard.group == "visual").sum() == 4


def test_a_patchy_visual_layer_sees_some_sights_at_full_strength_and_the_rest_weakly():
    """The bench's `patchy visual` world: the `tiny` models' visual layers see the orange disc and little else."""
    world = make_world(np.random.default_rng(0))
    draws = {seen: simulate(world, quality=2.0, rng=np.random.default_rng(1), visual_strength=0.25, seen=seen)
             for seen in (0.0, 0.25)}
    sharp = (world.sight >= 0) & (world.sight % 4 == 0)
    right = {seen: draw.logits[:, 3].argmax(-1) == draw.label for seen, draw in draws.items()}
    on_sharp = sharp[draws[0.0].label]
    assert right[0.25][on_sharp].mean() > right[0.0][on_sharp].mean() + 0.3
    same = np.ones(draws[0.0].logits.shape, bool)
    same[:, 3][:, sharp] = False  # the visual layer's logits of the sharp sights' classes
    assert (draws[0.25].logits[same] == draws[0.0].logits[same]).all()  # the rest, and the draws, unchanged
