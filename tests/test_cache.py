"""The logit cache: keys follow file identity and window; entries survive kills, corruption and ranks, in a
bounded number of files."""
from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from avaudit.inference import entries
from avaudit.inference.cache import COMPACT_AT, LogitCache, clip_keys, default_cache_dir, model_fingerprint

C = 7


def random_entries(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = np.array([f"{seed:08x}{i:024x}" for i in range(n)])
    return keys, rng.standard_normal((n, 5, C)).astype(np.float32)


def test_keys_follow_file_identity_and_window(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x" * 10)
    key = lambda start=0.0, end=10.0: clip_keys([str(clip)], np.array([start]), np.array([end]))[0]
    first = key()
    assert len(first) == 32 and first == key()
    assert key(0.0, 5.0) != first and key(1.0, 10.0) != first
    assert key(np.nan, np.nan) == key(np.nan, np.nan) != first
    os.utime(clip, ns=(time.time_ns(), os.stat(clip).st_mtime_ns + 1_000_000))
    touched = key()
    assert touched != first
    stat = os.stat(clip)
    clip.write_bytes(b"y" * 11)
    os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime, other size
    assert key() not in (first, touched)


def test_keys_missing_file_and_repeated_path(tmp_path):
    clip = tmp_path / "a.mp4"
    clip.write_bytes(b"x")
    keys = clip_keys([str(clip), str(tmp_path / "gone.mp4"), str(clip)], np.zeros(3), np.array([5.0, 5.0, 6.0]))
    assert keys.dtype.kind == "U" and keys[1] == ""
    assert keys[0] and keys[2] and keys[0] != keys[2]


def test_default_dir_and_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("AVAUDIT_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("AVAUDIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "avaudit"
    (tmp_path / "m.pt").write_bytes(b"weights")
    (tmp_path / "n.pt").write_bytes(b"weights2")
    assert len(model_fingerprint(tmp_path / "m.pt")) == 16
    assert model_fingerprint(tmp_path / "m.pt") != model_fingerprint(tmp_path / "n.pt")


def test_round_trip_and_persistence(tmp_path):
    keys, logits = random_entries(50)
    cache = LogitCache(tmp_path, "abc", n_classes=C, source="m.pt")
    cache.add(keys[:30], logits[:30])
    cache.add(keys[:0], logits[:0])
    found, got, _ = cache.lookup(keys)
    assert found[:30].all() and not found[30:].any()
    np.testing.assert_array_equal(got[:30], logits[:30])
    assert np.isnan(got[30:]).all()
    cache.add(keys[30:], logits[30:])
    assert len(cache) == 50
    again = LogitCache(tmp_path, "abc", n_classes=C)
    found, got, _ = again.lookup(keys[::-1])
    assert found.all()
    np.testing.assert_array_equal(got, logits[::-1])
    assert sorted(p.name for p in (tmp_path / "abc").iterdir()) == ["entries-0.bin", "lock", "model.txt"]
    extra, extra_logits = random_entries(5, seed=9)
    again.add(extra, extra_logits)
    np.testing.assert_array_equal(cache.lookup(extra)[1], extra_logits)  # another writer's entries
    assert "n_classes: 7" in (tmp_path / "abc" / "model.txt").read_text()


def test_seconds_of_content_round_trip_and_old_chunks_read_as_unknown(tmp_path):
    keys, logits = random_entries(6)
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    cache.add(keys[:3], logits[:3], np.array([10.0, 4.5, 2.0]))
    np.savez(tmp_path / "abc" / "chunk-00000000000000000001-1-0.npz", keys=keys[3:], logits=logits[3:])
    found, got, seconds = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys)
    assert found.all()
    np.testing.assert_array_equal(got, logits)
    np.testing.assert_array_equal(seconds[:3], np.array([10.0, 4.5, 2.0], np.float32))
    assert np.isnan(seconds[3:]).all()
    assert not list((tmp_path / "abc").glob("chunk-*"))  # moved into the entry file, which now holds them
    found, got, seconds = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys)
    assert found.all() and np.isnan(seconds[3:]).all()
    np.testing.assert_array_equal(got, logits)


def test_failed_rows_are_not_cached_and_later_chunks_win(tmp_path):
    keys, logits = random_entries(3)
    logits[1] = np.nan
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    cache.add(np.array([keys[0], keys[1], ""]), logits)
    found, _, _ = cache.lookup(np.array([keys[0], keys[1], ""]))
    assert found.tolist() == [True, False, False]
    cache.add(keys[:1], logits[2:3])
    found, got, _ = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys[:1])
    np.testing.assert_array_equal(got[0], logits[2])


