"""Every line of a manifest and every media file of a folder comes out somewhere (issue 21: 3, 5, 6,
7, 18-22): a row, a skipped row with its reason and line numbers, a refusal, or a note."""
import os
from pathlib import Path

import pytest

from avaudit.media.manifests import ManifestError, read_manifest
from avaudit.training.split import training_classes


def touch(root: Path, *names: str) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"")


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode())
    return path


def detail_lines(m) -> list[int]:
    """The first line number each skipped detail names ('line 3: ...' or 'lines 3-5: ...')."""
    return [int(d.split(":")[0].split()[1].split("-")[0]) for d in m.skipped["detail"]]


def test_a_stray_quote_in_a_kinetics_label_swallows_no_row(tmp_path):
    lines = ["label,youtube_id,time_start,time_end,split,is_cc"]
    for i in range(1000):
        label = '12" vinyl' if i == 1 else 'dog"s bark' if i == 500 else "abseiling"
        lines.append(f"{label},vid{i:08d},{i},{i + 10},val,0")
        touch(tmp_path, f"vid{i:08d}_{i:06d}_{i + 10:06d}.mp4")
    m = read_manifest(write(tmp_path / "k.csv", "\n".join(lines) + "\n"))
    assert len(m.table) == 1000 and len(m.skipped) == 0
    assert m.table["labels"].iloc[1] == '12" vinyl' and m.records([m.table["row"].iloc[1]]) == [lines[2]]
    assert m.spans[1] == (3, 3) and m.spans[999] == (1001, 1001)


def test_a_quote_that_opens_a_field_and_closes_lines_later_is_one_bad_line_not_a_swallowed_block(tmp_path):
    touch(tmp_path, "a.mp4", "b.mp4", "c.mp4", "d.mp4")
    text = 'path,label\na.mp4,dog\nb.mp4,"12 vinyl\nc.mp4,cat\nd.mp4,cow"\n'
    m = read_manifest(write(tmp_path / "g.csv", text))
    assert m.table["video_id"].tolist() == ["a", "c", "d"]
    assert m.table["labels"].tolist() == ["dog", "cat", 'cow"']  # a quote inside a field is a character of it
    assert m.skipped[["reason", "detail"]].values.tolist() == [
        ["malformed row", 'line 3: a quoted field opens and is never closed (a " inside a quoted field is written "")']]
    m = read_manifest(write(tmp_path / "g.csv", 'path,label\na.mp4,"two\nlines"\n'))  # a label never spans lines
    assert m.skipped[["reason", "detail"]].values.tolist() == [
        ["malformed row", 'line 2: a quoted field opens and is never closed (a " inside a quoted field is written "")'],
        ["malformed row", "line 3: expected 2 fields, found 1"]]


def test_a_quoted_path_over_lines_is_one_record_named_by_its_lines(tmp_path):
    touch(tmp_path, "a.mp4")
    m = read_manifest(write(tmp_path / "g.csv", 'path,label\n"x\ny.mp4",dog\na.mp4,cat\n'))
    assert m.table["video_id"].tolist() == ["a"] and m.spans == [(2, 3), (4, 4)]
    assert m.skipped["detail"].tolist() == ["lines 2-3: not found at its path"]


def test_two_files_that_share_an_id_are_not_one_video(tmp_path):
    touch(tmp_path, "g/a.mp4", "g/a.mkv")
    m = read_manifest(write(tmp_path / "g.csv", "path,label\ng/a.mp4,dog\ng/a.mkv,cat\ng/a.mp4,bark\n"))
    assert m.table[["video_id", "path", "labels"]].values.tolist() == [["g/a", str(tmp_path / "g/a.mp4"), "dog;bark"]]
    assert m.skipped[["video_id", "reason", "detail"]].values.tolist() == [
        ["g/a", "duplicate id", "line 3: a.mkv has the id g/a of a.mp4 on line 2 (an id is the path without its "
                                "extension); rename one to audit both"]]


def test_a_skipped_video_names_every_line_that_lists_it(tmp_path):
    m = read_manifest(write(tmp_path / "g.csv", "path,label\ny.mp4,dog\nz.mp4,cat\ny.mp4,bark\ny.mp4,pet\n"))
    assert m.skipped["detail"].tolist() == ["line 2 (also line 4, line 5): not found at its path",
                                            "line 3: not found at its path"]


