"""Property: whatever a manifest holds (labels with quotes, ';', whitespace, control characters and line
breaks, repeated ids, files sharing a stem, blank lines, either line ending), every physical line after
its header is accounted for exactly once: as a row, a further record of a row's video, or a skipped row
whose detail names its lines; the rows written back read back the same. A folder's media files likewise:
a row, a skipped row, or the note's count.
Reading only, no decoding: the fast tier runs 5 fixed draws a format, the slow tier 600 random ones."""
import csv
import io
import os
import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from avaudit.media.folders import is_media
from avaudit.media.manifests import ManifestError, read_manifest, write_subset

WILD = 'ab ;,"\'&\t\r\n\x00\x1b\x1f#é'  # the characters that break naive manifests
wild = st.text(alphabet=WILD, max_size=8)
label = st.one_of(st.sampled_from(["dog", "air drumming", "12\" vinyl", "rock;paper", "", " cat "]), wild)
number = st.sampled_from(["0", "1", "10", "-5", "20", "1.5", "x", "", " 3 "])
ytid = st.one_of(st.sampled_from(["aaaaaaaaaaa", "bbbbbbbbbbb", "-3B32lodo2M", "c"]), wild)
MEDIA = ["g/a.mp4", "g/a.mkv", "\tc.mp4", "d e.mp4", "aaaaaaaaaaa_000001.mp4", "AVE/aaaaaaaaaaa.mp4",
         "aaaaaaaaaaa_0_10.mp4", "aaaaaaaaaaa_000000_000010.mp4", "x_000001.mp4"]
path = st.one_of(st.sampled_from([*MEDIA, " g/a.mp4", "g/b.mp4", "../out.mp4", "/abs.mp4", "", "g/a"]), wild)
clip_name = st.one_of(st.sampled_from(["x_000001.mp4", "x_000001.mkv", "y.avi", "bad"]), wild)
llp_name = st.one_of(st.sampled_from(["aaaaaaaaaaa_0_10", "P7x4FV4lg_570_580", "bad", "a_1_x"]), wild)
AUDIOSET_HEADER = ["# Segments csv created Sun Mar  5 10:54:31 2017", "# num_ytids=22160",
                   "# YTID, start_seconds, end_seconds, positive_labels"]

# format -> (header lines, a first record that names the format, field strategies, separator, CSV quoting)
FORMATS = {
    "generic": (["path,label,start,end,split"], [], [path, label, number, number, label], ",", True),
    "kinetics": (["label,youtube_id,time_start,time_end,split"], [], [label, ytid, number, number, label], ",", True),
    "vggsound": ([], ["aaaaaaaaaaa,1,dog,test"], [ytid, number, label, label], ",", True),
    "vggsound-list": ([], ["x_000001.mp4,dog"], [clip_name, label], ",", True),
    "ave": ([], ["Dog&aaaaaaaaaaa&good&0&10"], [label, ytid, label, number, number], "&", False),
    "llp": (["filename\tevent_labels"], [], [llp_name, label], "\t", False),
    "llp-events": (["filename\tonset\toffset\tevent_labels"], [], [llp_name, number, number, label], "\t", False),
    "audioset": (AUDIOSET_HEADER, [], [ytid, number, number, label], ", ", True),
}


def quoted(field: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="").writerow([field])
    return buf.getvalue()


