"""The cache read a block of rows at a time (issue 22): an index of where each entry lies, rows read across entry
files and records, a torn record and a missing key; and audits decided block by block giving the tables of one
block."""
from __future__ import annotations

import os
import tracemalloc

import numpy as np
import pytest
import yaml
from cli_helpers import invoke

from avaudit.audits.decisions import multilabel, softmax, vote
from avaudit.audits.layerstats import layer_statistics
from avaudit.audits.reduce import bias_inputs, predict_columns, video_scores
from avaudit.audits.uncertainty import RIVAL_SAMPLE
from avaudit.inference import entries
from avaudit.inference.cache import LogitCache
from avaudit.vocab import LAYERS

C = 7


def random_entries(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    keys = np.array([f"{seed:08x}{i:024x}" for i in range(n)])
    return keys, np.random.default_rng(seed).standard_normal((n, 5, C)).astype(np.float32)


def cache_of_two_ranks(root, monkeypatch) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Entries in two entry files (ranks 0 and 1), each of several records (batches of 7 rows)."""
    keys, logits = random_entries(60)
    seconds = np.arange(60, dtype=np.float32)
    for rank, rows in (("0", np.arange(0, 30)), ("1", np.arange(30, 60))):
        monkeypatch.setenv("RANK", rank)
        writer = LogitCache(root, "abc", n_classes=C)
        for part in np.array_split(rows, 5):
            writer.add(keys[part], logits[part], seconds[part])
    monkeypatch.delenv("RANK")
    return keys, logits, seconds


def test_blocks_across_entry_files_and_records_read_the_rows_asked_for(tmp_path, monkeypatch):
    keys, logits, seconds = cache_of_two_ranks(tmp_path, monkeypatch)
    assert sorted(p.name for p in (tmp_path / "abc").glob("entries-*")) == ["entries-0.bin", "entries-1.bin"]
    order = np.r_[np.arange(25, 40), np.arange(59, -1, -7), [3, 3, 45]]  # across files and records, repeats
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    where = cache.locate(keys[order])
    assert where.found.all()
    for start in range(0, len(order), 4):  # blocks of 4 rows
        block = where[start : start + 4]
        np.testing.assert_array_equal(cache.read(block), logits[order[start : start + 4]])
        np.testing.assert_array_equal(cache.read(block, "seconds"), seconds[order[start : start + 4]])


def test_a_torn_last_record_and_a_missing_key_are_not_found(tmp_path):
    keys, logits = random_entries(30)
    LogitCache(tmp_path, "abc", n_classes=C).add(keys[:10], logits[:10])
    path = tmp_path / "abc" / "entries-0.bin"
    torn = b"".join(bytes(part) for part in entries.encode({"keys": keys[10:20].astype("S32"),
                                                            "logits": logits[10:20]}))
    path.write_bytes(path.read_bytes() + torn[: len(torn) - 3])  # a kill three bytes before the append ended
    cache = LogitCache(tmp_path, "abc", n_classes=C)
    asked = np.r_[keys[[0, 15, 9, 25]], [""]]
    where = cache.locate(asked)
    assert where.found.tolist() == [True, False, True, False, False]
    got = cache.read(where)
    np.testing.assert_array_equal(got[[0, 2]], logits[[0, 9]])
    assert np.isnan(got[[1, 3, 4]]).all()


def test_a_long_run_of_batches_reads_them_through_one_handle_a_file(tmp_path):
    keys, logits = random_entries(300)
    writer = LogitCache(tmp_path, "abc", n_classes=C)
    open_before = len(os.listdir("/proc/self/fd"))
    for part in np.array_split(np.arange(300), 150):  # a batch per add, as a long audit adds them
        writer.add(keys[part], logits[part])
    assert len(os.listdir("/proc/self/fd")) <= open_before + 2
    np.testing.assert_array_equal(writer.lookup(keys)[1], logits)


def wide_cache(root, seed: int, n: int = 20_000, classes: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(keys, logits) of n entries of many classes (25.6 MB of logits) cached in 8 records of one entry file."""
    keys = np.char.mod("%032x", np.arange(n)).astype("<U32")
    logits = np.random.default_rng(seed).standard_normal((n, 5, classes)).astype(np.float32)
    writer = LogitCache(root, "abc", n_classes=classes)
    for part in np.array_split(np.arange(n), 8):
        writer.add(keys[part], logits[part])
    return keys, logits


def test_the_index_holds_where_entries_are_not_the_entries(tmp_path):
    keys, logits = wide_cache(tmp_path, seed=0)
    classes = logits.shape[-1]
    tracemalloc.start()
    cache = LogitCache(tmp_path, "abc", n_classes=classes)
    where = cache.locate(keys)
    held = tracemalloc.get_traced_memory()[0]
    block = cache.read(where[5_000:6_000])
    tracemalloc.stop()
    assert held < 0.1 * logits.nbytes  # before: the entries joined into one table, then a copy of the rows asked
    np.testing.assert_array_equal(block, logits[5_000:6_000])


def test_a_block_of_consecutive_entries_is_read_into_its_place(tmp_path):
    keys, logits = wide_cache(tmp_path, seed=1)
    cache = LogitCache(tmp_path, "abc", n_classes=logits.shape[-1])
    where = cache.locate(keys)
    tracemalloc.start()
    block = cache.read(where[2_000:12_000])  # across four records of the file, each run read whole
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_array_equal(block, logits[2_000:12_000])
    assert peak < 1.1 * block.nbytes  # before: each run's bytes and a copy of each record's rows beside the block


def reader_of(logits: np.ndarray):
    confidences = softmax(logits)
    return lambda position: (logits[position], confidences[position])


@pytest.mark.parametrize("rule", ["sufficiency", "paper"])
def test_bias_inputs_a_few_rows_at_a_time_are_those_of_the_whole_array(rule):
    rng = np.random.default_rng(3)
    # One category larger than the rival sample, one smaller, one of a single video, in shuffled rows.
    labels = rng.permutation(np.r_[np.full(RIVAL_SAMPLE + 40, 2), np.full(20, 5), [0]])
    logits = (rng.standard_normal((len(labels), 5, C)) * 3).astype(np.float32)
    position = rng.permutation(len(labels) + 10)[: len(labels)] % len(labels)  # any rows, some twice
    read = reader_of(logits)
    true_conf, evidence, statistics = bias_inputs(read, position, labels, rule=rule, size=7)
    whole_conf, whole_evidence = video_scores(softmax(logits)[position], labels, rule=rule)
    np.testing.assert_array_equal(true_conf, whole_conf)
    assert (evidence is None) == (whole_evidence is None) == (rule == "paper")
    for name in ("margins", "rival", "lean", "pair") if evidence is not None else ():
        np.testing.assert_array_equal(getattr(evidence, name), getattr(whole_evidence, name))  # bit for bit
    assert statistics == layer_statistics(logits[position], labels)


def test_bias_inputs_of_one_category_a_few_rows_at_a_time_are_those_of_the_whole_array():
    rng = np.random.default_rng(5)
    labels = np.full(RIVAL_SAMPLE + 9, 4)  # no rival: each video's own closest class
    logits = (rng.standard_normal((len(labels), 5, C)) * 3).astype(np.float32)
    _, evidence, _ = bias_inputs(reader_of(logits), np.arange(len(labels)), labels, rule="sufficiency", size=5)
    _, whole = video_scores(softmax(logits), labels, rule="sufficiency")
    for name in ("margins", "rival", "lean", "pair"):
        np.testing.assert_array_equal(getattr(evidence, name), getattr(whole, name))


@pytest.mark.parametrize("rule", ["sufficiency", "paper"])
def test_bias_inputs_read_each_row_once(rule):
    """The rival sample is kept, not read again with its block: a cached bias of 400 categories read a quarter of
    its rows twice."""
    rng = np.random.default_rng(6)
    labels = rng.permutation(np.r_[np.full(RIVAL_SAMPLE + 30, 1), np.full(RIVAL_SAMPLE + 3, 3), np.full(9, 6)])
    logits = (rng.standard_normal((len(labels), 5, C)) * 3).astype(np.float32)
    position = rng.permutation(len(labels))
    whole, asked = reader_of(logits), []
    bias_inputs(lambda rows: asked.append(rows) or whole(rows), position, labels, rule=rule, size=16)
    assert sorted(np.concatenate(asked).tolist()) == sorted(position.tolist())
    assert max(map(len, asked)) <= 16


def test_blocks_of_many_classes_hold_fewer_rows(monkeypatch):
    from avaudit.inference.pipeline import BLOCK_ROWS, BLOCK_VALUES, block_rows

    monkeypatch.delenv("AVAUDIT_BLOCK_ROWS", raising=False)
    assert block_rows(2) == block_rows(16) == BLOCK_ROWS
    assert block_rows(400) == BLOCK_VALUES // (5 * 400) < BLOCK_ROWS  # 2,621 rows, not 524 MB of logits a block
    assert block_rows(10**9) == 1
    monkeypatch.setenv("AVAUDIT_BLOCK_ROWS", "3")
    assert block_rows(400) == 3


def test_predict_columns_a_few_rows_at_a_time_are_those_of_the_whole_array():
    logits = (np.random.default_rng(4).standard_normal((50, 5, C)) * 3).astype(np.float32)
    classes = [f"c{i}" for i in range(C)]
    columns = predict_columns(reader_of(logits), np.arange(50), classes, size=6)
    probs = softmax(logits)
    assert columns["vote"].tolist() == np.asarray(classes)[vote(probs)].tolist()
    assert columns["labels_eq7"].tolist() == [";".join(np.asarray(classes)[m]) for m in multilabel(probs)]
    for i, layer in enumerate(LAYERS):
        np.testing.assert_array_equal(columns[f"conf_{layer}"], probs[:, i].max(axis=-1))


@pytest.mark.parametrize("command, tables", [("bias", ("bias_videos.csv", "bias_categories.csv",
                                                       "bias_summary.json")),
                                             ("predict", ("predictions.csv",)),
                                             ("missing-labels", ("missing_labels.csv", "confusions.csv"))])
def test_an_audit_in_blocks_of_three_rows_writes_the_tables_of_one_block(planted, tiny_model, tmp_path, monkeypatch,
                                                                         command, tables):
    assert invoke(command, planted, "--model", tiny_model, "--out", tmp_path / "one").exit_code == 0
    monkeypatch.setenv("AVAUDIT_BLOCK_ROWS", "3")
    assert invoke(command, planted, "--model", tiny_model, "--out", tmp_path / "three").exit_code == 0
    for name in tables:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "three" / name).read_bytes(), name
    record = yaml.safe_load((tmp_path / "three" / f"{command.replace('-', '_')}_run.yaml").read_text())
    assert record["n_rows"] > 3 * 3 and os.environ["AVAUDIT_BLOCK_ROWS"] == "3"  # more than three blocks