def test_a_missing_file_names_its_first_place_and_counts_the_others_in_a_short_detail(tmp_path):
    """Ten million missing rows hold ten million details: each names one place, not every layout's path."""
    (tmp_path / "media").mkdir()
    m = read_manifest(write(tmp_path / "k.csv", "label,youtube_id,time_start,time_end,split\n"
                            "playing bass guitar,abc,1,11,train\n"), root=tmp_path / "media")
    assert m.skipped[["path", "reason", "detail"]].values.tolist() == [
        [str(tmp_path / "media/train/playing bass guitar/abc_000001_000011.mp4"), "missing file",
         "line 2: not found at its path or 5 other places (also .mkv .webm .avi .mov .m4v)"]]
    m = read_manifest(write(tmp_path / "g.csv", "path,label\n../elsewhere/a.mp4,dog\n"), root=tmp_path,
                      allow_outside_root=True)
    assert m.skipped["detail"].tolist() == ["line 2: not found at its path"]


@pytest.mark.parametrize("label", ["rock;paper", "carriage\rreturn"])
def test_a_label_that_cannot_be_one_label_is_a_bad_label_in_a_manifest_and_as_a_folder(tmp_path, label):
    quoted = '"' + label + '"'
    touch(tmp_path, "x_000001.mp4", "y_000002.mp4")
    m = read_manifest(write(tmp_path / "v.csv", f"y,2,dog,test\nx,1,{quoted},test\n"))
    assert m.table["labels"].tolist() == ["dog"]
    shown = "';', which separates avaudit's labels" if ";" in label else "a line break"
    assert m.skipped[["reason", "detail"]].values.tolist() == [
        ["bad label", f"line 2: the label {label!r} holds {shown}"]]

    data = tmp_path / "data"
    touch(data, f"{label}/1.mp4", "dog/2.mp4")
    f = read_manifest(data)
    assert f.table["labels"].tolist() == ["dog"] and f.labels_named == {"dog"}
    assert training_classes(f.table["labels"]) == ["dog"]
    clip = data / label / "1.mp4"
    assert f.skipped.values.tolist() == [[f"{label}/1", str(clip), "bad label",
                                          f"{clip}: the label {label!r} holds {shown}; rename the folder to audit "
                                          f"its clips"]]


def test_media_below_the_category_folders_are_counted_in_a_note(tmp_path):
    touch(tmp_path, "train/dog/1.mp4", "train/dog/2.mp4", "val/loose.mp4", "cat/sub/3.mkv", "cat/x.mp4/frame.jpg",
          "cat/4.mp4", "cat/.cache/5.mp4")
    m = read_manifest(tmp_path)
    assert m.table[["video_id", "labels"]].values.tolist() == [["cat/4", "cat"], ["val/loose", "val"]]
    assert m.notes == [f"3 media files in folders below the category folders not read, e.g. {tmp_path / 'cat/sub/3.mkv'}: "
                       f"avaudit reads DATA/<label>/<clip>; for a split layout (DATA/<split>/<label>/<clip>), give "
                       f"DATA/<split>"]
    assert read_manifest(tmp_path / "train").table["video_id"].tolist() == ["dog/1", "dog/2"]


@pytest.mark.parametrize("text", ["path,label\n", "path,label\n\n\n", "label,youtube_id,time_start,time_end,split\r\n",
                                  "# Segments csv created\n# YTID, start_seconds, end_seconds, positive_labels\n"])
def test_a_manifest_with_only_a_header_is_refused(tmp_path, text):
    src = write(tmp_path / "m.csv", text)
    with pytest.raises(ManifestError) as err:
        read_manifest(src)
    assert str(err.value) == f"{src}: the manifest lists no videos, only a header"


def test_a_malformed_generic_window_is_a_malformed_row(tmp_path):
    touch(tmp_path, "a.mp4", "b.mp4", "c.mp4", "d.mp4", "e.mp4")
    src = write(tmp_path / "g.csv", "path,label,start,end\na.mp4,dog,20,5\nb.mp4,dog,-5,\nc.mp4,dog,,-1\n"
                                    "d.mp4,dog,3,3\ne.mp4,dog,2.5,12.5\n")
    m = read_manifest(src)
    assert m.table["video_id"].tolist() == ["e"]
    assert m.skipped[["reason", "detail"]].values.tolist() == [
        ["malformed row", "line 2: end 5 is not after start 20"],
        ["malformed row", "line 3: start -5 is before the file starts"],
        ["malformed row", "line 4: end -1 is not after start 0"],
        ["malformed row", "line 5: end 3 is not after start 3"]]
    ave = write(tmp_path / "Annotations.txt", "Dog&ccccccccccc&good&0&3\nDog&aaaaaaaaaaa&good&-5&3\n"
                                              "Dog&bbbbbbbbbbb&good&5&3\n")
    assert read_manifest(ave).skipped["detail"].tolist()[1:] == ["line 2: StartTime -5 is negative",
                                                                 "line 3: EndTime 3 is before StartTime 5"]


