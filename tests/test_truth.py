"""Modality truth from AVVP's separate audio and visual event files, and the bias audit scored against it."""
import json
import os
from pathlib import Path

import pandas as pd
import pytest
from cli_helpers import cli, invoke

from avaudit.audits.truth import match_filenames, modality_truth, score_against_truth
from avaudit.events import EventsError, read_events

RELEASE = Path(__file__).parent / "data" / "manifests"  # AVVP_eval_{audio,visual}.csv, unchanged copies
HEADER = "filename\tonset\toffset\tevent_labels\n"


def events_file(path, rows):
    path.write_text(HEADER + "".join("\t".join(map(str, row)) + "\n" for row in rows))
    return path


def test_the_release_files_read_as_released():
    audio, visual = read_events(RELEASE / "AVVP_eval_audio.csv"), read_events(RELEASE / "AVVP_eval_visual.csv")
    assert list(audio.columns) == ["filename", "label", "onset", "offset"]
    assert (len(audio), len(visual)) == (4131, 2495)  # every line but the header
    assert audio.iloc[0].to_dict() == {"filename": "4YdbENYcIyE_23_33", "label": "Baby_cry_infant_cry",
                                       "onset": 0.0, "offset": 4.0}
    # The one reversed row of the release (9 -> 0) is the interval between its times.
    row = audio[(audio["filename"] == "8DF2PxdT5tE_390_400") & (audio["label"] == "Cheering")]
    assert row[["onset", "offset"]].values.tolist() == [[0.0, 9.0]]
    truth = modality_truth(audio, visual)
    assert truth["truth"].value_counts().to_dict() == {"audiovisual": 2054, "audio": 1185, "visual": 155}
    assert truth["filename"].nunique() == 1857
    blender = truth[truth["filename"] == "KSRjje7GH44_60_70"].drop(columns="filename").to_dict("records")
    assert blender == [  # Blender heard 8-10 s and seen 0-10 s; Speech heard 0-8 s only
        {"label": "Blender", "key": "blender", "truth": "audiovisual", "audio_s": 2.0, "visual_s": 10.0, "both_s": 2.0},
        {"label": "Speech", "key": "speech", "truth": "audio", "audio_s": 8.0, "visual_s": 0.0, "both_s": 0.0}]


def test_overlapping_and_split_events_count_each_second_once(tmp_path):
    audio = read_events(events_file(tmp_path / "a.csv", [("v_0_10", 0, 4, "Dog"), ("v_0_10", 2, 6, "Dog"),
                                                          ("v_0_10", 8, 9, "Dog"), ("v_0_10", 3, 3, "Cat")]))
    visual = read_events(events_file(tmp_path / "v.csv", [("v_0_10", 5, 10, "dog"), ("w_0_10", 0, 10, "Car")]))
    truth = modality_truth(audio, visual).drop(columns="filename")
    assert truth.to_dict("records") == [
        {"label": "Cat", "key": "cat", "truth": "audio", "audio_s": 0.0, "visual_s": 0.0, "both_s": 0.0},
        {"label": "Dog", "key": "dog", "truth": "audiovisual", "audio_s": 7.0, "visual_s": 5.0, "both_s": 2.0},
        {"label": "Car", "key": "car", "truth": "visual", "audio_s": 0.0, "visual_s": 10.0, "both_s": 0.0}]


def test_a_file_in_another_layout_is_refused_with_its_name(tmp_path):
    llp = tmp_path / "AVVP_val_pd.csv"
    llp.write_text("filename\tevent_labels\nv_0_10\tDog,Speech\n")
    with pytest.raises(EventsError) as err:
        read_events(llp)
    assert str(err.value) == (f"{llp}: line 1 is not the header 'filename\\tonset\\toffset\\tevent_labels' "
                              "(tab-separated, as AVVP_eval_audio.csv and AVVP_eval_visual.csv have)")
    bad = events_file(tmp_path / "bad.csv", [("v_0_10", "x", 4, "Dog")])
    with pytest.raises(EventsError) as err:
        read_events(bad)
    assert str(err.value) == f"{bad}: line 2 is not filename<TAB>onset<TAB>offset<TAB>labels with times in seconds"


@pytest.mark.parametrize("text,reason", [
    ("root:$6$secret:19000:0:99999:7:::\nbin:*:19000\n", "line 1 is not the header 'filename\\tonset\\toffset\\t"
     "event_labels' (tab-separated, as AVVP_eval_audio.csv and AVVP_eval_visual.csv have)"),
    ("filename\tonset\toffset\tevent_labels\nv_0_10\t1\t2\tDog\n\n\nv_0_10\tsecret\t3\tCat secret\n",
     "line 5 is not filename<TAB>onset<TAB>offset<TAB>labels with times in seconds"),
    ("filename\tonset\toffset\tevent_labels\nv\t1\t2\tDog\nv\t1\t2\tsecret\tsecret\n",
     "not a tab-separated events file (line 3 has more fields than the header, or a quote that is never closed)"),
    ("filename\tonset\toffset\tevent_labels\nv\t1\t2\tsecret\tsecret\n",
     "not a tab-separated events file (a line has more fields than the header, or a quote that is never closed)"),
    ("", "empty; an events file starts with the header 'filename\\tonset\\toffset\\tevent_labels'"),
])
def test_a_bad_events_file_is_named_with_its_line_and_never_quoted(tmp_path, text, reason):
    path = tmp_path / "events.csv"
    path.write_text(text)
    with pytest.raises(EventsError) as err:
        read_events(path)
    assert str(err.value) == f"{path}: {reason}"
    assert "secret" not in str(err.value)


