"""What a run keeps per row after reading its manifest and locating its rows in the cache (issue 22: ten million
rows under 4 GB needs the state after the lookup well under 250 bytes a row), and the lookup's peak."""
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from avaudit.inference import blocks
from avaudit.media import manifests
from avaudit.media.manifests import read_manifest

LABELS = [f"playing class {i} thing" for i in range(16)]


def kinetics_csv(path: Path, n: int) -> Path:
    with open(path, "w") as out:
        out.write("label,youtube_id,time_start,time_end,split\n")
        out.writelines(f'"{LABELS[i % 16]}",y{i:010d},{i * 7 % 291},{i * 7 % 291 + 10},{("train", "test")[i % 2]}\n'
                       for i in range(n))
    return path


def found_anywhere(self, places, exts):
    """A stand-in Finder.find: every file found at its first place (no files on disk)."""
    return os.path.join(places[0][0], places[0][1] + exts[0]), ""


def test_a_manifests_labels_and_split_are_categoricals_of_a_byte_a_row(tmp_path, monkeypatch):
    """As text they were 19-28 and 14 bytes a row (~330 MB at ten million rows); as categoricals a byte, their
    values the same and their categories sorted as text sorts (so sorting and grouping order them as before)."""
    monkeypatch.setattr(manifests.Finder, "find", found_anywhere)
    n = 20_000
    table = read_manifest(kinetics_csv(tmp_path / "k.csv", n), root=tmp_path).table
    for name in ("labels", "split"):
        assert table[name].memory_usage(index=False, deep=True) < 2 * n + 2000
        assert list(table[name].cat.categories) == sorted(table[name].cat.categories)
    assert table["labels"].tolist() == [LABELS[i % 16] for i in range(n)]
    assert table["split"].tolist() == [("train", "test")[i % 2] for i in range(n)]


def test_labelled_rows_of_categorical_labels_make_nothing_a_row_but_their_codes(tmp_path, monkeypatch):
    """Whether any label holds ';' is asked of the categories, not of every row (an object array of ten million
    booleans, 80 MB, when asked of a categorical column)."""
    from avaudit.labels import labelled_rows

    monkeypatch.setattr(manifests.Finder, "find", found_anywhere)
    table = read_manifest(kinetics_csv(tmp_path / "k.csv", 200_000), root=tmp_path).table
    tracemalloc.start()
    rows = labelled_rows(table)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * len(table) + (8 << 16)  # a byte or two a row (codes, masks) and a block of codes looked at;
    # asked of every row, 8 more a row
    assert rows["label"].tolist() == table["labels"].tolist()


HELD = """
import ctypes, os, sys
from pathlib import Path
from avaudit.media import manifests
manifests.Finder.find = lambda self, places, exts: (os.path.join(places[0][0], places[0][1] + exts[0]), "")
def rss():
    return int(dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines())["VmRSS"].split()[0])
head = Path(sys.argv[2]) / "head.csv"
with open(sys.argv[1]) as lines:
    head.write_text("".join(next(lines) for _ in range(100)))
manifests.read_manifest(head, root=Path(sys.argv[2]))  # the libraries' first use, not counted
before = rss()
m = manifests.read_manifest(Path(sys.argv[1]), root=Path(sys.argv[2]))
assert len(m.table) == int(sys.argv[3]) and len(m.skipped) == 0
held = rss()
ctypes.CDLL("libc.so.6").malloc_trim(0)
print((held - before) * 1024 / len(m.table), (held - rss()) * 1024 / len(m.table),
      m.table.memory_usage(index=False, deep=True).sum() / len(m.table))
"""


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="resident memory is read from Linux's /proc")
def test_the_read_gives_back_the_memory_it_freed(tmp_path):
    """200,000 rows, media found: what the process holds after the read over what it held before, beside the
    table's own bytes (~150 a row, the path the most), and what glibc kept of the blocks the read freed (~0.9 GB at
    ten million rows, counted by every later stage) until the read gave them back (malloc_trim)."""
    n = 200_000
    result = subprocess.run([sys.executable, "-c", HELD, str(kinetics_csv(tmp_path / "k.csv", n)), str(tmp_path),
                             str(n)], capture_output=True, text=True, timeout=600, env=os.environ)
    assert result.returncode == 0, result.stderr[-2000:]
    held, kept_by_malloc, table = map(float, result.stdout.split())
    assert kept_by_malloc < 10  # before: 129 bytes a row that a malloc_trim after the read gave back
    assert held - table < 40  # the line spans (16 bytes a row) and little else; before: 146


PEAK = """
import os, sys
from pathlib import Path
from avaudit.media import manifests
manifests.Finder.find = lambda self, places, exts: (os.path.join(places[0][0], places[0][1] + exts[0]), "")
def status(field):
    return int(dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines())[field].split()[0])
head = Path(sys.argv[2]) / "head.csv"
with open(sys.argv[1]) as lines:
    head.write_text("".join(next(lines) for _ in range(100)))
manifests.read_manifest(head, root=Path(sys.argv[2]))  # the libraries' first use, not counted
before = status("VmRSS")
Path("/proc/self/clear_refs").write_text("5")  # VmHWM from here
m = manifests.read_manifest(Path(sys.argv[1]), root=Path(sys.argv[2]))
assert len(m.table) == int(sys.argv[3])
print((status("VmHWM") - before) * 1024 / len(m.table), m.table.memory_usage(index=False, deep=True).sum() / len(m.table))
"""


