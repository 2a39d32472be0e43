"""`missing-labels --groups`: the categories' groups from people or another run, and what they change."""
import numpy as np
import pandas as pd
import pytest
from cli_helpers import cli
from test_people import cached_audit
from test_people import truth_file as vggsounder_file
from test_reciprocal import CLASSES, frame, two_classes

from avaudit.audits.layertrust import LayerEvidence
from avaudit.audits.missing_labels import missing_label_candidates, modality_support, split_confusions
from avaudit.groupfiles import class_groups, read_groups
from avaudit.truthfiles import TruthError
from avaudit.vocab import LAYERS

VGGSOUNDER = ("video_id,label,modality,background_music,static_image,voice_over\n"
              "a_000001,dog barking,A,False,False,False\n"
              "b_000002,dog barking,AV,False,False,False\n"
              "c_000003,dog barking,A,True,False,False\n"
              "a_000001,violin fiddle,AV,False,False,False\n"
              "d_000004,violin fiddle,V,False,False,False\n"
              "e_000005,lions roaring,V,False,True,False\n")


def test_a_bias_categories_file_gives_each_category_its_group(tmp_path):
    path = tmp_path / "bias_categories.csv"
    path.write_text("category,layer,group,n_videos\nbark,visual,visual,6\ndrum,audio,audio,6\n"
                    "piano,unclear,unclear,3\n\n")
    assert read_groups(path) == {"bark": "visual", "drum": "audio", "piano": "unclear"}


def test_vggsounder_gives_each_label_its_majority_modality_and_a_tie_is_unclear(tmp_path):
    groups = read_groups(vggsounder_file(tmp_path, VGGSOUNDER))
    assert groups == {"dog barking": "audio", "violin fiddle": "unclear", "lions roaring": "visual"}


def test_names_match_the_classes_as_peoples_labels_do_and_the_others_are_named():
    named = {"Dog_Barking": "audio", "violin  fiddle": "visual", "harp": "audio"}
    assert class_groups(named, ["dog barking", "violin fiddle", "lions roaring"]) == (
        {"dog barking": "audio", "violin fiddle": "visual"}, ["harp"])


