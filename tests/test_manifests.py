import math
from pathlib import Path

import pandas as pd
import pytest

from avaudit.media.formats import EXPECTED
from avaudit.media.manifests import COLUMNS, ManifestError, read_manifest, write_subset
from avaudit.vocab import SKIPPED_COLUMNS


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def write(path: Path, lines: list[str], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes("".join(line + newline for line in lines).encode())
    return path


def check_invariants(m, n_rows: int) -> None:
    assert list(m.table.columns[: len(COLUMNS)]) == list(COLUMNS)
    assert list(m.skipped.columns) == list(SKIPPED_COLUMNS)
    assert len(m.table) + len(m.skipped) == n_rows
    assert m.table["row"].is_unique
    for p in m.table["path"]:
        assert Path(p).is_absolute() and Path(p).is_file()


KINETICS = [
    "label,youtube_id,time_start,time_end,split,is_cc",
    "abseiling,-3B32lodo2M,59,69,val,0",
    '"air drumming",_dbcJuKJQNs,40,50,val,0',
    "NA,0123456789a,5,15,val,1",
]


def test_kinetics_flat_layout_keeps_quoting_and_string_ids(tmp_path):
    src = write(tmp_path / "val.csv", KINETICS)
    touch(tmp_path, "-3B32lodo2M_000059_000069.mp4", "_dbcJuKJQNs_000040_000050.mp4", "0123456789a_000005_000015.mp4")
    m = read_manifest(src)
    check_invariants(m, 3)
    assert m.format == "kinetics" and m.header == KINETICS[0] and m.root == tmp_path
    assert m.table["video_id"].tolist() == ["-3B32lodo2M_000059_000069", "_dbcJuKJQNs_000040_000050", "0123456789a_000005_000015"]
    assert m.table["labels"].tolist() == ["abseiling", "air drumming", "NA"]
    assert m.table["split"].tolist() == ["val"] * 3
    assert m.records(m.table["row"]) == KINETICS[1:]
    assert m.table["start"].isna().all() and m.table["end"].isna().all()
    assert m.table["path"].iloc[0] == str(tmp_path / "-3B32lodo2M_000059_000069.mp4")


def test_kinetics_torchvision_layout_without_is_cc(tmp_path):
    header = "label,youtube_id,time_start,time_end,split"
    src = write(tmp_path / "k400" / "val.csv", [header, '"air drumming",_dbcJuKJQNs,40,50,val', '"tap dancing",abcdefghijk,0,10,val'])
    media = tmp_path / "media"
    touch(media, "val/air drumming/_dbcJuKJQNs_000040_000050.mp4", "val/tap_dancing/abcdefghijk_000000_000010.mp4")
    m = read_manifest(src, root=media)
    check_invariants(m, 2)
    assert m.table["path"].tolist() == [
        str(media / "val" / "air drumming" / "_dbcJuKJQNs_000040_000050.mp4"),
        str(media / "val" / "tap_dancing" / "abcdefghijk_000000_000010.mp4"),
    ]
    assert m.table["labels"].tolist() == ["air drumming", "tap dancing"]


def test_kinetics_labelless_test_file(tmp_path):
    src = write(tmp_path / "test.csv", ["youtube_id,time_start,time_end,split", "aaa11111111,0,10,test", "bbb22222222,3,13,test"])
    touch(tmp_path, "test/aaa11111111_000000_000010.mp4")
    m = read_manifest(src)
    check_invariants(m, 2)
    assert m.format == "kinetics"
    assert m.table["labels"].tolist() == [""]
    assert m.table["video_id"].tolist() == ["aaa11111111_000000_000010"]
    miss = m.skipped.iloc[0]
    assert miss["reason"] == "missing file" and miss["video_id"] == "bbb22222222_000003_000013"
    assert miss["path"] == str(tmp_path / "test" / "bbb22222222_000003_000013.mp4")  # then the flat one
    assert miss["detail"] == "line 3: not found at its path or 1 other place (also .mkv .webm .avi .mov .m4v)"


def test_vggsound_headerless_with_quoted_comma_label(tmp_path):
    lines = ["---g-f_I2yQ,1,people marching,test", '-aBcDeFgHiJ,30,"playing violin, fiddle",train']
    src = write(tmp_path / "vggsound.csv", lines)
    touch(tmp_path, "---g-f_I2yQ_000001.mp4", "-aBcDeFgHiJ_000030.mp4")
    m = read_manifest(src)
    check_invariants(m, 2)
    assert m.format == "vggsound" and m.header is None
    assert m.table["video_id"].tolist() == ["---g-f_I2yQ_000001", "-aBcDeFgHiJ_000030"]
    assert m.table["labels"].tolist() == ["people marching", "playing violin, fiddle"]
    assert m.table["split"].tolist() == ["test", "train"]
    assert m.records(m.table["row"]) == lines


@pytest.mark.parametrize("header", [True, False])
def test_ave_with_and_without_header(tmp_path, header):
    lines = ["Church bell&RUhOCu3LNXM&good&0&10", "Male speech, man speaking&0giAfYq9oVM&good&3&9", "Dog&zzzzzzzzzzz&good&0&0"]
    src = write(tmp_path / "Annotations.txt", (["Category&VideoID&Quality&StartTime&EndTime"] if header else []) + lines)
    touch(tmp_path, "AVE/RUhOCu3LNXM.mp4", "AVE/0giAfYq9oVM.mp4", "AVE/zzzzzzzzzzz.mp4")
    m = read_manifest(src)
    check_invariants(m, 3)
    assert m.format == "ave"
    assert m.header == ("Category&VideoID&Quality&StartTime&EndTime" if header else None)
    assert m.table["video_id"].tolist() == ["RUhOCu3LNXM", "0giAfYq9oVM", "zzzzzzzzzzz"]
    assert m.table["labels"].tolist() == ["Church bell", "Male speech, man speaking", "Dog"]
    assert m.table["event_start"].tolist() == [0.0, 3.0, 0.0]
    assert m.table["event_end"].tolist() == [10.0, 9.0, 0.0]
    assert m.table["start"].isna().all()


def test_llp_short_id_and_comma_labels(tmp_path):
    src = write(tmp_path / "AVVP_train.csv", ["filename\tevent_labels", "BjCEufrlXm4_20_30\tSpeech,Dog", "P7x4FV4lg_570_580\tSpeech"])
    touch(tmp_path, "BjCEufrlXm4_20_30.mp4", "P7x4FV4lg_570_580.mp4")
    m = read_manifest(src)
    check_invariants(m, 2)
    assert m.format == "llp"
    assert m.table["video_id"].tolist() == ["BjCEufrlXm4_20_30", "P7x4FV4lg_570_580"]
    assert m.table["labels"].tolist() == ["Speech;Dog", "Speech"]
    assert m.table["youtube_id"].tolist() == ["BjCEufrlXm4", "P7x4FV4lg"]


def test_generic_multilabel_relative_and_absolute(tmp_path):
    touch(tmp_path, "clips/a.mp4", "elsewhere/b.mkv")
    src = write(tmp_path / "list.csv", ["path,label", "clips/a.mp4,dog;bark", f"{tmp_path / 'elsewhere/b.mkv'},cat"])
    m = read_manifest(src)
    check_invariants(m, 2)
    assert m.format == "generic"
    assert m.table["video_id"].tolist() == ["clips/a", (tmp_path / "elsewhere" / "b").as_posix()]
    assert m.table["labels"].tolist() == ["dog;bark", "cat"]
    assert m.table["path"].tolist() == [str(tmp_path / "clips/a.mp4"), str(tmp_path / "elsewhere/b.mkv")]


def test_generic_optional_start_end_split(tmp_path):
    touch(tmp_path, "long/a.mp4", "long/b.mp4")
    src = write(tmp_path / "list.csv", ["path,label,start,end,split", "long/a.mp4,dog,2.5,12.5,train", "long/b.mp4,,,,", "long/c.mp4,x,oops,1,"])
    m = read_manifest(src)
    check_invariants(m, 3)
    assert m.table["start"].tolist()[0] == 2.5 and m.table["end"].tolist()[0] == 12.5
    assert math.isnan(m.table["start"].iloc[1]) and m.table["labels"].iloc[1] == ""
    assert m.table["split"].tolist() == ["train", ""]
    assert m.skipped["reason"].tolist() == ["malformed row"] and m.skipped["detail"].iloc[0].startswith("line 4:")


def test_folder_with_loose_files_and_flat(tmp_path):
    data = tmp_path / "data"
    touch(data, "dog/1.mp4", "dog/2.webm", "cat/3.mkv", "cat/notes.txt", "cat/._3.mkv", "loose.mp4")
    m = read_manifest(data)
    check_invariants(m, 5)
    assert m.skipped.values.tolist() == [["cat/._3", str(data / "cat/._3.mkv"), "unreadable container",
                                          f"{data / 'cat/._3.mkv'}: a macOS resource fork (AppleDouble ._ file), not a video"]]
    assert m.format == "folder" and m.header is None and m.root == data
    assert m.table["video_id"].tolist() == ["loose", "cat/3", "dog/1", "dog/2"]
    assert m.table["labels"].tolist() == ["", "cat", "dog", "dog"]
    assert "raw" not in m.table

    flat = tmp_path / "flat"
    touch(flat, "x.mp4", "y.avi", "readme.md")
    f = read_manifest(flat)
    check_invariants(f, 2)
    assert f.format == "flat" and f.table["video_id"].tolist() == ["x", "y"] and (f.table["labels"] == "").all()


def test_folder_same_stem_twice_is_duplicate(tmp_path):
    touch(tmp_path, "dog/1.mp4", "dog/1.mkv")
    m = read_manifest(tmp_path)
    check_invariants(m, 2)
    assert m.table["path"].tolist() == [str(tmp_path / "dog/1.mkv")]
    assert m.skipped["reason"].tolist() == ["duplicate id"]


def test_missing_duplicate_and_malformed_rows_are_reported(tmp_path):
    lines = [
        "label,youtube_id,time_start,time_end,split,is_cc",
        "abseiling,-3B32lodo2M,59,69,val,0",
        "abseiling,-3B32lodo2M,59,69,val,0",
        "abseiling,xyz,fifty,69,val,0",
        "abseiling,xyz,1,11,val",
        "",
        "bowling,missing0000,1,11,val,0",
    ]
    src = write(tmp_path / "k.csv", lines)
    touch(tmp_path, "-3B32lodo2M_000059_000069.mp4")
    m = read_manifest(src)
    check_invariants(m, 5)
    assert m.table["row"].tolist() == [0]
    s = m.skipped.set_index("reason")
    assert s.loc["duplicate id", "video_id"] == "-3B32lodo2M_000059_000069"
    assert "line 3" in s.loc["duplicate id", "detail"] and "line 2" in s.loc["duplicate id", "detail"]
    malformed = m.skipped[m.skipped["reason"] == "malformed row"]["detail"].tolist()
    assert len(malformed) == 2
    assert malformed[0].startswith("line 4:") and "time_start" in malformed[0]
    assert malformed[1].startswith("line 5:") and "expected 6 fields, found 5" in malformed[1]
    assert s.loc["missing file", "path"] == str(tmp_path / "val" / "bowling" / "missing0000_000001_000011.mp4")
    assert m.notes == [f"1 of 2 files found under {tmp_path}; e.g. {tmp_path / 'val/bowling/missing0000_000001_000011.mp4'}"]


@pytest.mark.parametrize(
    "content, message",
    [("foo;bar;baz\n1;2;3\n", "not a manifest avaudit knows (its first line matches none of the layouts)"),
     ("", "empty manifest"), ("a\tb\n", "not a manifest avaudit knows (its first line matches none of the layouts)"),
     ("root:$6$secret-hash:19000:0:99999:7:::\n", "not a manifest avaudit knows (its first line matches none of the layouts)"),
     ("\xff\xfe secret", "not UTF-8 text (invalid start byte at byte 0)")],
)
def test_unusable_files_raise_with_file_name_and_never_their_content(tmp_path, content, message):
    src = tmp_path / "weird.txt"
    src.write_bytes(content.encode("latin-1"))
    with pytest.raises(ManifestError) as err:
        read_manifest(src)
    assert str(err.value) == f"{src}: {message}; {EXPECTED}"


def test_missing_data_and_empty_folder_raise(tmp_path):
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(tmp_path / "nope.csv")
    touch(tmp_path, "empty/sub/readme.txt")
    with pytest.raises(ManifestError, match="no media files"):
        read_manifest(tmp_path / "empty")


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_write_subset_kinetics_is_byte_identical(tmp_path, newline):
    src = write(tmp_path / "val.csv", KINETICS + ["bowling,missing0000,1,11,val,0"], newline)
    touch(tmp_path, "-3B32lodo2M_000059_000069.mp4", "_dbcJuKJQNs_000040_000050.mp4", "0123456789a_000005_000015.mp4")
    m = read_manifest(src)
    assert m.newline == newline
    out = tmp_path / "out" / "subset.csv"
    keep = m.table[m.table["labels"] != "abseiling"]
    write_subset(m, keep.iloc[::-1], out)
    lines = src.read_bytes().split(newline.encode())
    assert out.read_bytes() == newline.encode().join([lines[0], lines[2], lines[3]]) + newline.encode()
    write_subset(m, [0], out)
    assert out.read_bytes() == lines[0] + newline.encode() + lines[1] + newline.encode()
    back = read_manifest(out, root=tmp_path)
    assert back.records(back.table["row"]) == [KINETICS[1]]
    assert [p.name for p in out.parent.iterdir()] == ["subset.csv"]


def test_write_subset_headerless_vggsound_and_refusals(tmp_path):
    lines = ["---g-f_I2yQ,1,people marching,test", '-aBcDeFgHiJ,30,"playing violin, fiddle",train']
    src = write(tmp_path / "vggsound.csv", lines)
    touch(tmp_path, "---g-f_I2yQ_000001.mp4", "-aBcDeFgHiJ_000030.mp4")
    m = read_manifest(src)
    write_subset(m, [1], tmp_path / "sub.csv")
    assert (tmp_path / "sub.csv").read_text() == lines[1] + "\n"
    with pytest.raises(ValueError, match="cannot be overridden"):
        write_subset(m, [1], tmp_path / "sub.csv", labels={1: "x"})
    with pytest.raises(ValueError, match="not in the manifest"):
        write_subset(m, [7], tmp_path / "sub.csv")
    with pytest.raises(ValueError, match="overwrite"):
        write_subset(m, [0], src)


def test_write_subset_folder_and_generic_with_label_override(tmp_path):
    data = tmp_path / "data"
    touch(data, "dog/1.mp4", "cat/2.mp4")
    m = read_manifest(data)
    out = tmp_path / "keep.csv"
    write_subset(m, m.table, out, labels={0: "cat;pet"})
    assert out.read_text() == f"path,label\n{(data / 'cat/2.mp4').as_posix()},cat;pet\n{(data / 'dog/1.mp4').as_posix()},dog\n"
    g = read_manifest(out)
    assert g.format == "generic" and g.table["labels"].tolist() == ["cat;pet", "dog"]

    src = write(tmp_path / "list.csv", ["path,label,note", 'data/dog/1.mp4,dog,"a, b"', "data/cat/2.mp4,cat,x"])
    g = read_manifest(src)
    write_subset(g, g.table, out, labels={1: "lion, big cat"})
    assert out.read_text() == 'path,label,note\ndata/dog/1.mp4,dog,"a, b"\ndata/cat/2.mp4,"lion, big cat",x\n'


def test_table_dtypes_are_columns(tmp_path):
    touch(tmp_path, "a/x.mp4")
    t = read_manifest(tmp_path).table
    assert t["row"].dtype == "int64" and t["start"].dtype == "float64"
    assert pd.api.types.is_string_dtype(t["video_id"]) and math.isnan(t["end"].iloc[0])


def test_quoted_line_break_in_a_manifest_round_trips_and_an_unclosed_quote_is_one_bad_line(tmp_path):
    text = 'path,label,note\r\nclips/a.mp4,dog,"two\r\nlines"\r\nclips/b.mp4,cat,"open\r\nclips/c.mp4,cow,x\r\n'
    src = tmp_path / "list.csv"
    src.write_bytes(text.encode())
    touch(tmp_path, "clips/a.mp4", "clips/c.mp4")
    m = read_manifest(src)
    check_invariants(m, 3)
    assert [*zip(m.table["video_id"], m.records(m.table["row"]))] == [("clips/a", 'clips/a.mp4,dog,"two\r\nlines"'),
                                                                       ("clips/c", "clips/c.mp4,cow,x")]
    assert m.skipped.values.tolist() == [["", "", "malformed row", 'line 4: a quoted field opens and is never closed '
                                                                  '(a " inside a quoted field is written "")']]
    write_subset(m, m.table, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == b'path,label,note\r\nclips/a.mp4,dog,"two\r\nlines"\r\nclips/c.mp4,cow,x\r\n'


def test_folder_clip_with_a_line_break_in_its_name_round_trips(tmp_path):
    data = tmp_path / "data"
    touch(data, "dog/a\nb.mp4", "dog/plain.mp4")
    m = read_manifest(data)
    check_invariants(m, 2)
    write_subset(m, m.table, tmp_path / "subset.csv")
    back = read_manifest(tmp_path / "subset.csv", root=data)
    check_invariants(back, 2)
    assert back.table["path"].tolist() == [str(data / "dog/a\nb.mp4"), str(data / "dog/plain.mp4")]
    assert back.table["labels"].tolist() == ["dog", "dog"]


def test_hidden_clips_are_audited_and_loose_clips_kept_unlabelled(tmp_path):
    touch(tmp_path, "dog/.hidden.mp4", "dog/1.mp4", "loose.mp4", ".git/x.mp4")
    m = read_manifest(tmp_path)
    check_invariants(m, 3)
    assert m.table[["video_id", "labels"]].values.tolist() == [["loose", ""], ["dog/.hidden", "dog"], ["dog/1", "dog"]]
    assert m.labels_named == {"dog"}


def refuse_listing(monkeypatch, folder_name: str) -> None:
    """os.scandir raises PermissionError on folders named `folder_name`, as an unreadable folder does."""
    import os

    real = os.scandir

    def scandir(path):
        if str(path).endswith(folder_name):
            raise PermissionError(13, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_category_folder_that_cannot_be_listed_is_a_skipped_row(tmp_path, monkeypatch):
    touch(tmp_path, "dog/1.mp4", "cat/2.mp4")
    refuse_listing(monkeypatch, "cat")
    m = read_manifest(tmp_path)
    check_invariants(m, 2)
    assert m.format == "folder" and m.table["video_id"].tolist() == ["dog/1"]
    assert m.skipped.values.tolist() == [["cat/", str(tmp_path / "cat"), "unreadable file",
                                          f"{tmp_path / 'cat'}: cannot list the category folder (Permission denied); "
                                          f"its clips are not counted"]]


def test_a_media_folder_that_cannot_be_listed_makes_its_rows_unreadable_not_missing(tmp_path, monkeypatch):
    src = write(tmp_path / "list.csv", ["path,label", "locked/a.mp4,dog", "open/b.mp4,cat", "open/c.mp4,cat"])
    touch(tmp_path, "locked/a.mp4", "open/b.mp4")
    refuse_listing(monkeypatch, "locked")
    m = read_manifest(src)
    check_invariants(m, 3)
    assert m.skipped[["video_id", "reason", "detail"]].values.tolist() == [
        ["locked/a", "unreadable file", f"line 2: cannot list {tmp_path / 'locked'} (Permission denied)"],
        ["open/c", "missing file", "line 4: not found at its path"]]


def test_non_utf8_names_are_skipped_rows_that_can_be_written(tmp_path):
    import os

    from avaudit.outputs import csv_text

    data = tmp_path / "data"
    touch(data, "dog/ok.mp4")
    bad = os.path.join(os.fsencode(data / "dog"), b"caf\xe9.mp4")
    open(bad, "wb").close()
    m = read_manifest(data)
    check_invariants(m, 2)
    assert m.skipped.values.tolist() == [["dog/caf\\xe9", f"{data / 'dog'}/caf\\xe9.mp4", "non-UTF-8 name",
                                          f"{data / 'dog'}/caf\\xe9.mp4: the file name is not UTF-8; rename it to audit it"]]
    csv_text(m.skipped).encode("utf-8")


@pytest.mark.parametrize("allow", [False, True])
def test_rows_outside_the_media_root_are_not_opened_unless_allowed(tmp_path, allow):
    outside = tmp_path / "elsewhere" / "x.mp4"
    touch(tmp_path, "elsewhere/x.mp4", "root/in.mp4", "root/sub/y.mp4")
    root = tmp_path / "root"
    src = write(tmp_path / "lists" / "list.csv",
                ["path,label", "in.mp4,a", "../elsewhere/x.mp4,b", f"{outside},c", "sub/../sub/y.mp4,d",
                 "../../../../../../etc/passwd,e"])
    m = read_manifest(src, root=root, allow_outside_root=allow)
    if allow:
        assert m.table["path"].tolist() == [str(root / "in.mp4"), str(outside), str(outside), str(root / "sub/y.mp4"),
                                            "/etc/passwd"]
        assert len(m.skipped) == 0
        return
    assert m.table["path"].tolist() == [str(root / "in.mp4"), str(root / "sub/y.mp4")]
    why = "is outside the media root {}; pass a --root that holds it, or --allow-outside-root".format(root)
    assert m.skipped.values.tolist() == [
        ["../elsewhere/x", str(outside), "outside root", f"line 3: {outside} {why}"],
        [outside.with_suffix("").as_posix(), str(outside), "outside root", f"line 4: {outside} {why}"],
        ["../../../../../../etc/passwd", "/etc/passwd", "outside root", f"line 6: /etc/passwd {why}"]]


def test_a_dataset_id_cannot_climb_out_of_the_root(tmp_path):
    src = write(tmp_path / "k.csv", ["label,youtube_id,time_start,time_end,split", "dog,../../../../tmp/x,1,11,val"])
    m = read_manifest(src)
    assert m.skipped["reason"].tolist() == ["outside root"]


def test_data_that_is_one_video_points_to_localize(tmp_path):
    for name in ("clip.mp4", "clip.bin"):
        path = tmp_path / name
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(20))
        with pytest.raises(ManifestError) as err:
            read_manifest(path)
        assert str(err.value) == (f"{path}: DATA is one video, and this command audits a dataset (a folder of clips "
                                  f"or a manifest); for one video, run `avaudit localize {path}`")


def test_a_nul_in_a_manifest_path_is_a_missing_file_not_a_crash(tmp_path):
    src = write(tmp_path / "list.csv", ["path,label", "a\x00b.mp4,dog"])
    assert read_manifest(src).skipped["reason"].tolist() == ["missing file"]