def test_the_reads_peak_counts_no_blocks_its_numbers_were_gathered_in(tmp_path):
    """500,000 rows, media found: the read's peak resident memory over the process's before, a row, beside the
    table's own bytes. The numbers' blocks, freed once joined into columns, stayed with glibc as holes among the
    text's blocks, which the table's arrays (each its own mapping) never reused: 156 bytes a row over the table at
    the peak, now 125, given back before the table is built (at ten million rows the peak was 2.96 GB)."""
    n = 500_000
    result = subprocess.run([sys.executable, "-c", PEAK, str(kinetics_csv(tmp_path / "k.csv", n)), str(tmp_path),
                             str(n)], capture_output=True, text=True, timeout=600, env=os.environ)
    assert result.returncode == 0, result.stderr[-2000:]
    peak, table = map(float, result.stdout.split())
    assert peak - table < 140  # before: 156


def hex_keys(n: int, seed: int) -> np.ndarray:
    """N random keys of 32 lowercase hex digits (S32), as the cache stores them."""
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)[np.random.default_rng(seed).integers(0, 16, size=n * 32)]
    return np.frombuffer(digits.tobytes(), "S32")


def test_the_cache_index_holds_24_bytes_an_entry_and_locates_a_block_of_keys_at_a_time(monkeypatch):
    """Locating ten million keys at once made their halves, digits and search positions together (~150 bytes a
    key, 1.5 GB); now a block at a time, leaving 8 bytes a key (record and row, int32). The index's rows are int32
    (24 bytes an entry, was 28), and merging what was added reorders one array at a time."""
    n = 100_000
    keys = hex_keys(n, 0)
    index = blocks.EntryIndex()
    for first in range(0, n, 10_000):
        index.add(blocks.Record({}, arrays={}), keys[first : first + 10_000], np.ones(10_000, bool))
    tracemalloc.start()
    assert len(index) == n
    merge_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert sum(values.nbytes for values in index._merged()) == 24 * n
    assert merge_peak < 48 * n  # before 65: every array joined while the added parts lived, an arange, then copies
    monkeypatch.setattr(blocks, "LOCATE_BLOCK", 1000)
    asked = np.concatenate([keys[::-1], hex_keys(1000, 1), [b""]])
    tracemalloc.start()
    where = index.locate(asked)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 * len(asked) + 500_000
    assert where.found[:n].all() and not where.found[n:].any()
    rows = where.row[:n][::-1]
    assert np.array_equal(where.record[:n][::-1] * 10_000 + rows, np.arange(n))


def test_the_index_orders_keys_as_a_stable_lexsort_and_finds_them_as_searchsorted():
    """key_order and SortedSearch (quicker at ten million keys) give exactly what np.lexsort and np.searchsorted
    give, keys added twice and halves equal in their first 64 bits included; the later of two entries wins."""
    rng = np.random.default_rng(1)
    for trial in range(200):
        n = int(rng.integers(0, 40))
        spread = 2**62 if trial % 2 else 1  # few distinct highs, or 64-bit ones
        high = (rng.integers(0, 4 if trial % 2 else 2**62, n) * spread).astype(np.uint64)
        low = rng.integers(0, 3, n).astype(np.uint64)
        assert np.array_equal(blocks.key_order(high, low), np.lexsort((low, high)))
        wanted = (rng.integers(0, 5, 30) * 2**62).astype(np.uint64)
        assert np.array_equal(blocks.SortedSearch(np.sort(high))(wanted), np.searchsorted(np.sort(high), wanted))
        every = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False)  # spread over all 64 bits: hash keys
        asked = np.r_[every, every + np.uint64(1), rng.integers(0, 2**64, 30, dtype=np.uint64, endpoint=False)]
        assert np.array_equal(blocks.SortedSearch(np.sort(every))(asked), np.searchsorted(np.sort(every), asked))
    keys = hex_keys(50, 2)
    index = blocks.EntryIndex()
    index.add(blocks.Record({}, arrays={}), keys, np.ones(50, bool))
    index.add(blocks.Record({}, arrays={}), keys[::2], np.ones(25, bool))
    where = index.locate(keys)
    odd = np.arange(50) % 2 == 1
    assert np.array_equal(where.record, ~odd) and np.array_equal(where.row, np.where(odd, np.arange(50),
                                                                                   np.arange(50) // 2))


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"a,b\n", b"a,b", b"\xef\xbb\xbfh\r\nx,\xc3\xa9\r\n\r\n",
                                  b'p,"two\nlines"\n\nq\xe2\x82\xac,r\n', b"\n\n\n"])