@pytest.mark.parametrize(("text", "message"), [
    ("category,group\nbark,sideways\n", "line 2 has a group other than audiovisual, audio, visual, redundant, unclear"),
    ("category,group\nbark,visual\ndrum,audio\nbark,audio\n", "line 4 gives 'bark' another group than line 2"),
    ("name,modality\nbark,visual\n", "line 1 has no category and group columns"),
    ("category,group\n,visual\n", "line 2 has an empty category"),
    ("group,category\nvisual\n", "line 2 has 1 fields"),
    ("category,group\n", "no categories"),
    ('category,group\n"bark,visual\n', "is not CSV"),
])
def test_a_malformed_groups_file_is_one_line_naming_the_file(tmp_path, text, message):
    path = tmp_path / "groups.csv"
    path.write_text(text)
    with pytest.raises(TruthError) as err:
        read_groups(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_or_binary_groups_file_is_refused(tmp_path):
    with pytest.raises(TruthError, match="nope.csv: no such groups file$"):
        read_groups(tmp_path / "nope.csv")
    (tmp_path / "bin.csv").write_bytes(b"category,group\n\xff\xfe,visual\n")
    with pytest.raises(TruthError, match="bin.csv: not UTF-8 text$"):
        read_groups(tmp_path / "bin.csv")


def test_a_layer_that_perceives_nothing_vouches_for_nothing_its_modality_must_carry():
    confidences = np.zeros((1, 5, 4))
    confidences[0, LAYERS.index("audio")] = 0.5
    confidences[0, LAYERS.index("visual")] = 0.3
    groups = np.array(["audio", "visual", "audiovisual", "redundant"], dtype=object)
    video, cls = np.zeros(4, int), np.arange(4)
    layer_conf = confidences[video, :, cls]  # (4, 5): each candidate's layers' confidences in it
    assert modality_support(layer_conf, cls, groups, np.array([True, True])).tolist() == [0.5, 0.3, 0.3, 0.5]
    assert modality_support(layer_conf, cls, groups, np.array([True, False])).tolist() == [0.5, 0, 0, 0.5]
    assert modality_support(layer_conf, cls, groups, np.array([False, True])).tolist() == [0, 0.3, 0, 0.3]


def test_an_unclear_class_needs_what_the_runs_perceiving_layers_perceive_of_it_where_it_is_annotated():
    """The 6-epoch `wide` model (seed 47): a fused layer that sees an orange disc in a red square proposed
    `cont_tone1970_orange_disc` (its group unclear) on a clip of another tone. The audio layer, which perceives
    its modality in the run, hears that category wherever it is annotated, and not there: not confirmed. Where the
    layer cannot tell the class from the clip's own label (its partner), what it hears is the label's, unless the
    label is a visual one: the candidate then rests on its sight. And some layer perceiving its modality in the run
    must perceive the candidate there: the 5-epoch `slim` model (seed 51) named `visual_cyan_diamond`, whose
    every clip sounds `audio_tone1450`, on the tone's clips whatever their shape. A layer that hears a class only
    up to its partner (a tone two grid categories share) cannot tell which one is there: with a blind visual layer,
    nothing can."""
    confidences = np.zeros((1, 5, 4))
    confidences[0, LAYERS.index("audio")] = [0.0, 0.0, 0.9, 0.1]  # hears class 2 (the clip's label) and 3 a little
    confidences[0, LAYERS.index("visual")] = [0.0, 0.5, 0.5, 0.0]
    unclear = np.array(["unclear"] * 4, dtype=object)
    labels = np.array([[False, False, True, False]] * 2)  # the clip is annotated class 2
    video, cls = np.zeros(2, int), np.array([0, 1])

    def support(*args):
        return modality_support(confidences[video, :, cls], cls, *args)

    alone = np.ones((4, 2), bool)  # each layer singles each class out where it is annotated
    heard = LayerEvidence(np.ones(5, bool), np.array([[True, False]] * 4), np.full((4, 2), -1), alone)
    assert support(unclear).tolist() == [np.inf, np.inf]  # nothing asked
    assert support(unclear, np.array([True, True]), heard, labels).tolist() == [0, 0]
    deaf = np.array([False, True])  # an audio layer that perceives nothing in the run asks nothing: the sight vouches
    assert support(unclear, deaf, heard, labels).tolist() == [0.0, 0.5]
    partner = LayerEvidence(np.ones(5, bool), np.array([[True, False]] * 4), np.array([[2, -1]] * 4), alone)
    both = np.array([True, True])
    assert support(unclear, both, partner, labels).tolist() == [0.0, 0.5]  # seen
    audio_label = np.array(["unclear", "unclear", "audio", "unclear"], dtype=object)
    assert support(audio_label, both, partner, labels).tolist() == [0.0, 0.5]
    visual_label = np.array(["unclear", "unclear", "visual", "unclear"], dtype=object)  # owns no sound
    assert support(visual_label, both, partner, labels).tolist() == [0.0, 0.0]
    nobody = LayerEvidence(np.ones(5, bool), np.zeros((4, 2), bool), np.array([[2, -1]] * 4), alone)  # nowhere
    assert support(unclear, both, nobody, labels).tolist() == [0.0, 0.5]
    blind = np.array([True, False])  # ... and the sight unverifiable: the tone is the label's, nothing vouches
    assert support(unclear, blind, nobody, labels).tolist() == [0.0, 0.0]
    confidences[0, LAYERS.index("audio")] = [0.0, 0.3, 0.6, 0.1]  # the 5-epoch `narrow` model (seed 53): heard
    shared = LayerEvidence(np.ones(5, bool), np.array([[True, False]] * 4), np.full((4, 2), -1), ~alone)
    assert support(unclear, both, heard, labels).tolist() == [0.0, 0.3]
    assert support(unclear, both, shared, labels).tolist() == [0.0, 0.3]  # sight tells
    assert support(unclear, blind, shared, labels).tolist() == [0.0, 0.0]
    # The 8-epoch `stout` and `broad` models (seeds 57, 59): where no layer perceives the class wherever it is
    # annotated, a layer's confidence vouches for it only where the other modality's layer perceives its modality
    # in the run, or where it names it surely: their weak audio layers gave a grid sibling that shares the label's
    # tone 0.13-0.24 on the label's clips, and their blind visual layers could not tell the sibling's sight
    assert support(visual_label, blind, nobody, labels).tolist() == [0.0, 0.0]  # heard 0.3, nothing tells
    assert support(visual_label, both, nobody, labels).tolist() == [0.0, 0.5]  # the sight tells (seen 0.5)
    confidences[0, LAYERS.index("audio")] = [0.0, 0.6, 0.3, 0.1]  # surely: a tone learned with two visual classes
    assert support(visual_label, blind, nobody, labels).tolist() == [0.0, 0.6]
    # The 7-epoch `keen` model (seed 69), trained where every `visual_cyan_diamond` clip sounded `audio_tone1450`:
    # its audio layer hears that tone as "the tone or the diamond" (it does not single the tone out), and its visual
    # layer is blind; on a diamond clip, a visual label that owns no sound, the tone is the tone
    torn = LayerEvidence(np.ones(5, bool), np.array([[True, False]] * 4), np.array([[2, -1]] * 4), ~alone)
    assert support(visual_label, blind, torn, labels).tolist() == [0.0, 0.6]
    assert support(unclear, blind, torn, labels).tolist() == [0.0, 0.0]  # a label that may own the sound: its own
    assert support(audio_label, blind, torn, labels).tolist() == [0.0, 0.0]  # ... or that does


def eight_classes(visual: np.ndarray) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """6 clips of each of 8 classes: the fused layers sure of each clip's label, the audio layer hearing it,
    and c1's sound heard on every c0 clip as well; the visual layer's logits as given (48, 8)."""
    classes = [f"c{i}" for i in range(8)]
    label = np.repeat(np.arange(8), 6)
    logits = np.zeros((48, 5, 8))
    logits[np.arange(48)[:, None], np.arange(3), label[:, None]] = 6.0
    logits[np.arange(48), LAYERS.index("audio"), label] = 4.0
    logits[:6, LAYERS.index("audio"), 1] = 4.2
    logits[:, LAYERS.index("visual")] = visual
    ids = [f"v{i}" for i in range(48)]
    videos = pd.DataFrame({"video_id": ids, "path": [f"/d/{v}.mp4" for v in ids], "labels": np.asarray(classes)[label]})
    return videos, logits, classes


def test_an_audiovisual_candidate_is_not_confirmed_by_a_visual_layer_that_perceives_nothing():
    """c1, audio-visual, on every c0 clip: heard by the audio layer, and 'seen' by a visual layer that names
    a class at random, very sure (it perceives nothing in this run): not confirmed. A visual layer that sees
    each clip's label, and c1 on c0's clips, confirms it."""
    groups = {"c0": "visual", "c1": "audiovisual"}
    blind = np.random.default_rng(0).normal(0, 3, (48, 8))
    blind[:6, 1] = blind[:6].max(axis=1) + 1.0  # its top class on c0's clips is c1, as on others a random one
    videos, logits, classes = eight_classes(blind)
    out = missing_label_candidates(videos, logits, classes, groups=groups)
    drum = out[(out["label"] == "c0") & (out["candidate"] == "c1")]
    assert len(drum) == 6 and (drum["precision"] == 0).all()
    seeing = np.zeros((48, 8))
    seeing[np.arange(48), np.repeat(np.arange(8), 6)] = 4.0
    seeing[:6, 1] = 3.0
    out = missing_label_candidates(videos, eight_classes(seeing)[1], classes, groups=groups)
    drum = out[(out["label"] == "c0") & (out["candidate"] == "c1")]
    assert len(drum) == 6 and (drum["precision"] > 0.5).all()


def test_people_groups_keep_a_whole_class_label_that_the_runs_own_unclear_groups_hide():
    """drum's sound on every bark clip, and a model whose own groups are unclear: no candidate (its outputs
    cannot tell a sound left off the class from a confusion); people's groups say bark is seen and drum heard."""
    logits = two_classes(False)
    for groups, kept_expected in (({"bark": "unclear", "drum": "unclear"}, 0), ({"bark": "visual", "drum": "audio"}, 6)):
        kept, _ = split_confusions(missing_label_candidates(frame(6, 6), logits, CLASSES, groups=groups),
                                   max_confusion=None, min_precision=0.7)
        assert len(kept) == kept_expected and set(kept["candidate"]) <= {"drum"}


def test_the_command_takes_groups_from_a_file_records_them_and_names_what_matches_no_class(tmp_path):
    manifest, options = cached_audit(tmp_path)
    groups = tmp_path / "people_groups.csv"
    groups.write_text("category,group\nDog_barking,audio\nharp,visual\n")
    result = cli("missing-labels", str(manifest), *options, "--groups", str(groups), "--out", str(tmp_path / "m"))
    assert result.exit_code == 0, result.output
    assert f"--groups {groups}: 1 name(s) match no class of the model, e.g. 'harp'" in " ".join(result.output.split())
    record = (tmp_path / "m" / "missing_labels_run.yaml").read_text()
    assert "classes_named: 1" in record and "- harp" in record
    groups.write_text("category,group\nDog_barking,loud\n")
    result = cli("missing-labels", str(manifest), *options, "--groups", str(groups), "--out", str(tmp_path / "n"))
    assert result.exit_code == 2 and "line 2 has a group other than" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "n").exists()


def test_a_run_without_groups_says_when_class_wide_candidates_could_not_be_judged():
    from avaudit.groupfiles import unjudged_class_wide

    confusions = pd.DataFrame({"label": ["bark", "piano", "siren"], "candidate": ["drum", "drum", "bark"],
                               "layer": ["audio"] * 3, "n_videos": [6, 6, 6],
                               "median_confusion": [0.7, 0.2, 0.9], "max_confidence": [0.8] * 3})
    note = unjudged_class_wide(confusions, {"drum": "unclear", "bark": "visual"})
    assert len(note) == 1 and note[0].startswith("1 (label, candidate) pair(s) named on most videos")
    assert "'drum' on 'bark'" in note[0] and "--groups FILE" in note[0]
    assert unjudged_class_wide(confusions, {"drum": "audio", "bark": "visual"}) == []
    assert unjudged_class_wide(confusions.iloc[:0], {}) == []


def test_groups_vggsounder_without_the_package_names_the_option(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "vggsounder" else real(name, *a))
    with pytest.raises(TruthError, match=r"^--groups vggsounder needs the vggsounder package"):
        read_groups("vggsounder")