def test_an_events_file_that_is_not_text_is_named_not_quoted(tmp_path):
    path = tmp_path / "events.csv"
    path.write_bytes(b"filename\tonset\toffset\tevent_labels\nv\t1\t2\t\xffsecret\n")
    with pytest.raises(EventsError) as err:
        read_events(path)
    assert str(err.value) == f"{path}: not an events file (not UTF-8 text)"


def test_videos_match_by_id_by_file_name_or_by_youtube_id():
    filenames = ["aaaaaaaaaaa_0_10", "bbbbbbbbbbb_30_40", "ccc_5_15", "ccc_20_30"]
    ids = pd.Series(["aaaaaaaaaaa_0_10", "Dog/bbbbbbbbbbb_30_40", "x", "ccc", "zzz"])
    paths = pd.Series(["/d/a.mp4", "/d/Dog/b.mp4", "/d/video/bbbbbbbbbbb.mp4", "/d/video/ccc.mp4", "/d/zzz.mp4"])
    out = match_filenames(ids, paths, filenames)
    # ccc has two windows in the annotations, so its bare YouTube id names neither
    assert out.tolist()[:3] == ["aaaaaaaaaaa_0_10", "bbbbbbbbbbb_30_40", "bbbbbbbbbbb_30_40"]
    assert out.isna().tolist() == [False, False, False, True, True]


def test_scores_each_video_and_category_with_redundant_agreeing_with_heard_and_seen():
    per_video = pd.DataFrame({
        "video_id": ["d1", "d2", "d3", "s1", "s2", "c1", "c1"], "path": [f"/{v}.mp4" for v in "abcdefg"],
        "label": ["Dog", "Dog", "Dog", "Speech", "Speech", "Car", "Dog"],
        "layer": ["instant", "redundant", "audio", "audio", "visual", "visual", "onset"],
        "group": ["audiovisual", "redundant", "audio", "audio", "visual", "visual", "audiovisual"]})
    categories = pd.DataFrame({"category": ["Car", "Dog", "Speech"], "layer": ["visual", "instant", "audio"],
                               "group": ["visual", "audiovisual", "audio"]})
    truth = pd.DataFrame({"filename": ["d1", "d2", "d3", "s1", "s2", "c1"],
                          "label": ["Dog", "Dog", "Dog", "Speech", "Speech", "Car"],
                          "key": ["dog", "dog", "dog", "speech", "speech", "car"],
                          "truth": ["audiovisual", "audiovisual", "audio", "audio", "audio", "visual"],
                          "audio_s": [10.0, 10.0, 3.0, 4.0, 2.0, 0.0], "visual_s": [10.0, 5.0, 0.0, 0.0, 0.0, 10.0],
                          "both_s": [10.0, 5.0, 0.0, 0.0, 0.0, 0.0]})
    videos, per_category, summary = score_against_truth(per_video, categories, truth)
    assert videos[["video_id", "label", "truth", "group", "agrees"]].values.tolist() == [
        ["d1", "Dog", "audiovisual", "audiovisual", True], ["d2", "Dog", "audiovisual", "redundant", True],
        ["d3", "Dog", "audio", "audio", True], ["s1", "Speech", "audio", "audio", True],
        ["s2", "Speech", "audio", "visual", False], ["c1", "Car", "visual", "visual", True]]
    assert per_category.values.tolist() == [["Car", "visual", 0, 1, 0, "visual", "visual", True],
                                            ["Dog", "audiovisual", 1, 0, 2, "instant", "audiovisual", True],
                                            ["Speech", "audio", 2, 0, 0, "audio", "audio", True]]
    assert summary["videos"] == {
        "n_scored": 6, "n_agree": 5, "agreement": pytest.approx(5 / 6), "n_rows": 7, "n_video_not_annotated": 0,
        "n_label_not_annotated": 1, "n_unclear": 0,  # c1 is annotated, but not with Dog
        "by_truth": {"audio": {"n": 3, "groups": {"audio": 2, "visual": 1}}, "visual": {"n": 1, "groups": {"visual": 1}},
                     "audiovisual": {"n": 2, "groups": {"audiovisual": 1, "redundant": 1}}}}
    assert summary["categories"]["n_agree"] == 3 and summary["categories"]["agreement"] == 1.0