def test_a_first_line_with_a_quote_and_a_bare_carriage_return_is_not_a_manifest_not_a_crash(tmp_path):
    src = write(tmp_path / "m.csv", 'a"b\rc,d\n')
    with pytest.raises(ManifestError, match="not a manifest avaudit knows"):
        read_manifest(src)


@pytest.mark.parametrize("header, twice", [("path,path,label", "path"), ("path,label,note,note", "note")])
def test_a_header_that_names_a_column_twice_is_refused(tmp_path, header, twice):
    src = write(tmp_path / "g.csv", f"{header}\na.mp4,b.mp4,dog,x\n")
    with pytest.raises(ManifestError) as err:
        read_manifest(src)
    assert str(err.value) == f"{src}: the header names the column {twice!r} twice; name each column once"


def test_a_path_is_kept_as_written_where_that_file_exists(tmp_path):
    touch(tmp_path, "\ttab.mp4", "spaced.mp4", "both .mp4")
    src = write(tmp_path / "g.csv", 'path,label\n"\ttab.mp4",dog\n spaced.mp4 ,cat\n"both .mp4",cow\n')
    m = read_manifest(src)
    assert m.table["path"].tolist() == [str(tmp_path / "\ttab.mp4"), str(tmp_path / "spaced.mp4"),
                                        str(tmp_path / "both .mp4")]
    assert len(m.skipped) == 0
    outside = write(tmp_path / "lists" / "g.csv", f"path,label\n {tmp_path / 'spaced.mp4'},dog\n")
    assert read_manifest(outside).skipped["reason"].tolist() == ["outside root"]


def test_a_huge_label_or_path_is_shortened_where_a_detail_echoes_it(tmp_path):
    huge = "x" * 10**6
    src = write(tmp_path / "k.csv", f"label,youtube_id,time_start,time_end,split\n{huge},a,1,11,val\n"
                                    f"dog,b,{huge},11,val\ndog;{huge},c,1,11,val\n")
    m = read_manifest(src)
    assert len(m.skipped) == 3 and all(len(d) < 3000 for d in m.skipped["detail"])
    assert "(1,000,000 characters)" in m.skipped["detail"].iloc[1]
    assert detail_lines(m) == [2, 3, 4]


def test_a_reversed_kinetics_window_is_a_malformed_row(tmp_path):
    """A Kinetics row with time_end before time_start was audited (adversarial pass); a window is the same rule
    in every format."""
    src = write(tmp_path / "k.csv", "label,youtube_id,time_start,time_end,split\ndog,aaa,20,5,val\ndog,bbb,0,10,val\n")
    touch(tmp_path, "dog/bbb_000000_000010.mp4")
    m = read_manifest(src)
    assert m.table["video_id"].tolist() == ["bbb_000000_000010"]
    assert m.skipped[["reason", "detail"]].values.tolist() == [["malformed row", "line 2: end 5 is not after start 20"]]


def test_a_huge_missing_path_is_shortened_in_the_found_files_note(tmp_path):
    """The note naming an example of the files not found repeated a 10^6-character path whole (adversarial pass)."""
    src = write(tmp_path / "long.csv", f"path,label\ng/{'y' * 10**6}.mp4,dog\n")
    m = read_manifest(src)
    assert len(m.skipped) == 1 and all(len(note) < 1500 for note in m.notes)
    assert any("(1,000," in note and "characters)" in note for note in m.notes)


def test_labels_the_model_does_not_know_are_shortened_when_named():
    import pandas as pd

    from avaudit.errors import UsageError
    from avaudit.labels import check_labels

    with pytest.raises(UsageError) as err:
        check_labels(pd.DataFrame({"labels": ["y" * 10**6]}), ["dog"])
    assert len(str(err.value)) < 500 and "(1,000,000 characters)" in str(err.value)


def test_a_line_break_in_a_clip_name_is_no_bad_label_only_in_a_folder_name(tmp_path):
    touch(tmp_path, "dog/a\nb.mp4")
    assert read_manifest(tmp_path).table["path"].tolist() == [os.path.join(tmp_path, "dog", "a\nb.mp4")]


def test_a_listed_file_whose_found_path_is_not_utf8_is_skipped_under_that_path(tmp_path):
    folder = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"caf\xe9")))
    folder.mkdir()
    touch(folder, "a.mp4")
    m = read_manifest(write(folder / "list.csv", "path,label\na.mp4,dog\n"))
    shown = f"{tmp_path}/caf\\xe9/a.mp4"
    assert m.table.empty
    assert m.skipped.values.tolist() == [
        ["a", shown, "non-UTF-8 name", f"line 2: {shown}: the path is not UTF-8; rename it to audit it"]]
