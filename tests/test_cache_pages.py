"""The cache writer lets each append's pages leave the page cache once they are fsynced (entries.drop_written): a
10M fill kept 3.5 GB there, and each append's fresh pages cost more system time the more it held (benchmarks/
README.md, "Seventh round: the cache fill and retarget"). What is cached, and what a reader finds, is unchanged."""
import os

import numpy as np
import pytest
from test_cache import C, random_entries

from avaudit.inference import entries
from avaudit.inference.cache import LogitCache


@pytest.fixture
def calls(monkeypatch):
    """The fsyncs and fadvises of the entry files' appends, in order: ("fsync", fd) and ("fadvise", fd, start,
    length, advice)."""
    seen, fsync = [], os.fsync
    monkeypatch.setattr(entries.os, "fsync", lambda fd: (seen.append(("fsync", fd)), fsync(fd))[1])
    if hasattr(os, "posix_fadvise"):
        fadvise = os.posix_fadvise
        monkeypatch.setattr(entries.os, "posix_fadvise", lambda fd, *args: (seen.append(("fadvise", fd, *args)),
                                                                            fadvise(fd, *args))[1])
    return seen


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system")
def test_each_append_drops_its_own_pages_after_its_fsync(tmp_path, calls):
    keys, logits = random_entries(90)
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    for part in np.array_split(np.arange(90), 3):
        cache.add(keys[part], logits[part])
    starts = [0, *(end for _, end in entries.iterate(tmp_path / "abc" / "entries-0.bin"))][:3]
    assert [call[0] for call in calls] == ["fsync", "fadvise"] * 3  # each after its fsync: durable first
    assert [call[2:] for call in calls[1::2]] == [(start, 0, os.POSIX_FADV_DONTNEED) for start in starts]
    found, got, _ = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys[::-1])
    assert found.all()
    np.testing.assert_array_equal(got, logits[::-1])


def test_appends_are_kept_alike_without_drop_written_or_posix_fadvise(tmp_path, calls, monkeypatch):
    keys, logits = random_entries(40)
    monkeypatch.setattr(entries, "DROP_WRITTEN", False)
    LogitCache(tmp_path, "off", n_classes=C).add(keys[:20], logits[:20])
    monkeypatch.setattr(entries, "DROP_WRITTEN", True)
    monkeypatch.delattr(entries.os, "posix_fadvise", raising=False)
    LogitCache(tmp_path, "off", n_classes=C).add(keys[20:], logits[20:])
    assert [call[0] for call in calls] == ["fsync", "fsync"]
    found, got, _ = LogitCache(tmp_path, "off", n_classes=C).lookup(keys)
    assert found.all()
    np.testing.assert_array_equal(got, logits)


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="no posix_fadvise on this system")
def test_compact_lets_go_of_each_record_of_the_file_it_replaces_as_read(tmp_path, calls):
    keys, logits = random_entries(60)
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    for part in np.array_split(np.arange(60), 4):
        cache.add(keys[part], logits[part])
    path = tmp_path / "abc" / "entries-0.bin"
    ends = [end for _, end in entries.iterate(path)]
    calls.clear()
    entries.compact(path)
    read = [call[2:] for call in calls if call[0] == "fadvise"]
    assert read == [(start, end - start, os.POSIX_FADV_DONTNEED) for start, end in zip([0, *ends[:-1]], ends)]
    assert len(entries.read(path)[0]) == 1
    found, got, _ = LogitCache(tmp_path, "abc", n_classes=C).lookup(keys)
    assert found.all()
    np.testing.assert_array_equal(got, logits)