def test_a_files_lines_read_from_it_are_the_lines_of_its_text(tmp_path, data):
    from avaudit.media.records import FileLines, Lines

    (tmp_path / "m.csv").write_bytes(data)
    lines, text = FileLines(tmp_path / "m.csv"), Lines(data.decode("utf-8-sig"))
    assert list(lines) == list(text) and len(lines) == len(text)
    assert [lines.joined(0, i) for i in range(len(text))] == [text.joined(0, i) for i in range(len(text))]


def test_a_file_that_is_not_utf8_is_refused_as_its_whole_text_is(tmp_path, monkeypatch):
    from avaudit.media.records import FileLines

    monkeypatch.setattr(FileLines, "BLOCK", 4)
    for data in (b"label,path\nx,\xff.mp4\n", b"label,path\nx,\xe2\x82"):
        (tmp_path / "m.csv").write_bytes(data)
        with pytest.raises(UnicodeDecodeError) as read:
            FileLines(tmp_path / "m.csv")
        with pytest.raises(UnicodeDecodeError) as whole:
            data.decode("utf-8-sig")
        assert (read.value.reason, read.value.start) == (whole.value.reason, whole.value.start)


def test_the_read_holds_no_copy_of_the_files_text(tmp_path, monkeypatch):
    """200,000 rows, media found: the read's traced peak (Python's and numpy's memory) per row beside the file's
    size per row. It held the file's bytes, then its text (~44 bytes a row each here, 440 MB at ten million rows)
    while it gathered the records' columns; now each line is read from the file when the records need it."""
    monkeypatch.setattr(manifests.Finder, "find", found_anywhere)
    n, data = 200_000, kinetics_csv(tmp_path / "k.csv", 200_000)
    read_manifest(kinetics_csv(tmp_path / "head.csv", 100), root=tmp_path)  # the libraries' first use
    tracemalloc.start()
    table = read_manifest(data, root=tmp_path).table
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(table) == n
    assert peak / n < data.stat().st_size / n + 80  # ~60 a row: the Python values of one block of records; before +100


def test_a_cache_that_released_its_keys_reads_what_it_located_and_locates_again(tmp_path):
    """An audit's rows, once located, are read by place: the index's keys (24 bytes an entry, 240 MB at ten million)
    are let go (`infer_logits` calls release_keys); a later locate places the files again and finds the same."""
    from avaudit.inference.cache import LogitCache

    n = 300
    keys = hex_keys(n, 2)
    logits = np.random.default_rng(0).standard_normal((n, 5, 7)).astype(np.float32)
    writer = LogitCache(tmp_path, "abc", n_classes=7)
    for part in np.array_split(np.arange(n), 100):  # past COMPACT_AT records: the next reader joins them
        writer.add(keys[part], logits[part], np.arange(n, dtype=np.float32)[part])
    cache = LogitCache(tmp_path, "abc", n_classes=7)
    where = cache.locate(keys[::-1])
    cache.release_keys()
    assert sum(values.nbytes for values in cache._index._sorted) == 0
    np.testing.assert_array_equal(cache.read(where), logits[::-1])
    np.testing.assert_array_equal(cache.read(where, "seconds"), np.arange(n, dtype=np.float32)[::-1])
    again = cache.locate(keys)
    assert again.found.all()
    np.testing.assert_array_equal(cache.read(again), logits)
    np.testing.assert_array_equal(cache.read(where[:5]), logits[::-1][:5])  # the first places still read


def test_an_audits_located_rows_hold_no_index_of_keys(planted, tiny_model, tmp_path):
    from avaudit.inference.pipeline import audit

    done = audit(planted, model=tiny_model, cache_dir=tmp_path / "cache", device="cpu")
    assert sum(values.nbytes for values in done.layers.cache._index._sorted) == 0  # before: 28 bytes an entry
    again = audit(planted, model=tiny_model, cache_dir=tmp_path / "cache", device="cpu")  # every row cached
    assert again.n_cached == len(again.layers) and np.array_equal(again.layers.everything(), done.layers.everything(), equal_nan=True)


def test_categorical_labels_give_the_rows_and_draws_that_text_gives():
    """A manifest's labels are categorical: labelled_rows keeps only its rows' labels as categories (an unlabelled
    row's "" left behind made `bias` count a category of no rows), and training draws a label a row, not a
    category (a categorical's `map` calls once a category, so every 'a;b' row drew the same)."""
    import pandas as pd

    from avaudit.labels import labelled_rows
    from avaudit.training.split import training_labels

    single = pd.Series(["b", "", "c", "a", "c"] * 4, dtype="str")
    rows = labelled_rows(pd.DataFrame({"labels": single.astype("category")}))
    assert list(rows["label"].cat.categories) == ["a", "b", "c"]
    assert rows["label"].tolist() == labelled_rows(pd.DataFrame({"labels": single}))["label"].tolist()
    multi = pd.Series(["a;b", "c", "a;b", "a;b", "b;c", "a;b", "c"] * 4, dtype="str")
    assert training_labels(multi.astype("category"), seed=3).tolist() == training_labels(multi, seed=3).tolist()
