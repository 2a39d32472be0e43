"""The bias audit against people's modality labels (VGGSounder's CSV), checked against numbers worked by hand."""
import io

import pandas as pd
import pytest

from avaudit.audits.people import check_people, score_against_people

# VGGSounder's header and ids ({ytid}_{start:06d}), labels in VGGSound's class names.
VGGSOUNDER = """video_id,label,modality,background_music,static_image,voice_over
---g-f_I2yQ_000001,people marching,AV,False,False,False
---g-f_I2yQ_000001,"male speech, man speaking",A,False,False,True
--0PQM4-hqg_000030,waterfall burbling,AV,False,False,False
--0PQM4-hqg_000030,people marching,A,True,False,False
-0BIyqJj9ZU_000030,playing drum kit,V,False,True,False
zzzzzzzzzzz_000010,dog barking,A,False,False,False
--0PQM4-hqg_000030,dog barking,AV,False,False,False
"""


def audited():
    """The bias audit's tables: one row per (video, label); the drum video is named by its file only."""
    per_video = pd.DataFrame({
        "video_id": ["---g-f_I2yQ_000001", "---g-f_I2yQ_000001", "--0PQM4-hqg_000030", "--0PQM4-hqg_000030",
                     "clip3"],
        "path": ["a.mp4", "a.mp4", "b.mp4", "b.mp4", "/data/-0BIyqJj9ZU_000030.mp4"],
        "label": ["people marching", "Male_speech, man speaking", "waterfall burbling", "people marching",
                  "playing drum kit"],
        "group": ["audiovisual", "audio", "redundant", "visual", "audiovisual"],
        "clear": [True, True, True, True, False]})
    categories = pd.DataFrame({"category": ["people marching", "Male_speech, man speaking", "waterfall burbling",
                                            "playing drum kit"],
                               "group": ["audiovisual", "audio", "unclear", "visual"]})
    return per_video, categories


def people():
    return check_people(pd.read_csv(io.StringIO(VGGSOUNDER)))


def test_pairs_give_the_matrix_agreement_and_kappa_worked_by_hand():
    pairs, _, unmatched, summary = score_against_people(*audited(), people())
    p = summary["pairs"]
    # people A: ours audio 1 (speech), visual 1 (marching on b); people AV: ours audiovisual 2 (a, waterfall)
    assert p["matrix"] == {"audio": {"audio": 1, "visual": 1, "audiovisual": 0},
                           "visual": {"audio": 0, "visual": 0, "audiovisual": 0},
                           "audiovisual": {"audio": 0, "visual": 0, "audiovisual": 2}}
    assert p["n"] == 4 and p["agreement"] == 0.75
    assert p["kappa"] == pytest.approx(0.6)  # expected (2*1 + 0*1 + 2*2) / 16 = 0.375; (0.75 - 0.375) / 0.625
    assert p["n_unclear"] == 1  # the drum video is not clear
    assert len(pairs) == 5 and set(pairs["ours"]) == {"audio", "visual", "audiovisual", "unclear"}


def test_the_flags_split_the_pairs():
    _, _, _, summary = score_against_people(*audited(), people())
    music = summary["pairs"]["by_flag"]["background_music"]
    assert (music["with"]["n"], music["with"]["agreement"], music["with"]["kappa"]) == (1, 0.0, 0.0)
    assert music["without"]["n"] == 3 and music["without"]["agreement"] == 1.0
    assert music["without"]["kappa"] == pytest.approx(1.0)  # expected (1*1 + 2*2) / 9
    voice = summary["pairs"]["by_flag"]["voice_over"]["with"]
    assert voice["n"] == 1 and voice["agreement"] == 1.0 and voice["kappa"] is None  # expected agreement 1


def test_categories_take_peoples_majority_and_unclear_ones_count_apart():
    _, per_category, _, summary = score_against_people(*audited(), people())
    table = per_category.set_index("category")
    assert table.loc["people marching", "people"] == "audiovisual"  # one AV, one A: ties go to audiovisual
    assert table.loc["playing drum kit", ["people", "ours", "static_image"]].tolist() == ["visual", "visual", True]
    c = summary["categories"]
    assert (c["n"], c["agreement"], c["n_unclear"]) == (3, 1.0, 1) and c["kappa"] == pytest.approx(1.0)


def test_truth_rows_matching_no_audited_pair_are_counted_and_named():
    _, _, unmatched, summary = score_against_people(*audited(), people())
    assert unmatched.values.tolist() == [["zzzzzzzzzzz_000010", "dog barking"], ["--0PQM4-hqg_000030", "dog barking"]]
    assert summary["n_unmatched"] == 2 and summary["n_truth_rows"] == 7
    assert summary["unmatched"] == ["zzzzzzzzzzz_000010/dog barking", "--0PQM4-hqg_000030/dog barking"]


@pytest.mark.parametrize("text, message", [
    ("video_id,label\nx,y\n", "no modality column"),
    ("video_id,label,modality\nx,y,AV\nx,z,both\n", "1 rows with a modality other than A, V or AV (first: 'both')"),
])
def test_a_malformed_file_is_one_clear_error(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_people(pd.read_csv(io.StringIO(text)))
