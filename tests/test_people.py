"""The bias audit and missing-label candidates scored against people's labels: VGGSounder's CSV.

TRUTH holds real rows of VGGSounder's `vggsounder+background-music.csv` (the vggsounder 1.0 wheel),
every label row of eleven test videos, copied unchanged. Ten of the videos are audited under one of
their labels, with logits made so the bias audit (sufficiency rule, fraction 0.9) gives each the
modality written beside it; the eleventh (6iZZQvXNBnI_000009, 2 rows) is not audited.

    video                 label audited           people  flags (music, static, voice)  avaudit
 1  -8pCMgGKZY8_000012    dog barking             AV      T F T                          onset (AV)
 2  1FU5odlgLmo_000030    dog barking             V       T F F                          audio
 3  1veIcvGPRYw_000003    dog barking             A       F F F                          audio
 4  0Wkk9iNzA9c_000030    dog barking             AV      F F F                          redundant (AV)
 5  -uaTK8sa5Ms_000010    playing violin, fiddle  A       T F F                          audio
 6  0g4SlqjORM4_000080    playing violin, fiddle  A       T T F                          visual
 7  0apGJGFHQO4_000067    playing violin, fiddle  AV      F F F                          audio
 8  -_umX4zgLVY_000028    lions roaring           A       F F F                          audio
 9  DZ2idjIBgKk_000030    lions roaring           V       T T T                          visual
10  91z1LeIpLbk_000053    lions roaring           AV      F T F                          continuous (AV)
    zzzzzzzzzzz_000000    dog barking             (not in the truth)                     audio
"""
import json

import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli

from avaudit.audits.bias import bias_audit
from avaudit.audits.people import cohen_kappa, modality_matrix, score_candidates, score_people
from avaudit.truthfiles import TruthError, read_truth, vggsounder_file

HEADER = "video_id,label,modality,background_music,static_image,voice_over\n"
TRUTH = HEADER + """\
-8pCMgGKZY8_000012,dog barking,AV,True,False,True
-8pCMgGKZY8_000012,dog bow-wow,AV,True,False,True
-8pCMgGKZY8_000012,"male speech, man speaking",AV,True,False,True
-8pCMgGKZY8_000012,sheep bleating,AV,True,False,True
-_umX4zgLVY_000028,lions growling,AV,False,False,False
-_umX4zgLVY_000028,lions roaring,A,False,False,False
-uaTK8sa5Ms_000010,"male speech, man speaking",V,True,False,False
-uaTK8sa5Ms_000010,playing banjo,A,True,False,False
-uaTK8sa5Ms_000010,"playing violin, fiddle",A,True,False,False
0Wkk9iNzA9c_000030,dog barking,AV,False,False,False
0Wkk9iNzA9c_000030,dog bow-wow,AV,False,False,False
0Wkk9iNzA9c_000030,dog growling,AV,False,False,False
0apGJGFHQO4_000067,"playing violin, fiddle",AV,False,False,False
0apGJGFHQO4_000067,wind noise,A,False,False,False
0g4SlqjORM4_000080,orchestra,A,True,True,False
0g4SlqjORM4_000080,playing flute,A,True,True,False
0g4SlqjORM4_000080,playing french horn,A,True,True,False
0g4SlqjORM4_000080,"playing violin, fiddle",A,True,True,False
1FU5odlgLmo_000030,dog barking,V,True,False,False
1FU5odlgLmo_000030,dog bow-wow,V,True,False,False
1FU5odlgLmo_000030,playing banjo,A,True,False,False
1FU5odlgLmo_000030,playing bongo,A,True,False,False
1FU5odlgLmo_000030,playing cello,A,True,False,False
1FU5odlgLmo_000030,playing mandolin,A,True,False,False
1veIcvGPRYw_000003,dog barking,A,False,False,False
1veIcvGPRYw_000003,dog bow-wow,A,False,False,False
1veIcvGPRYw_000003,dog growling,AV,False,False,False
1veIcvGPRYw_000003,dog whimpering,AV,False,False,False
6iZZQvXNBnI_000009,lions growling,AV,False,False,False
6iZZQvXNBnI_000009,lions roaring,AV,False,False,False
91z1LeIpLbk_000053,"bird chirping, tweeting",A,False,True,False
91z1LeIpLbk_000053,lions growling,AV,False,True,False
91z1LeIpLbk_000053,lions roaring,AV,False,True,False
DZ2idjIBgKk_000030,cattle mooing,AV,True,True,True
DZ2idjIBgKk_000030,lions roaring,V,True,True,True
1veIcvGPRYw_000003,"bird chirping, tweeting",A,False,False,False
"""
CLASSES = ["dog barking", "dog bow-wow", "playing violin, fiddle", "lions roaring", "lions growling", "playing banjo"]
# (video_id, audited label, what the audit is to say)
AUDITED = [("-8pCMgGKZY8_000012", "dog barking", "onset"), ("1FU5odlgLmo_000030", "dog barking", "audio"),
           ("1veIcvGPRYw_000003", "dog barking", "audio"), ("0Wkk9iNzA9c_000030", "dog barking", "redundant"),
           ("-uaTK8sa5Ms_000010", "playing violin, fiddle", "audio"),
           ("0g4SlqjORM4_000080", "playing violin, fiddle", "visual"),
           ("0apGJGFHQO4_000067", "playing violin, fiddle", "audio"), ("-_umX4zgLVY_000028", "lions roaring", "audio"),
           ("DZ2idjIBgKk_000030", "lions roaring", "visual"), ("91z1LeIpLbk_000053", "lions roaring", "continuous"),
           ("zzzzzzzzzzz_000000", "dog barking", "audio")]
