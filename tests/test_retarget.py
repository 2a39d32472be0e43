import pandas as pd
import pytest

from avaudit.audits.retarget import KINETICS_SOUNDS, compare, select
from avaudit.vocab import GROUPS


def tables():
    """Five videos over four categories; the index is deliberately not 0..N-1 (manifest rows)."""
    per_video = pd.DataFrame({
        "video_id": ["a", "b", "c", "d", "e"], "path": [f"/{x}.mp4" for x in "abcde"],
        "label": ["dog", "dog", "piano", "siren", "drum"],
        "layer": ["instant", "audio", "redundant", "continuous", "visual"],
        "group": ["audiovisual", "audio", "redundant", "audiovisual", "visual"],
    }, index=[10, 11, 12, 13, 14])
    per_category = pd.DataFrame({
        "category": ["dog", "piano", "siren", "drum"], "layer": ["instant", "redundant", "continuous", "visual"],
        "group": ["audiovisual", "redundant", "audiovisual", "visual"],
    })
    return per_video, per_category


def test_by_category_keeps_every_video_of_a_kept_category():
    per_video, per_category = tables()
    out = select(per_video, per_category, ["audiovisual"])
    assert out["video_id"].tolist() == ["a", "b", "d"]  # b is an audio video of an audio-visual category
    assert out.index.tolist() == [10, 11, 13]


def test_redundant_is_kept_only_when_asked_for():
    per_video, per_category = tables()
    assert "piano" not in set(select(per_video, per_category, ["audiovisual"])["label"])
    both = select(per_video, per_category, ["audiovisual", "redundant"])
    assert both["video_id"].tolist() == ["a", "b", "c", "d"]


def test_by_video_judges_each_video_alone():
    per_video, per_category = tables()
    out = select(per_video, per_category, ["audiovisual"], by="video")
    assert out["video_id"].tolist() == ["a", "d"] and out.index.tolist() == [10, 13]


def test_layer_names_select_single_layers():
    per_video, per_category = tables()
    assert select(per_video, per_category, ["continuous"])["video_id"].tolist() == ["d"]
    assert select(per_video, per_category, ["audio"], by="video")["video_id"].tolist() == ["b"]
    assert select(per_video, per_category, ["instant", "visual"])["video_id"].tolist() == ["a", "b", "e"]


def test_bad_arguments_name_the_valid_choices():
    per_video, per_category = tables()
    with pytest.raises(ValueError, match="audiovisual.*onset"):
        select(per_video, per_category, ["audio-visual"])
    with pytest.raises(ValueError):
        select(per_video, per_category, [])
    with pytest.raises(ValueError, match="by"):
        select(per_video, per_category, ["audio"], by="clip")


def test_kinetics_sounds_lists_match_datasets_md():
    assert {k: len(v) for k, v in KINETICS_SOUNDS.items()} == {"ks31": 31, "ks32": 32, "ks34": 34}
    assert all(len(set(v)) == len(v) for v in KINETICS_SOUNDS.values())
    assert set(KINETICS_SOUNDS["ks32"]) - set(KINETICS_SOUNDS["ks31"]) == {"strumming guitar"}
    assert "mowing the lawn by pushing lawnmower" in KINETICS_SOUNDS["ks34"]
    assert {"typing", "blowing out", "dribbling ball", "mowing the lawn by pushing lawnmower", "stomping",
            "fingerpicking", "patting"} == set(KINETICS_SOUNDS["ks34"]) - set(KINETICS_SOUNDS["ks31"])
    assert GROUPS == ("audiovisual", "audio", "visual", "redundant")


def test_compare_matches_folder_spellings():
    kept = ["Playing_Piano", " bowling ", "tickling", "abseiling", "playing  guitar"]
    result = compare(kept, "KS31")
    assert result["reference"] == "ks31" and result["n_reference"] == 31
    assert result["matched"] == ["bowling", "playing guitar", "playing piano", "tickling"]
    assert result["n_matched"] == 4 and result["fraction"] == pytest.approx(4 / 31)
    assert len(result["unmatched"]) == 27 and result["unmatched"] == sorted(result["unmatched"])


def test_compare_rejects_unknown_reference():
    with pytest.raises(ValueError, match="ks31, ks32, ks34"):
        compare(["bowling"], "ks40")
    assert compare([], "ks34")["n_matched"] == 0