@st.composite
def manifests(draw, name: str) -> str:
    """A manifest of format `name` as a person or a tool may write it: fields quoted as CSV or not at
    all, blank lines anywhere, either line ending."""
    header, first, fields, sep, csv_quoting = FORMATS[name]
    lines = [*header, *first]
    for _ in range(draw(st.integers(1, 8))):
        values = [draw(f) for f in fields]
        if csv_quoting:
            values = [quoted(v) if draw(st.booleans()) else v for v in values]
        lines.append(sep.join(values))
        if draw(st.integers(0, 5)) == 0:
            lines.append(draw(st.sampled_from(["", " ", "\t"])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    return "".join(line + newline for line in lines)


def spans_named(detail: str) -> list[tuple[int, int]]:
    """The lines a skipped row's detail names: 'line 3: ...', 'lines 3-5: ...', 'line 3 (also line 7): ...'."""
    found = re.match(r"(lines? [-\d]+)(?: \(also ([^)]*)\))?: ", detail)
    assert found, detail
    named = [found[1], *(found[2].split(", ") if found[2] else [])]
    return [(int(n.split()[1].split("-")[0]), int(n.split()[1].split("-")[-1])) for n in named]


def check_every_line_accounted_for(text: str, name: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for media in MEDIA:
            (root / media).parent.mkdir(parents=True, exist_ok=True)
            (root / media).write_bytes(b"")
        src = root / "manifest.csv"
        src.write_bytes(text.encode())
        lines = text.split("\n")
        try:
            m = read_manifest(src)
        except ManifestError as err:  # the one refusal a manifest of records may get: nothing but a header
            assert str(err) == f"{src}: the manifest lists no videos, only a header"
            comment = "#" if name == "audioset" else None  # AudioSet's `#` lines (a record with an empty id is one)
            assert all(not line.strip() or (comment and line.startswith(comment))
                       for line in lines[len(FORMATS[name][0]):])
            return
        assert m.format == name
        spans = sorted(m.spans)
        assert all(a <= b < c for (a, b), (c, _) in zip(spans, spans[1:])), "records overlap"
        rows = [m.spans[r] for r in m.table["row"]]
        more = [m.spans[r] for records in m.more_lines.values() for r, _ in records]
        skipped = [span for d in m.skipped["detail"] for span in spans_named(d)]
        assert sorted(rows + more + skipped) == spans, "a record is missing or counted twice"
        covered = {n for a, b in spans for n in range(a, b + 1)}
        n_header = len(FORMATS[name][0])
        for number_, line in enumerate(lines[:-1], start=1):
            comment = name == "audioset" and line.startswith("#")
            if number_ > n_header and line.removesuffix("\r").strip() and not comment:
                assert number_ in covered, f"line {number_} {line!r} is neither a row nor skipped"
        assert not any(n <= n_header for n in covered)
        for r, raw in zip(m.table["row"], m.records(m.table["row"])):
            a, b = m.spans[r]
            assert raw == "\n".join(lines[a - 1 : b]).removesuffix("\r")


def check_a_subset_of_every_row_reads_back_the_same(text: str) -> None:
    """retarget's promise: the kept rows written back (write_subset) read back as the same records."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for media in MEDIA:
            (root / media).parent.mkdir(parents=True, exist_ok=True)
            (root / media).write_bytes(b"")
        (root / "manifest.csv").write_bytes(text.encode())
        try:
            m = read_manifest(root / "manifest.csv")
        except ManifestError:
            return
        if len(m.table):
            write_subset(m, m.table, root / "subset.csv")
            back = read_manifest(root / "subset.csv")
            assert back.records(back.table["row"]) == m.records(m.table["row"])
            assert back.table["labels"].tolist() == m.table["labels"].tolist()


# the edit loop's draw is the same every run (a fast tier that fails at random helps no one); the slow tier explores.
# The settings wrap the test that `given` makes (wrapping `given` itself left them unapplied: a 200 ms deadline
# and random draws)
FAST = settings(max_examples=5, deadline=None, database=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])
MANY = settings(max_examples=600, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def property_test(draws: settings, strategy, check):
    """`check` as a Hypothesis test run under `draws`. The settings go on the test that `given` makes:
    put on `given(...)` itself they are silently dropped, and Hypothesis's defaults run instead (100
    random draws, a 200 ms deadline that a loaded machine misses now and then, an example database)."""
    return draws(given(strategy)(check))


def test_a_fast_property_draws_the_same_few_examples_every_run():
    runs = []
    for _ in range(2):
        runs.append([])
        property_test(FAST, manifests("llp"), lambda text: runs[-1].append(text))()
    assert len(runs[0]) == FAST.max_examples and runs[0] == runs[1]


@pytest.mark.parametrize("name", FORMATS)
def test_every_line_of_any_manifest_is_accounted_for_once(name):
    property_test(FAST, manifests(name), lambda text: check_every_line_accounted_for(text, name))()


@pytest.mark.slow  # retarget's write-back, one format at a time; the edit loop keeps the line accounting above
@pytest.mark.parametrize("name", FORMATS)
def test_the_rows_of_any_manifest_written_back_read_back_the_same(name):
    property_test(FAST, manifests(name), check_a_subset_of_every_row_reads_back_the_same)()


@pytest.mark.slow
@pytest.mark.parametrize("name", FORMATS)
def test_every_line_of_any_manifest_is_accounted_for_once_many_examples(name):
    property_test(MANY, manifests(name), lambda text: check_every_line_accounted_for(text, name))()


folder_name = st.one_of(st.sampled_from(["dog", "air drumming", "rock;paper", "x.mp4", ".cache", "train"]),
                        st.text(alphabet=WILD.replace("\x00", ""), min_size=1, max_size=6))
file_name = st.sampled_from(["1.mp4", "1.mkv", "2.webm", "._3.mp4", ".h.mp4", "n.txt", "a\nb.mp4"])


@st.composite
def folder_trees(draw) -> list[tuple[str, ...]]:
    """Paths of media files under DATA, one to three folders deep (DATA/clip, DATA/label/clip, deeper)."""
    parts = st.lists(folder_name.filter(lambda n: n not in (".", "..")), max_size=3)
    return draw(st.lists(st.tuples(parts, file_name).map(lambda t: (*t[0], t[1])), min_size=1, max_size=10))


def check_every_media_file_accounted_for(tree: list[tuple[str, ...]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        for parts in tree:
            target = data.joinpath(*parts)
            if any(p.is_file() for p in target.parents) or target.is_dir():
                continue  # a file and a folder of one name: the tree cannot hold both
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(b"")
        found, deeper = set(), 0
        for top, _, files in os.walk(data):
            for name in files:  # a folder named like a clip (x.mp4/) is no media file
                parts = Path(top, name).relative_to(data).parts
                if not is_media(name) or any(p.startswith(".") for p in parts[:-1]):
                    continue  # not media, or inside a hidden folder
                if len(parts) <= 2:
                    found.add(os.path.join(top, name))  # DATA/clip, DATA/label/clip: a row or a skipped row
                else:
                    deeper += 1  # below the category folders: counted in the note
        try:
            m = read_manifest(data)
        except ManifestError as err:
            assert "no media files" in str(err) and not found
            assert f"{deeper:,} media file" in str(err) if deeper else "below" not in str(err)
            return
        listed = [*m.table["path"], *m.skipped["path"]]
        assert sorted(listed) == sorted(found)
        noted = int(m.notes[0].split()[0].replace(",", "")) if m.notes else 0
        assert noted == deeper


@FAST
@given(folder_trees())
def test_every_media_file_of_a_folder_is_a_row_a_skipped_row_or_counted(tree):
    check_every_media_file_accounted_for(tree)


@pytest.mark.slow
@MANY
@given(folder_trees())
def test_every_media_file_of_a_folder_is_a_row_a_skipped_row_or_counted_many_examples(tree):
    check_every_media_file_accounted_for(tree)