def test_temp_files_torn_entries_and_corrupt_chunks_are_skipped(tmp_path):
    keys, logits = random_entries(30)
    LogitCache(tmp_path, "abc", n_classes=C).add(keys[:10], logits[:10])
    folder = tmp_path / "abc"
    (folder / ".chunk-leftover.tmp").write_bytes(b"half a chunk")
    whole = (folder / "entries-0.bin").read_bytes()
    torn = b"".join(bytes(part) for part in entries.encode({"keys": keys[10:20].astype("S32"),
                                                            "logits": logits[10:20]}))
    (folder / "entries-0.bin").write_bytes(whole + torn[: len(torn) // 2])  # a kill in the middle of an append
    np.savez(tmp_path / "chunk.npz", keys=keys[20:], logits=logits[20:])
    chunk = (tmp_path / "chunk.npz").read_bytes()
    (folder / "chunk-99999999999999999999-1-0.npz").write_bytes(chunk[: len(chunk) // 2])
    other = LogitCache(tmp_path, "other", n_classes=C + 1)
    other.add(keys[10:], np.zeros((20, 5, C + 1), np.float32))
    with pytest.warns(UserWarning, match="unreadable"):
        reader = LogitCache(tmp_path, "abc", n_classes=C)
        found, got, _ = reader.lookup(keys)
    assert found.tolist() == [True] * 10 + [False] * 20
    np.testing.assert_array_equal(got[:10], logits[:10])
    reader.add(keys[20:], logits[20:])  # cuts the torn record off first, so the new one is read
    found, got, _ = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys)
    assert found.tolist() == [True] * 10 + [False] * 10 + [True] * 10
    np.testing.assert_array_equal(got[20:], logits[20:])
    assert not other.lookup(keys[:10])[0].any()
    with pytest.warns(UserWarning, match="expected"):  # same folder read with the wrong class count
        assert len(LogitCache(tmp_path, "other", n_classes=C)) == 0


def test_records_placed_a_small_chunk_at_a_time_keep_every_key_and_check_every_byte(tmp_path, monkeypatch):
    keys, logits = random_entries(40)
    writer = LogitCache(tmp_path, "abc", n_classes=C)
    for part in np.array_split(np.arange(40), 4):
        writer.add(keys[part], logits[part])
    monkeypatch.setattr(entries, "CHUNK_BYTES", 100)  # three keys a chunk, and a logits row (140 bytes) larger
    found, got, _ = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys)
    assert found.all()  # each chunk of keys kept apart from the buffer the next chunk is read into
    np.testing.assert_array_equal(got, logits)
    path = tmp_path / "abc" / "entries-0.bin"
    data = bytearray(path.read_bytes())
    data[-30] ^= 0xFF  # a byte of the last record's logits
    path.write_bytes(bytes(data))
    assert LogitCache(tmp_path, "abc", n_classes=C).lookup(keys)[0].tolist() == [True] * 30 + [False] * 10


def test_entries_of_many_batches_are_few_files_joined_by_the_next_reader(tmp_path):
    keys, logits = random_entries(COMPACT_AT * 4 + 3)
    writer = LogitCache(tmp_path, "abc", n_classes=C)
    for part in np.array_split(np.arange(len(keys)), COMPACT_AT * 2):  # a batch per add, as an audit adds them
        writer.add(keys[part], logits[part], np.full(len(part), 10.0))
    folder = tmp_path / "abc"
    assert sorted(p.name for p in folder.iterdir()) == ["entries-0.bin", "lock", "model.txt"]
    assert len(entries.read(folder / "entries-0.bin")[0]) == COMPACT_AT * 2
    found, got, seconds = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys[::-1])
    assert found.all() and (seconds == 10).all()
    np.testing.assert_array_equal(got, logits[::-1])
    assert len(entries.read(folder / "entries-0.bin")[0]) == 1  # joined into one record
    assert sorted(p.name for p in folder.iterdir()) == ["entries-0.bin", "lock", "model.txt"]
    writer.add(keys[:1], logits[1:2])  # the first writer appends after the joined file, and its entry wins
    np.testing.assert_array_equal(LogitCache(tmp_path, "abc", n_classes=C).lookup(keys[:1])[1], logits[1:2])


def test_further_named_arrays_ride_along(tmp_path):
    keys, logits = random_entries(6)
    signals = np.arange(12, dtype=np.float32).reshape(6, 2)
    signatures = np.arange(18, dtype=np.uint8).reshape(6, 3)
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    cache.add(keys[:4], logits[:4], np.full(4, 10.0), signals=signals[:4], signatures=signatures[:4])
    cache.add(keys[4:5], logits[4:5])  # an entry without them
    found, got, _, got_signals, got_signatures = LogitCache(tmp_path, "abc", n_classes=C).lookup(
        keys, "signals", "signatures")
    assert found.tolist() == [True] * 5 + [False]
    np.testing.assert_array_equal(got_signals[:4], signals[:4])
    np.testing.assert_array_equal(got_signatures[:4], signatures[:4])
    assert np.isnan(got_signals[4:]).all() and (got_signatures[4:] == 0).all()
    assert np.isnan(LogitCache(tmp_path, "abc", n_classes=C).lookup(keys, "absent")[3]).all()
    with pytest.raises(ValueError, match="one row per key"):
        cache.add(keys, logits, signals=signals[:2])


KEEP_ADDING = """
import sys, time
import numpy as np
from avaudit.inference.cache import LogitCache
cache = LogitCache(sys.argv[1], "abc", n_classes=7)
for i in range(100000):
    keys = np.array([f"{i:016x}{j:016x}" for j in range(2000)])
    cache.add(keys, np.full((2000, 5, 7), float(i), np.float32))
    print(i, flush=True)
"""


def test_a_kill_during_appends_leaves_only_whole_entries(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", KEEP_ADDING, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    for _ in range(4):
        process.stdout.readline()
    process.send_signal(signal.SIGKILL)  # somewhere in an append, or between two
    process.wait()
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    n = len(cache)
    assert n >= 4 * 2000 and n % 2000 == 0  # whole batches only
    keys = np.array([f"{i:016x}{j:016x}" for i in range(n // 2000) for j in range(2000)])
    found, got, _ = cache.lookup(keys)
    assert found.all() and (got == np.repeat(np.arange(n // 2000), 2000)[:, None, None]).all()
    cache.add(*random_entries(3, seed=5))
    assert len(LogitCache(tmp_path, "abc", n_classes=C)) == n + 3

def test_stale_temp_files_are_removed(tmp_path):
    folder = tmp_path / "abc"
    folder.mkdir()
    stale, fresh = folder / ".chunk-a.tmp", folder / ".chunk-b.tmp"
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    os.utime(stale, (time.time() - 7200, time.time() - 7200))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(LogitCache(tmp_path, "abc", n_classes=C)) == 0
    assert not stale.exists() and fresh.exists()


def add_from_process(root: str, seed: int, rank: str) -> None:
    os.environ["RANK"] = rank
    cache = LogitCache(Path(root), "abc", n_classes=C)
    for part in np.array_split(np.arange(40), 4):
        keys, logits = random_entries(40, seed)
        cache.add(keys[part], logits[part])


@pytest.mark.slow
def test_concurrent_adds_from_two_processes(tmp_path):
    context = multiprocessing.get_context("spawn")
    # Two ranks, and two processes of one rank (two audits at once): all append under the folder's lock.
    workers = [context.Process(target=add_from_process, args=(str(tmp_path), seed, rank))
               for seed, rank in ((1, "0"), (2, "1"), (3, "1"))]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    for seed in (1, 2, 3):
        keys, logits = random_entries(40, seed)
        found, got, _ = cache.lookup(keys)
        assert found.all()
        np.testing.assert_array_equal(got, logits)
    assert len(cache) == 120 and sorted(p.name for p in (tmp_path / "abc").glob("entries-*")) == [
        "entries-0.bin", "entries-1.bin"]


@pytest.mark.slow
def test_lookup_100k_entries_is_fast(tmp_path):
    n, chunks = 100_000, 100
    keys = np.char.mod("%032x", np.arange(n)).astype("<U32")
    logits = np.random.default_rng(0).standard_normal((n, 5, C)).astype(np.float32)
    writer = LogitCache(tmp_path, "abc", n_classes=C)
    for part in np.array_split(np.arange(n), chunks):
        writer.add(keys[part], logits[part])
    order = np.random.default_rng(1).permutation(n)
    query = keys[order]
    began = time.perf_counter()
    found, got, _ = LogitCache(tmp_path, "abc", n_classes=C).lookup(query)
    seconds = time.perf_counter() - began
    print(f"\nlookup of {n} entries in {chunks} chunks (cold, new instance): {seconds:.3f} s, "
          f"{n / seconds:,.0f} videos/s")
    assert found.all()
    np.testing.assert_array_equal(got, logits[order])
    assert seconds < 5.0


def test_a_writer_indexes_the_batches_it_adds_as_written_without_reading_them_back(tmp_path, monkeypatch):
    """A writer placed each record it appended by reading it back from the file and checking its CRC (every byte a
    run caches read again: 3.6 GB at ten million clips of 16 classes). Now append says where the record's arrays
    lie, the very place a reader finds, and the writer indexes the keys it holds."""
    keys, logits = random_entries(40)
    writer = LogitCache(tmp_path, "abc", n_classes=C)
    writer.add(keys[:10], logits[:10], np.full(10, 10.0), signals=np.ones((10, 3), np.float32))
    read_back, returned = [], []
    place, append = entries.place, entries.append

    def placing(*args, **kwargs):
        for placed in place(*args, **kwargs):
            read_back.append(placed[0])
            yield placed

    def appending(*args, **kwargs):
        returned.append(append(*args, **kwargs))
        return returned[-1]

    monkeypatch.setattr(entries, "place", placing)
    monkeypatch.setattr(entries, "append", appending)
    for part in (slice(10, 25), slice(25, 40)):
        writer.add(keys[part], logits[part], np.full(15, 20.0), signals=np.full((15, 3), 2, np.float32))
    found, got, seconds, signals = writer.lookup(keys[::-1], "signals")
    assert read_back == []  # before: each add read its record back
    assert found.all() and seconds.tolist() == [20.0] * 30 + [10.0] * 10 and signals[:30].min() == 2
    np.testing.assert_array_equal(got, logits[::-1])
    with open(tmp_path / "abc" / "entries-0.bin", "rb") as handle:
        on_disk = [(placed, end) for placed, _, _, end in place(handle)]
    assert on_disk[1:] == [(placed, end) for end, placed in returned]


def test_a_cache_that_cannot_be_written_warns_once_and_still_serves_this_run(tmp_path, monkeypatch):
    import errno

    from avaudit.errors import AvauditWarning

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    cache = LogitCache(tmp_path, "abc", n_classes=C)
    monkeypatch.setattr("avaudit.inference.entries.append", full_disk)
    keys, logits = random_entries(10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cache.add(keys[:5], logits[:5])
        cache.add(keys[5:], logits[5:])
    assert [(w.category, str(w.message)) for w in caught] == [(AvauditWarning, (
        f"the logit cache {tmp_path}/abc cannot be written (No space left on device): going on without caching, "
        f"so an interrupted run starts over and a re-audit decodes again (free space, or pass another --cache-dir)"))]
    found, got, _ = cache.lookup(keys)
    assert found.all() and not list((tmp_path / "abc").glob("entries-*"))
    np.testing.assert_array_equal(got, logits)
    blocked = tmp_path / "a_file"
    blocked.write_text("not a folder")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        unusable = LogitCache(blocked, "abc", n_classes=C)
        unusable.add(keys, logits)
    assert [str(w.message).split(": going on")[0] for w in caught] == [
        f"the logit cache {blocked}/abc cannot be written (Not a directory)"]
    assert unusable.lookup(keys)[0].all()


def test_extra_arrays_round_trip_and_chunks_without_them_are_unknown(tmp_path):
    keys, logits = random_entries(8)
    signals = np.arange(8 * 3, dtype=np.float32).reshape(8, 3)
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    cache.add(keys[:2], logits[:2])  # an older version's chunk: no signals
    cache.add(keys[2:6], logits[2:6], signals=signals[2:6], digests=np.ones((4, 16), np.uint8))
    cache.add(keys[3:4], logits[3:4])  # a later chunk without signals wins for its key
    for reader in (cache, LogitCache(tmp_path, "abc", n_classes=C)):
        known, values = reader.lookup_extra(keys, "signals")
        assert known.tolist() == [False, False, True, False, True, True, False, False]
        np.testing.assert_array_equal(values[known], signals[[2, 4, 5]])
        assert np.isnan(values[~known]).all()
        known, digests = reader.lookup_extra(keys, "digests")
        assert known.tolist() == [False, False, True, False, True, True, False, False]
        assert (digests[known] == 1).all() and (digests[~known] == 0).all()
        assert reader.lookup_extra(keys, "nothing")[1] is None
    # A newer version measuring another number of signals: the entries of the old shape are unknown.
    cache.add(keys[6:], logits[6:], signals=np.zeros((2, 4), np.float32))
    known, values = LogitCache(tmp_path, "abc", n_classes=C).lookup_extra(keys, "signals")
    assert known.tolist() == [False] * 6 + [True, True] and values.shape == (8, 4)
    with pytest.raises(ValueError, match="extra arrays"):
        cache.add(keys[:2], logits[:2], signals=signals[:1])