# Logits of the true label per layer (continuous, instant, onset, visual, audio); other classes 0. With 6
# classes a logit of 4 is confidence e^4 / (e^4 + 5) = 0.92, 2 is 0.60, 0 is 0.17: against 0.9 x the best
# audio-visual layer, audio at 4 suffices and visual at 0 does not, and so on.
LAYER_LOGITS = {"audio": [2, 2, 2, 0, 4], "visual": [2, 2, 2, 4, 0], "redundant": [2, 2, 2, 4, 4],
                "onset": [2, 2, 4, 0, 0], "continuous": [4, 2, 2, 0, 0]}


def audited_logits() -> tuple[pd.DataFrame, np.ndarray]:
    videos = pd.DataFrame({"video_id": [v for v, _, _ in AUDITED], "label": [lab for _, lab, _ in AUDITED]})
    videos["path"] = "/data/" + videos["video_id"] + ".mp4"
    logits = np.zeros((len(AUDITED), 5, len(CLASSES)), np.float32)
    for i, (_, label, modality) in enumerate(AUDITED):
        logits[i, :, CLASSES.index(label)] = LAYER_LOGITS[modality]
    return videos, logits


def truth_file(tmp_path, text=TRUTH, name="vggsounder+background-music.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def audited_and_scored(tmp_path):
    from avaudit.audits.decisions import softmax

    videos, logits = audited_logits()
    per_video, categories, _ = bias_audit(videos, softmax(logits), CLASSES, rule="sufficiency", fraction=0.9)
    people = read_truth(truth_file(tmp_path))
    return per_video, categories, people


def test_the_logits_give_the_planned_modalities(tmp_path):
    per_video, categories, _ = audited_and_scored(tmp_path)
    assert per_video["layer"].tolist() == [m for _, _, m in AUDITED]
    # dog barking: audio 3 (zz too), onset 1, redundant 1; violin: audio 2, visual 1; lions: one each of
    # audio, visual, continuous, a tie of equal summed confidence going to the first in LAYERS order.
    assert categories.set_index("category")["layer"].to_dict() == {
        "dog barking": "audio", "lions roaring": "continuous", "playing violin, fiddle": "audio"}


def test_matrix_kappa_and_flags_against_vggsounder_worked_by_hand(tmp_path):
    per_video, categories, people = audited_and_scored(tmp_path)
    tables, summary = score_people(per_video, categories, people.table, window_fields=people.window_fields)
    matrix = tables["bias_truth_matrix.csv"]
    everything = matrix[(matrix["level"] == "videos") & (matrix["flag"] == "all")]
    # rows avaudit, columns people (audio = A, visual = V, audiovisual = AV):
    #   audio:       videos 3, 5, 8 (A); 2 (V); 7 (AV)          -> 3 1 1
    #   visual:      video 6 (A); 9 (V)                          -> 1 1 0
    #   audiovisual: videos 1, 4 (redundant), 10, all AV         -> 0 0 3
    assert everything[["avaudit", "audio", "visual", "audiovisual"]].values.tolist() == [
        ["audio", 3, 1, 1], ["visual", 1, 1, 0], ["audiovisual", 0, 0, 3], ["unclear", 0, 0, 0]]
    # p_o = 7/10; row sums 5, 2, 3, column sums 4, 2, 4: p_e = (5*4 + 2*2 + 3*4) / 100 = 0.36;
    # kappa = (0.7 - 0.36) / (1 - 0.36) = 0.53125
    scores = tables["bias_truth_scores.csv"].set_index(["level", "flag", "value"])
    assert scores.loc[("videos", "all", "")].to_dict() == {
        "n_scored": 10, "n_agree": 7, "agreement": 0.7, "kappa": pytest.approx(0.53125), "n_unclear": 0}
    # Categories: dog barking audio vs people AV 2, V 1, A 1 -> AV (no); violin audio vs A 2, AV 1 -> A (yes);
    # lions continuous (AV) vs A 1, V 1, AV 1 -> AV, ties going to audiovisual (yes). p_o = 2/3; rows 2, 0, 1,
    # columns 1, 0, 2: p_e = (2*1 + 1*2) / 9 = 4/9; kappa = (2/3 - 4/9) / (5/9) = 0.4
    assert scores.loc[("categories", "all", "")].to_dict() == {
        "n_scored": 3, "n_agree": 2, "agreement": pytest.approx(2 / 3), "kappa": pytest.approx(0.4), "n_unclear": 0}
    # background music: videos 1, 2, 5, 6, 9 -> 1, 5, 9 agree; matrix audio (A 1, V 1), visual (A 1, V 1),
    # audiovisual (AV 1): p_e = (2*2 + 2*2 + 1*1) / 25 = 0.36, kappa = (0.6 - 0.36) / 0.64 = 0.375.
    # Without: 3, 4, 7, 8, 10 -> all but 7; rows 3, 0, 2, columns 2, 0, 3: p_e = 12/25, kappa = 0.32/0.52.
    assert scores.loc[("videos", "background_music", "True"), ["n_scored", "n_agree", "kappa"]].tolist() == [
        5, 3, pytest.approx(0.375)]
    assert scores.loc[("videos", "background_music", "False"), ["n_scored", "n_agree", "kappa"]].tolist() == [
        5, 4, pytest.approx(0.32 / 0.52)]
    # static image: 6, 9, 10 -> 9 and 10 agree; voice over: 1 and 9, both agree; without it 5 of 8.
    assert scores.loc[("videos", "static_image", "True"), ["n_scored", "n_agree"]].tolist() == [3, 2]
    assert scores.loc[("videos", "voice_over", "True"), ["n_scored", "n_agree"]].tolist() == [2, 2]
    assert scores.loc[("videos", "voice_over", "False"), ["n_scored", "n_agree"]].tolist() == [8, 5]
    # Categories over the videos with background music: dog (1 AV, 2 V: a tie -> AV) against audio, no;
    # violin (5, 6: A) against audio, yes; lions (9: V) against continuous, no.
    assert scores.loc[("categories", "background_music", "True"), ["n_scored", "n_agree"]].tolist() == [3, 1]
    # Unmatched: the two rows of 6iZZQvXNBnI_000009, named; the audited zzzzzzzzzzz_000000 is in no row;
    # the 34 rows of the ten audited videos hold 24 labels besides the audited one.
    unmatched = tables["bias_truth_unmatched.csv"]
    assert unmatched[["filename", "label", "truth"]].values.tolist() == [
        ["6iZZQvXNBnI_000009", "lions growling", "audiovisual"], ["6iZZQvXNBnI_000009", "lions roaring", "audiovisual"]]
    assert (summary["n_truth_rows"], summary["n_truth_unmatched"], summary["n_truth_videos_unmatched"],
            summary["n_truth_other_label"]) == (36, 2, 1, 24)
    assert (summary["videos"]["n_video_not_annotated"], summary["videos"]["kappa"]) == (1, pytest.approx(0.53125))
    assert list(tables["bias_truth.csv"].columns) == [
        "video_id", "path", "label", "filename", "truth", "background_music", "static_image", "voice_over", "layer",
        "group", "agrees"]


def test_unclear_decisions_are_counted_apart(tmp_path):
    per_video, categories, people = audited_and_scored(tmp_path)
    per_video.loc[per_video["video_id"] == "1FU5odlgLmo_000030", "group"] = "unclear"  # was audio, people V: wrong
    categories.loc[categories["category"] == "lions roaring", "group"] = "unclear"  # was AV, people AV: right
    tables, summary = score_people(per_video, categories, people.table, window_fields=1)
    scores = tables["bias_truth_scores.csv"].set_index(["level", "flag", "value"])
    # videos: 9 decided, 7 agree; rows audio 4 (A 3, AV 1), visual 2 (A 1, V 1), AV 3 (AV 3); columns A 4,
    # V 1, AV 4: p_e = (4*4 + 2*1 + 3*4) / 81 = 30/81, kappa = (7/9 - 30/81) / (51/81) = 33/51
    assert scores.loc[("videos", "all", "")].to_dict() == {
        "n_scored": 9, "n_agree": 7, "agreement": pytest.approx(7 / 9), "kappa": pytest.approx(33 / 51),
        "n_unclear": 1}
    assert scores.loc[("categories", "all", ""), ["n_scored", "n_agree", "n_unclear"]].tolist() == [2, 1, 1]
    assert summary["videos"]["n_unclear"] == 1 and summary["categories"]["n_unclear"] == 1
    assert tables["bias_truth.csv"]["agrees"].isna().sum() == 1


def test_kappa_by_hand_and_where_it_is_undefined():
    assert cohen_kappa(np.array([[5, 0], [0, 5]])) == 1.0
    assert cohen_kappa(np.array([[4, 0], [0, 0]])) is None  # everyone says the same: chance agreement is 1
    assert cohen_kappa(np.zeros((3, 3), int)) is None
    # All audited and all people say audiovisual: kappa undefined, written as null (JSON has no NaN).
    per_video = pd.DataFrame({"video_id": ["a_000001"], "path": ["/a_000001.mp4"], "label": ["dog"],
                              "layer": ["onset"], "group": ["audiovisual"]})
    categories = pd.DataFrame({"category": ["dog"], "layer": ["onset"], "group": ["audiovisual"]})
    truth = pd.DataFrame({"filename": ["a_000001"], "label": ["dog"], "key": ["dog"], "truth": ["audiovisual"]})
    _, summary = score_people(per_video, categories, truth)
    assert summary["videos"]["kappa"] is None and summary["videos"]["agreement"] == 1.0
    assert json.dumps(summary, allow_nan=False)
    counts = modality_matrix(["audio", "redundant", "weird"], ["audio", "audiovisual", "visual"])
    assert counts.tolist() == [[1, 0, 0], [0, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_missing_label_candidates_against_people_label_sets(tmp_path):
    videos, _ = audited_logits()
    videos = videos.rename(columns={"label": "labels"})
    # People's labels the annotation lacks, among CLASSES: video 1 dog bow-wow; 2 dog bow-wow, playing banjo;
    # 3 and 4 dog bow-wow; 5 playing banjo; 8 and 10 lions growling: 8 to find. 16 more are not classes.
    candidates = pd.DataFrame([("-8pCMgGKZY8_000012", "dog bow-wow", 0.9), ("1FU5odlgLmo_000030", "playing banjo", 0.8),
                               ("0g4SlqjORM4_000080", "lions roaring", 0.7), ("-_umX4zgLVY_000028", "lions growling", 0.6),
                               ("DZ2idjIBgKk_000030", "dog barking", 0.5), ("zzzzzzzzzzz_000000", "dog bow-wow", 0.95)],
                              columns=["video_id", "candidate", "confidence"])
    table, summary = score_candidates(videos, candidates, read_truth(truth_file(tmp_path)).table, CLASSES,
                                      window_fields=1)
    # zz is not in the truth: 5 candidates scored, ranked right, right, wrong, right, wrong.
    # precision 3/5, recall 3/8, AP = (1/1 + 2/2 + 3/4) / 8 = 0.34375
    assert summary == {"n_videos_covered": 10, "n_candidates": 5, "n_right": 3, "precision": 0.6, "n_missing": 8,
                       "recall": 0.375, "average_precision": pytest.approx(0.34375), "n_missing_unknown_to_model": 16,
                       "n_truth_videos_unmatched": 1}
    assert table["proposed"].tolist() == [True] * 5 + [False] * 5
    assert table.loc[~table["proposed"], "label"].tolist() == [
        "dog bow-wow", "dog bow-wow", "dog bow-wow", "playing banjo", "lions growling"]


@pytest.mark.parametrize("text, message", [
    ("video_id,label,modality\nx_000000,dog barking,A\n",
     "line 1 is not VGGSounder's header video_id,label,modality,background_music,static_image,voice_over"),
    (HEADER + "a_000001,dog barking,AV,True,False,True\na_000001,cat,B,False,False,False\n",
     "line 3 has a modality other than A, V or AV"),
    (HEADER + "a_000001,dog barking,AV,yes,False,True\n", "line 2 has a flag other than True or False"),
    (HEADER + "a_000001,dog barking,AV,True,False\n", "line 2 has 5 fields, not 6"),
    (HEADER + "a_000001,dog,A,True,False,True\n\na_000001,dog,V,True,False,True\n",
     "line 4 repeats the video_id and label of line 2"),
    (HEADER + 'a_000001,"dog"x,A,True,False,True\n', "line 2 is not CSV"),
])
def test_a_malformed_truth_file_is_one_line_naming_file_and_line(tmp_path, text, message):
    path = truth_file(tmp_path, text, "people.csv")
    with pytest.raises(TruthError) as err:
        read_truth(path)
    assert str(err.value) == f"{path}: {message}"
    result = cli("bias", str(tmp_path), "--truth", str(path), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert " ".join(result.output.split()) == f"error: {path}: {message}"
    assert not (tmp_path / "out").exists()


def test_not_utf8_and_events_file_alone_are_refused(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes(HEADER.encode() + b"a_000001,\xff\xfe,A,True,False,True\n")
    with pytest.raises(TruthError, match="people.csv: not UTF-8 text$"):
        read_truth(path)
    events = truth_file(tmp_path, "filename\tonset\toffset\tevent_labels\nv_0_10\t0\t1\tDog\n", "audio.csv")
    with pytest.raises(TruthError, match="an AVVP events file; give the audio and the visual file together"):
        read_truth([events])


def test_vggsounder_is_found_in_its_package_without_importing_it(tmp_path, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr("importlib.util.find_spec", lambda name: None)  # not installed
        with pytest.raises(TruthError) as err:
            vggsounder_file()
        assert str(err.value) == ("--truth vggsounder needs the vggsounder package: pip install "
                                  "'avaudit[vggsounder]', or give the CSV's path")
    package = tmp_path / "site" / "vggsounder"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('vggsounder imported: it pulls in datasets')\n")
    truth_file(package / "data")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    people = read_truth(["vggsounder"])
    assert people.about["people"] == str(package / "data" / "vggsounder+background-music.csv")
    assert len(people.table) == 36 and people.window_fields == 1
    assert json.dumps(people.files) == '["vggsounder"]'


def cached_audit(tmp_path):
    """The audited videos as VGGSound's own test list names them (`{ytid}_{start:06d}.mp4,label`), with
    their logits already in the cache of a checkpoint whose fields alone exist: no decoding, no weights."""
    from avaudit.config import load_config
    from avaudit.inference.cache import LogitCache, clip_keys, model_fingerprint
    from avaudit.inference.logits import logits_fingerprint, quality_arrays
    from avaudit.media.manifests import read_manifest
    from avaudit.model.checkpoint import FORMAT

    data, cache = tmp_path / "data", tmp_path / "cache"
    data.mkdir()
    for video_id, _, _ in AUDITED:
        (data / f"{video_id}.mp4").write_bytes(b"")
    manifest = data / "test.csv"
    manifest.write_text("".join(f'{video_id}.mp4,"{label}"\r\n' for video_id, label, _ in AUDITED))
    model = tmp_path / "m.pt"
    model.write_bytes(b"fields only: an audit served from the cache loads no weights")
    fingerprint = logits_fingerprint(model)
    (cache / model_fingerprint(model)).mkdir(parents=True)
    (cache / model_fingerprint(model) / "checkpoint.json").write_text(json.dumps(
        {"format": FORMAT, "config": load_config("small").to_dict(), "classes": CLASSES}))
    table = read_manifest(manifest).table
    keys = clip_keys(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy())
    # As an audit caches them: with each clip's quality arrays (clean signals, signatures unlike each other's).
    quality = {name: np.random.default_rng(0).integers(1, 256, (len(keys), *shape)).astype(dtype)
               for name, (shape, dtype) in quality_arrays().items()}
    quality["signals"][:] = 0
    quality["signatures"][:, 0] = 0
    LogitCache(cache, fingerprint, n_classes=len(CLASSES), source=str(model)).add(
        keys, audited_logits()[1], np.full(len(keys), 10.0, np.float32), **quality)
    return manifest, ["--model", str(model), "--cache-dir", str(cache)]


def test_bias_and_missing_labels_with_truth_through_the_cache(tmp_path):
    manifest, options = cached_audit(tmp_path)
    truth = truth_file(tmp_path)
    out = tmp_path / "out"
    # Three or four videos a category: under the default --min-support every category's call is unclear
    # (counted apart); 0 keeps the calls the numbers below were worked out for.
    result = cli("bias", str(manifest), *options, "--truth", str(truth), "--out", str(out),
                                      "--min-support", "0")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "11 of 11 videos read from the cache, 0 decoded" in text
    assert ("against people's labels: videos 7 of 10 agree (70.0%), kappa 0.53 "
            "against people's labels: categories 2 of 3 agree (66.7%), kappa 0.40") in text
    assert f"2 truth rows (1 video) match no audited video ({out / 'bias_truth_unmatched.csv'})" in text
    scores = pd.read_csv(out / "bias_truth_scores.csv", keep_default_na=False)
    assert scores.iloc[0].tolist() == ["videos", "all", "", 10, 7, 0.7, 0.53125, 0]
    assert pd.read_csv(out / "bias_truth_unmatched.csv")["filename"].tolist() == ["6iZZQvXNBnI_000009"] * 2
    summary = json.loads((out / "bias_summary.json").read_text())["truth"]
    assert (summary["people"], summary["n_truth_unmatched"], summary["mapping"]["V"]) == (str(truth), 2, "visual")

    # Besides a video's own label, eq. 7 keeps only labels at confidence 1/6 (a layer whose logits are all 0),
    # below the default 0.5: no candidate, so recall 0 of people's 8 missing labels.
    result = cli("missing-labels", str(manifest), *options, "--truth", str(truth),
                                      "--out", str(tmp_path / "missing"))
    assert result.exit_code == 0, result.output
    assert ("against people's labels on 10 videos: 0 of 0 candidates right (precision n/a), 0 of 8 missing labels "
            "found (recall 0.00), average precision 0.00") in " ".join(result.output.split())
    written = json.loads((tmp_path / "missing" / "missing_labels_truth.json").read_text())
    assert (written["n_missing"], written["people"]) == (8, str(truth))


def test_avvp_event_files_by_truth_twice_as_by_truth_audio_and_visual(tmp_path):
    manifest, options = cached_audit(tmp_path)
    audio, visual = tmp_path / "audio.csv", tmp_path / "visual.csv"
    events = "filename\tonset\toffset\tevent_labels\n"
    # video 2 heard and seen (audit: audio, no); video 3 heard only (audio, yes); video 9 seen only (visual, yes)
    audio.write_text(events + "1FU5odlgLmo_000030\t0\t10\tdog barking\n1veIcvGPRYw_000003\t0\t4\tdog barking\n")
    visual.write_text(events + "1FU5odlgLmo_000030\t2\t6\tdog barking\nDZ2idjIBgKk_000030\t0\t10\tlions roaring\n")
    outputs = []
    for how in (["--truth", str(audio), "--truth", str(visual)], ["--truth-audio", str(audio), "--truth-visual", str(visual)]):
        out = tmp_path / f"out{len(outputs)}"
        result = cli("bias", str(manifest), *options, *how, "--out", str(out))
        assert result.exit_code == 0, result.output
        assert "against the annotated events: videos 2 of 3 agree (66.7%), kappa 0.50" in " ".join(result.output.split())
        outputs.append({name: (out / name).read_text() for name in ("bias_truth.csv", "bias_truth_scores.csv",
                                                                    "bias_truth_matrix.csv", "bias_truth_unmatched.csv")})
    assert outputs[0] == outputs[1]
    # rows avaudit audio (A 1, AV 1), visual (V 1): p_o = 2/3, p_e = (2*1 + 1*1) / 9 = 1/3, kappa = 0.5
    scores = pd.read_csv(tmp_path / "out0" / "bias_truth_scores.csv", keep_default_na=False)
    assert scores["flag"].unique().tolist() == ["all"]  # AVVP has no flags
    both = cli("bias", str(manifest), *options, "--truth", str(audio), "--truth-audio", str(audio),
                                    "--truth-visual", str(visual), "--out", str(tmp_path / "out2"))
    assert both.exit_code == 2 and "--truth takes one VGGSounder CSV" in " ".join(both.output.split())


def test_human_truth_bench_prints_paper_against_people(tmp_path, monkeypatch, capsys):
    import sys
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import human_truth

    monkeypatch.setattr(sys, "argv", ["human_truth.py", "--vggsounder", str(truth_file(tmp_path))])
    human_truth.main()
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| VGGSound | paper, Table 3 (model's layers; 62 + 39 + 68 audio-visual) | 169 | 41 | 99 | 309 |  |"
    # TRUTH's 19 labels by their rows' majority: audio-visual 9 (dog barking 2 AV, 1 V, 1 A; "male speech" 1 AV,
    # 1 V, a tie; ...), audio 10 (playing violin 2 A, 1 AV; playing banjo; orchestra; ...), visual none.
    assert lines[3].endswith("majority over 36 label rows of vggsounder+background-music.csv | 9 | 0 | 10 | 19 | 1 |")
    # AVVP's released evaluation files: 25 classes, 23 mostly heard and seen, 2 heard only.
    assert lines[5] == "| LLP | people: AVVP, majority over 3,394 annotated (video, label) pairs | 23 | 0 | 2 | 25 | 0 |"
