"""Small defects an adversarial pass found: each one's bad input gets one line naming the file, the
line and the reason, and each case is what a user would see from the command line."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from cli_helpers import cli, invoke

from avaudit.media.manifests import read_manifest

KINETICS = "label,youtube_id,time_start,time_end,split\n"


def test_bias_on_rows_that_are_all_malformed_says_so_not_that_data_has_no_labels(tmp_path):
    data = tmp_path / "k.csv"
    data.write_text(KINETICS + "dog,aaaaaaaaaaa,10,5,val\ncat,bbbbbbbbbbb,x,5,val\n")
    result = invoke("bias", data, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "has no labels" not in result.output
    assert f"{data}: no label could be read (2 malformed rows of 2 rows), e.g. line 2: " in result.output
    assert "Traceback" not in result.output


def test_rows_malformed_or_with_bad_labels_beside_unlabelled_ones_are_each_counted(tmp_path):
    data = tmp_path / "k.csv"
    data.write_text(KINETICS + "dog,aaaaaaaaaaa,10,5,val\n\"a;b\",bbbbbbbbbbb,1,5,val\n,ccccccccccc,1,5,val\n")
    result = invoke("bias", data, "--out", tmp_path / "out")
    assert result.exit_code == 2, result.output
    assert "(1 malformed row and 1 bad label of 3 rows, 1 row without a label), e.g. line 2" in result.output


def test_predict_on_rows_that_are_all_malformed_notes_so_not_that_data_has_no_labels(tmp_path):
    data = tmp_path / "k.csv"
    data.write_text(KINETICS + "dog,aaaaaaaaaaa,10,5,val\ncat,bbbbbbbbbbb,x,5,val\n")
    result = invoke("predict", data, "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output  # it runs: every row is a skipped row
    assert "has no labels" not in result.output
    assert f"note: {data}: no label could be read (2 malformed rows of 2 rows), e.g. line 2: " in result.output


def test_train_on_rows_that_are_all_malformed_says_so(tmp_path):
    data = tmp_path / "k.csv"
    data.write_text(KINETICS + "dog,aaaaaaaaaaa,10,5,val\ncat,bbbbbbbbbbb,1,x,val\n")
    result = cli("train", data, "--out", tmp_path / "model.pt", "--device", "cpu")
    assert result.exit_code == 2, result.output
    assert f"{data}: no label could be read (2 malformed rows of 2 rows)" in result.output


EVENTS = "filename\tonset\toffset\tevent_labels\n"


def test_an_avvp_event_whose_offset_comes_before_its_onset_is_named_in_a_note_and_its_label_kept(tmp_path):
    data = tmp_path / "AVVP_eval_audio.csv"
    data.write_text(EVENTS + "aaaaaaaaaaa_0_10\t2\t8\tDog\naaaaaaaaaaa_0_10\t9\t0\tCheering\nbbbbbbbbbbb_0_10\t9\t0\tCat\n")
    (tmp_path / "video").mkdir()
    (tmp_path / "video" / "aaaaaaaaaaa.mp4").write_bytes(b"")  # found, not decoded: read_manifest never opens it
    m = read_manifest(data)
    assert m.table["labels"].tolist() == ["Dog;Cheering"]  # the release's own reversed row carries a true label
    assert f"{data}: line 3: offset 0 is before onset 9 (1 more event like it); kept, as the event between the " \
           "two times (AVVP_eval_audio.csv has one such row)" in m.notes


def test_the_avvp_release_s_one_reversed_event_is_the_only_one_named():
    data = Path(__file__).parent / "data" / "manifests" / "AVVP_eval_audio.csv"
    notes = [note for note in read_manifest(data).notes if "before onset" in note]
    assert notes == [f"{data}: line 3770: offset 0 is before onset 9; kept, as the event between the two times "
                     "(AVVP_eval_audio.csv has one such row)"]


@pytest.mark.parametrize("name, text", [
    ("v.csv", "y,2,cat,test\nx,1,do\x00g,test\n"),  # VGGSound, headerless
    ("g.csv", "path,label\nx_000001.mp4,do\x00g\ny_000002.mp4,cat\n"),  # generic
    ("a.tsv", "filename\tevent_labels\nx_1_10\tDog,do\x00g\ny_2_12\tcat\n"),  # LLP, one of two labels
])
def test_a_nul_byte_in_a_label_is_a_bad_label_as_a_line_break_is(tmp_path, name, text):
    for clip in ("x_000001.mp4", "y_000002.mp4", "x_1_10.mp4", "y_2_12.mp4"):
        (tmp_path / clip).write_bytes(b"")
    (tmp_path / name).write_text(text)
    m = read_manifest(tmp_path / name)
    assert m.table["labels"].tolist() == ["cat"]
    assert m.skipped[["reason", "detail"]].values.tolist() == [
        ["bad label", "line 2: the label 'do\\x00g' holds a NUL byte"]]


SEGMENTS = '# YTID, start_seconds, end_seconds, positive_labels\naaaaaaaaaaa, 0.000, 10.000, "/m/1"\n'
INDEX = "a CSV with the header index,mid,display_name, as AudioSet's class_labels_indices.csv"


@pytest.mark.parametrize("text, why", [
    ("index,mid,display_name\n0,/m/1,Dog\n1,/m/2\n", "line 3 has 2 fields, not 3"),
    ("index,mid,display_name\r\n0,/m/1,Dog\r\n\r\n2,/m/2,Cat,x\r\n", "line 4 has 4 fields, not 3"),
    ('index,mid,display_name\n0,/m/1,"Dog\n1,/m/2,Cat\n', "line 2 is not CSV (a quote never closed, or text after "
                                                          "a closing one)"),
    ("index,mid,name\n0,/m/1,Dog\n", "line 1 is not its header"),
    ("", "the file is empty"),
])
def test_a_class_index_that_is_not_one_is_refused_naming_the_line(tmp_path, text, why):
    (tmp_path / "segments.csv").write_text(SEGMENTS)
    (tmp_path / "index.csv").write_text(text)
    result = invoke("predict", tmp_path / "segments.csv", "--classes", tmp_path / "index.csv", "--out", tmp_path / "o")
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'index.csv'}: not a class index: {why} ({INDEX})" in result.output
    assert "Traceback" not in result.output


def test_a_folder_named_like_a_clip_is_looked_in_not_counted_as_a_media_file(tmp_path):
    for name in ("cat/1.mp4", "cat/x.mp4/frame_0001.jpg", "cat/y.mkv/z.mp4"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    m = read_manifest(tmp_path)
    assert m.table["video_id"].tolist() == ["cat/1"]
    assert m.notes == [f"1 media file in folders below the category folders not read, e.g. "
                       f"{tmp_path / 'cat/y.mkv/z.mp4'}: avaudit reads DATA/<label>/<clip>; for a split layout "
                       f"(DATA/<split>/<label>/<clip>), give DATA/<split>"]


def test_retarget_data_says_when_it_replaces_the_same_data_s_bias_run_made_with_another_model(planted, tiny_model,
                                                                                            tmp_path):
    folder = tmp_path / "X" / "bias"
    folder.mkdir(parents=True)
    (folder / "bias_run.yaml").write_text(yaml.safe_dump({"command": "bias", "data": str(planted), "root": str(planted),
                                                          "model": str(tmp_path / "old.pt")}))
    args = ("retarget", planted, "--keep", "audio", "--out", tmp_path / "X" / "subset.csv", "--model", tiny_model)
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert (f"note: {folder} held the bias run of DATA made with the model {tmp_path / 'old.pt'}: replaced by this "
            f"one, made with {tiny_model}") in first.output.splitlines()
    assert yaml.safe_load((folder / "bias_run.yaml").read_text())["model"] == str(tiny_model)
    again = invoke(*args)  # the same model again: a rerun, nothing to say
    assert again.exit_code == 0 and "held the bias run" not in again.output