def avvp_copy(planted, tmp_path):
    """The planted clips as an AVVP release: an LLP manifest of `{id}_0_10` files and the two event files,
    each category's planted sound an audio event and its sight a visual event over the whole 10 s (the
    second category of a two-event clip too, though it is not the clip's label)."""
    from avaudit.planted import CATEGORIES

    planted_as = {c.name: c for c in CATEGORIES}
    clips = pd.read_csv(planted / "clips.csv").merge(pd.read_csv(planted / "missing_truth.csv"), how="left",
                                                      on=["path", "label"])
    root = tmp_path / "llp"
    root.mkdir()
    manifest, audio, visual = ["filename\tevent_labels"], [], []
    for i, clip in enumerate(clips.itertuples(index=False)):
        name = f"pl{i:09d}_0_10"
        os.link(planted / clip.path, root / f"{name}.mp4")
        manifest.append(f"{name}\t{clip.label}")
        for category in (clip.label, clip.missing_label):
            if isinstance(category, str):
                if planted_as[category].sound:
                    audio.append((name, 0, 10, category))
                if planted_as[category].sight:
                    visual.append((name, 0, 10, category))
    (root / "llp.tsv").write_text("\n".join(manifest) + "\n")
    return root / "llp.tsv", events_file(tmp_path / "audio.csv", audio), events_file(tmp_path / "visual.csv", visual)


@pytest.mark.slow
def test_bias_with_truth_writes_the_scored_tables(planted, tiny_model, tmp_path, monkeypatch):
    manifest, audio, visual = avvp_copy(planted, tmp_path)
    out = tmp_path / "out"
    result = invoke("bias", manifest, "--model", tiny_model, "--out", out, "--truth-audio", audio, "--truth-visual",
                    visual, "--min-support", "0")  # a tiny model's calls are all unclear at the default
    # ... and under no support floor, still unclear where no layer has a positive margin: counted apart
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out / "bias_truth.csv", keep_default_na=False)
    videos = pd.read_csv(out / "bias_videos.csv", keep_default_na=False)
    planted_truth = pd.read_csv(planted / "truth.csv").set_index("category")["group"]
    assert list(scored.columns) == ["video_id", "path", "label", "filename", "truth", "audio_s", "visual_s", "both_s",
                                    "layer", "group", "agrees"]
    assert scored["video_id"].tolist() == videos["video_id"].tolist() and len(scored) == 36
    assert scored["truth"].tolist() == scored["label"].map(planted_truth).tolist()
    expected = [g in {"audio": ("audio",), "visual": ("visual",), "audiovisual": ("audiovisual", "redundant")}[t]
                for t, g in zip(scored["truth"], videos["group"])]
    assert scored["agrees"].tolist() == expected
    summary = json.loads((out / "bias_summary.json").read_text())["truth"]
    assert summary["videos"]["n_scored"] == 36 and summary["videos"]["n_agree"] == sum(expected)
    decided = int((pd.read_csv(out / "bias_categories.csv", keep_default_na=False)["group"] != "unclear").sum())
    assert summary["audio_events"] == str(audio) and summary["categories"]["n_scored"] == decided > 0
    categories = pd.read_csv(out / "bias_truth_categories.csv", keep_default_na=False)
    assert categories.set_index("category")["truth"].to_dict() == planted_truth.to_dict()
    n_categories = int((categories["agrees"].astype(str) == "True").sum())  # empty where unclear
    kappa = {level: "" if summary[level]["kappa"] is None else f", kappa {summary[level]['kappa']:.2f}"
             for level in ("videos", "categories")}
    assert (f"against the annotated events: videos {sum(expected)} of 36 agree ({100 * sum(expected) / 36:.1f}%)"
            f"{kappa['videos']} against the annotated events: categories {n_categories} of {decided} agree "
            f"({100 * n_categories / decided:.1f}%){kappa['categories']}") in " ".join(result.output.split())


def test_truth_needs_both_files(planted, tmp_path):
    result = cli("bias", planted, "--truth-audio", RELEASE / "AVVP_eval_audio.csv", "--out", tmp_path)
    assert result.exit_code == 2
    assert ("--truth-audio and --truth-visual go together: the audio events and the visual events of the same "
            "videos") in " ".join(result.output.split())


def test_an_events_file_in_another_layout_is_a_usage_error_before_any_decoding(planted, tmp_path):
    llp = tmp_path / "AVVP_val_pd.csv"
    llp.write_text("filename\tevent_labels\nv_0_10\tDog,Speech\n")
    result = cli("bias", planted, "--truth-audio", llp, "--truth-visual", RELEASE / "AVVP_eval_visual.csv", "--out",
                 tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert " ".join(result.output.split()) == (
        f"error: {llp}: line 1 is not the header 'filename\\tonset\\toffset\\tevent_labels' (tab-separated, as "
        "AVVP_eval_audio.csv and AVVP_eval_visual.csv have)")
    assert not (tmp_path / "out").exists()
