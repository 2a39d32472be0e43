"""Every dataset release read as its authors publish it (tests/data/manifests/, byte for byte)."""
import shutil
from pathlib import Path

import pandas as pd
import pytest

from avaudit.media.manifests import COLUMNS, ManifestError, read_manifest, write_subset
from avaudit.vocab import SKIPPED_COLUMNS

DATA = Path(__file__).parent / "data" / "manifests"


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def copy(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return Path(shutil.copyfile(DATA / name, folder / name))


def accounted(m, n_videos: int) -> None:
    """Every listed video is a row of the table or of skipped, once."""
    assert list(m.table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert list(m.skipped.columns) == list(SKIPPED_COLUMNS)
    assert len(m.table) + len(m.skipped) == n_videos
    once = m.skipped[m.skipped["reason"] != "duplicate id"]
    assert m.table["row"].is_unique and not set(m.table["video_id"]) & set(once["video_id"])


def test_kinetics_400_head_in_torchvision_layout_with_the_found_files_line(tmp_path):
    src = copy("kinetics-400_val_head300.csv", tmp_path)
    touch(tmp_path, "val/abseiling/0wR5jVB-WPk_000417_000427.mp4", "val/air drumming/--nQbRBEz2s_000104_000114.mp4")
    m = read_manifest(src)
    accounted(m, 300)
    assert m.format == "kinetics" and m.header == "label,youtube_id,time_start,time_end,split,is_cc"
    assert m.table["video_id"].tolist() == ["0wR5jVB-WPk_000417_000427", "--nQbRBEz2s_000104_000114"]
    assert m.table["labels"].tolist() == ["abseiling", "air drumming"]
    assert set(m.skipped["reason"]) == {"missing file"}
    first = m.skipped.iloc[0]
    assert first["path"] == str(tmp_path / "val/abseiling/3caPS4FHFF8_000036_000046.mp4")
    assert m.notes == [f"2 of 300 files found under {tmp_path}; e.g. {first['path']}"]
    assert m.labels_named == {"abseiling", "air drumming", "answering questions", "applauding", "applying cream",
                              "archery", "arm wrestling"}


def test_kinetics_700_validate_split_lives_in_val(tmp_path):
    src = copy("kinetics-700_validate_head300.csv", tmp_path / "lists")
    touch(tmp_path / "k700", "val/testifying/---QUuC4vJs_000084_000094.mp4", "validate/washing feet/--GkrdYZ9Tc_000000_000010.mp4")
    m = read_manifest(src, root=tmp_path / "k700")
    accounted(m, 300)
    assert m.table["path"].tolist() == [str(tmp_path / "k700/val/testifying/---QUuC4vJs_000084_000094.mp4"),
                                        str(tmp_path / "k700/validate/washing feet/--GkrdYZ9Tc_000000_000010.mp4")]
    assert m.table["split"].tolist() == ["validate", "validate"]


def test_vggsound_release_csv_quoted_labels(tmp_path):
    src = copy("vggsound_real_head.csv", tmp_path)
    touch(tmp_path, "---g-f_I2yQ_000001.mp4")
    m = read_manifest(src)
    accounted(m, 80)
    assert m.format == "vggsound" and m.header is None and m.table["labels"].tolist() == ["people marching"]
    import csv

    rows = list(csv.reader((DATA / "vggsound_real_head.csv").read_text().splitlines()))
    assert m.labels_named == {row[2] for row in rows} and sum("," in label for label in m.labels_named) >= 5


def test_vggsound_authors_list_crlf_round_trip(tmp_path):
    src = copy("vggsound_AStest_head300.csv", tmp_path)
    touch(tmp_path, "glLQrEijrKg_000300.mp4", "GteozUDpJRc_000030.mkv")
    m = read_manifest(src)
    accounted(m, 300)
    assert m.format == "vggsound-list" and m.newline == "\r\n" and m.header is None
    assert m.table["video_id"].tolist() == ["glLQrEijrKg_000300", "GteozUDpJRc_000030"]
    assert m.table["labels"].tolist() == ["playing hammond organ", "engine accelerating, revving, vroom"]
    assert m.table["path"].tolist() == [str(tmp_path / "glLQrEijrKg_000300.mp4"), str(tmp_path / "GteozUDpJRc_000030.mkv")]
    write_subset(m, m.table, tmp_path / "out.csv")
    lines = (DATA / "vggsound_AStest_head300.csv").read_bytes().split(b"\r\n")
    kept = [line for line in lines if line.startswith((b"glLQrEijrKg_000300.mp4,", b"GteozUDpJRc_000030.mp4,"))]
    assert (tmp_path / "out.csv").read_bytes() == b"".join(line + b"\r\n" for line in kept)


def ave_lines() -> list[str]:
    return (DATA / "AVE_Annotations.txt").read_text().splitlines()


def test_ave_multilabel_videos_are_one_row_and_round_trip_every_line(tmp_path):
    src = copy("AVE_Annotations.txt", tmp_path)
    lines = ave_lines()
    ids = [line.split("&")[1] for line in lines]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert len(lines) == 4143 and len(repeated) == 45 and len(set(ids)) == 4097
    touch(tmp_path, *(f"AVE/{i}.mp4" for i in [*repeated, "RUhOCu3LNXM"]))
    m = read_manifest(src)
    accounted(m, 4097)
    assert m.format == "ave" and m.header is None
    assert len(m.table) == 46 and set(m.skipped["reason"]) == {"missing file"}
    row = m.table.set_index("video_id").loc["0f_iTO5t3hU"]
    assert row["labels"] == ";".join(line.split("&")[0] for line in lines if "&0f_iTO5t3hU&" in line)
    assert row["labels"].count(";") == 2
    assert m.table.set_index("video_id").loc["RUhOCu3LNXM", "labels"] == "Church bell"
    assert m.notes == [f"46 of 4,097 files found under {tmp_path}; e.g. {tmp_path / 'AVE/MH3m4AwEcRY.mp4'}"]
    keep = m.table[m.table["video_id"].isin(["0f_iTO5t3hU", "RUhOCu3LNXM"])]
    write_subset(m, keep, tmp_path / "subset.txt")
    expected = [line for line in lines if line.split("&")[1] in ("0f_iTO5t3hU", "RUhOCu3LNXM")]
    assert (tmp_path / "subset.txt").read_text() == "".join(line + "\n" for line in expected)
    again = read_manifest(tmp_path / "subset.txt", root=tmp_path)
    assert again.table[["video_id", "labels"]].values.tolist() == keep[["video_id", "labels"]].values.tolist()


def test_a_repeated_id_with_the_same_label_is_still_a_duplicate(tmp_path):
    lines = ["Church bell&RUhOCu3LNXM&good&0&10", "Bus&RUhOCu3LNXM&good&0&10", "Church bell&RUhOCu3LNXM&good&2&4"]
    (tmp_path / "a.txt").write_text("".join(line + "\n" for line in lines))
    touch(tmp_path, "AVE/RUhOCu3LNXM.mp4")
    m = read_manifest(tmp_path / "a.txt")
    accounted(m, 2)
    assert m.table["labels"].tolist() == ["Church bell;Bus"]
    assert m.skipped.values.tolist() == [["RUhOCu3LNXM", str(tmp_path / "AVE/RUhOCu3LNXM.mp4"), "duplicate id",
                                          "line 3: RUhOCu3LNXM already listed on line 1"]]


def test_llp_download_script_layout_short_ids_and_fractional_windows(tmp_path):
    src = copy("AVVP_val_pd.csv", tmp_path / "data")
    media = tmp_path / "data" / "LLP_dataset" / "video"
    touch(media, "4O9rI-FpqLg.mp4")
    touch(tmp_path / "data", "video/8sfcMZ8A3OQ.mp4")
    m = read_manifest(src)
    accounted(m, 649)
    assert m.format == "llp"
    assert m.table[["video_id", "labels", "youtube_id"]].values.tolist() == [
        ["4O9rI-FpqLg_10_20", "Cheering;Speech;Clapping", "4O9rI-FpqLg"],
        ["8sfcMZ8A3OQ_180_190", "Frying_(food);Speech", "8sfcMZ8A3OQ"]]
    assert m.table["path"].tolist() == [str(media / "4O9rI-FpqLg.mp4"), str(tmp_path / "data/video/8sfcMZ8A3OQ.mp4")]
    assert m.table["start"].isna().all()  # the script saves the 10 s window trimmed

    train = tmp_path / "train" / "AVVP_train.csv"
    train.parent.mkdir()
    train.write_text("filename\tevent_labels\nAP0061o0Nvk_101.8_111.8\tSpeech\nP7x4FV4lg_570_580\tDog,Cat\nbad_name\tDog\n")
    touch(train.parent, "video/AP0061o0Nvk.mp4", "video/P7x4FV4lg_5.mp4")
    t = read_manifest(train)
    accounted(t, 3)
    assert t.table[["video_id", "path", "labels"]].values.tolist() == [
        ["AP0061o0Nvk_101.8_111.8", str(train.parent / "video/AP0061o0Nvk.mp4"), "Speech"],
        ["P7x4FV4lg_570_580", str(train.parent / "video/P7x4FV4lg_5.mp4"), "Dog;Cat"]]  # the script's name[:11]
    assert t.skipped.values.tolist() == [["", "", "malformed row",
                                          "line 4: filename 'bad_name' is not <youtube_id>_<start>_<end>"]]


@pytest.mark.parametrize("name, n_videos, n_lines", [("AVVP_eval_audio.csv", 1848, 4131),
                                                     ("AVVP_eval_visual.csv", None, 2495)])
def test_avvp_event_files_are_per_video_label_sets(tmp_path, name, n_videos, n_lines):
    src = copy(name, tmp_path)
    events = pd.read_csv(DATA / name, sep="\t", dtype=str)
    assert len(events) == n_lines
    n_videos = n_videos or events["filename"].nunique()
    touch(tmp_path, "video/KSRjje7GH44.mp4", "video/4YdbENYcIyE.mp4")
    m = read_manifest(src)
    accounted(m, n_videos)
    assert m.format == "llp-events" and m.header == "filename\tonset\toffset\tevent_labels"
    assert not (m.skipped["reason"] == "duplicate id").any()
    for vid, labels in zip(m.table["video_id"], m.table["labels"]):
        assert labels.split(";") == list(dict.fromkeys(events.loc[events["filename"] == vid, "event_labels"]))
    write_subset(m, m.table, tmp_path / "out.csv")
    kept = [line for line in (DATA / name).read_text().splitlines()[1:]
            if line.split("\t")[0] in set(m.table["video_id"])]
    assert (tmp_path / "out.csv").read_text() == "".join(line + "\n" for line in [m.header, *kept])


def test_avvp_events_of_one_video_apart_in_the_file_come_back_in_file_order(tmp_path):
    lines = (DATA / "AVVP_eval_audio.csv").read_text().splitlines()
    vids = [line.split("\t")[0] for line in lines[1:]]
    apart = next(v for i, v in enumerate(vids) if v in vids[:i] and vids[i - 1] != v)
    src = copy("AVVP_eval_audio.csv", tmp_path)
    touch(tmp_path, f"video/{apart[:11]}.mp4")
    m = read_manifest(src)
    write_subset(m, m.table, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_text() == "".join(
        line + "\n" for line in [lines[0], *(line for line in lines[1:] if line.split("\t")[0] == apart)])
    assert len((tmp_path / "out.csv").read_text().splitlines()) > 2


def test_audioset_segments_named_by_the_class_index_beside_it(tmp_path):
    src = copy("audioset_eval_segments_head40.csv", tmp_path)
    copy("class_labels_indices.csv", tmp_path)
    touch(tmp_path, "--4gqARaEJE_0.000_10.000.mp4", "--BfvyPmVMo_20_30.mkv", "audioset_eval_segments_head40/Y--U7joUcTCo.mp4")
    m = read_manifest(src)
    accounted(m, 40)
    assert m.format == "audioset" and m.notes[1:] == []
    assert m.header == "\n".join((DATA / "audioset_eval_segments_head40.csv").read_text().splitlines()[:3])
    assert m.table[["video_id", "labels"]].values.tolist() == [
        ["--4gqARaEJE_0_10", "Domestic animals, pets;Squeak;Dog;Animal"],
        ["--BfvyPmVMo_20_30", "Hammer"],
        ["--U7joUcTCo_0_10", "Cough"]]
    assert m.table["path"].tolist()[2] == str(tmp_path / "audioset_eval_segments_head40/Y--U7joUcTCo.mp4")
    write_subset(m, m.table.iloc[[1]], tmp_path / "out.csv")
    lines = (DATA / "audioset_eval_segments_head40.csv").read_text().splitlines()
    assert (tmp_path / "out.csv").read_text() == "".join(line + "\n" for line in [*lines[:3], lines[4]])


def test_audioset_without_a_class_index_keeps_ids_and_says_so_and_classes_option(tmp_path):
    src = copy("audioset_eval_segments_head40.csv", tmp_path / "lists")
    touch(tmp_path / "lists", "--BfvyPmVMo_20_30.mp4")
    m = read_manifest(src)
    assert m.table["labels"].tolist() == ["/m/03l9g"]
    assert m.notes[1:] == [f"labels are AudioSet label ids (/m/...): no class_labels_indices.csv beside {src} or in "
                           f"{tmp_path / 'lists'}; pass --classes FILE to name them"]
    named = read_manifest(src, classes=DATA / "class_labels_indices.csv")
    assert named.table["labels"].tolist() == ["Hammer"] and named.notes[1:] == []
    with pytest.raises(ManifestError) as err:
        read_manifest(src, classes=DATA / "AVVP_val_pd.csv")
    assert str(err.value) == (f"{DATA / 'AVVP_val_pd.csv'}: not a class index: line 1 is not its header (a CSV "
                              f"with the header index,mid,display_name, as AudioSet's class_labels_indices.csv)")
    with pytest.raises(ManifestError) as err:
        read_manifest(DATA / "AVVP_val_pd.csv", classes=DATA / "class_labels_indices.csv")
    assert str(err.value) == (f"{DATA / 'AVVP_val_pd.csv'}: --classes names the labels of an AudioSet segments "
                              f"CSV; DATA is a llp manifest")


def test_audioset_copy_whose_header_lost_its_hash(tmp_path):
    lines = (DATA / "audioset_eval_segments_head40.csv").read_text().splitlines()
    src = tmp_path / "eval_segments.csv"
    src.write_text("".join(line + "\n" for line in [*lines[:2], lines[2].lstrip("# "), *lines[3:]]))
    touch(tmp_path, "--BfvyPmVMo_20000_30000.mp4")
    m = read_manifest(src, classes=DATA / "class_labels_indices.csv")
    accounted(m, 40)
    assert m.format == "audioset" and m.table["labels"].tolist() == ["Hammer"]
