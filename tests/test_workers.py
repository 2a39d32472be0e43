"""A decoding process that dies (segfault, abort, out-of-memory kill) costs its one clip, never the run.

The decoder is replaced, in this process, by one that kills the process decoding one named file;
workers and the isolated re-decode are forked, so they inherit the replacement.
"""
import ctypes
import os
import re
import signal
import time
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pytest
import torch
from cli_helpers import cli

from avaudit.media.dataset import ClipDataset
from avaudit.vocab import Skip

CRASHES = {
    "SIGSEGV": lambda: ctypes.string_at(0),  # a real segfault: reading address 0
    "SIGABRT": os.abort,
    "SIGKILL": lambda: os.kill(os.getpid(), signal.SIGKILL),  # what the out-of-memory killer sends
}


pytestmark = pytest.mark.usefixtures("cache")  # every clip decoded in every test, none read from another's cache


@pytest.fixture
def crash_on(monkeypatch):
    """crash_on(name, signal_name): decoding the file called `name` dies by that signal."""
    from avaudit.media import dataset

    real = dataset.decode_clip

    def arm(name: str, how: str) -> None:
        def decode_clip(path, **options):
            if Path(path).name == name:
                CRASHES[how]()
            return real(path, **options)

        monkeypatch.setattr(dataset, "decode_clip", decode_clip)

    return arm


def bias(data, model, out, workers: int):
    return cli("bias", data, "--model", model, "--out", out, "--device", "cpu", "--workers", workers,
               "--batch-size", "4")


def victim(planted: Path) -> Path:
    return sorted(planted.glob("*/*.mp4"))[5]


def check_one_crash(result, out: Path, crashed: Path, how: str, n_videos: int) -> None:
    assert result.exit_code == 1, result.output
    skipped = pd.read_csv(out / "bias_skipped.csv", keep_default_na=False)
    assert skipped[["path", "reason", "detail"]].values.tolist() == [
        [str(crashed), "decoder crashed", f"{crashed}: the decoding process was killed by {how}"]]
    videos = pd.read_csv(out / "bias_videos.csv", keep_default_na=False)
    assert videos["video_id"].nunique() == n_videos - 1  # every other clip audited
    assert skipped["video_id"].iat[0] not in set(videos["video_id"])


@pytest.mark.slow
@pytest.mark.parametrize("how,workers", [("SIGSEGV", 2), ("SIGABRT", 2), ("SIGKILL", 2), ("SIGSEGV", 0)])
def test_a_dying_decoder_costs_one_clip(how, workers, planted, tiny_model, crash_on, tmp_path):
    crashed = victim(planted)
    crash_on(crashed.name, how)
    result = bias(planted, tiny_model, tmp_path / "out", workers)
    check_one_crash(result, tmp_path / "out", crashed, how, n_videos=len(list(planted.glob("*/*.mp4"))))
    assert "1 of 36 videos skipped" in result.output


@pytest.mark.slow
def test_a_rerun_reads_the_others_from_the_cache_and_skips_the_crash_again(planted, tiny_model, crash_on,
                                                                          tmp_path):
    crashed = victim(planted)
    crash_on(crashed.name, "SIGSEGV")
    first = bias(planted, tiny_model, tmp_path / "first", 2)
    check_one_crash(first, tmp_path / "first", crashed, "SIGSEGV", n_videos=36)
    again = bias(planted, tiny_model, tmp_path / "again", 2)
    check_one_crash(again, tmp_path / "again", crashed, "SIGSEGV", n_videos=36)
    assert re.search(r"\b35 of 36 videos read from the cache", again.output), again.output
    for name in ("bias_videos.csv", "bias_categories.csv", "bias_skipped.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "first" / name).read_bytes(), name


@pytest.mark.slow
def test_a_clip_that_decodes_alone_after_its_worker_died_is_audited(planted, tiny_config, monkeypatch, tmp_path):
    """An out-of-memory kill among many workers may not recur alone: then the clip is no crash."""
    from avaudit.media import dataset as dataset_module
    from avaudit.media.dataset import ClipDataset, collate
    from avaudit.media.workers import decode_batches

    paths = [str(p) for p in sorted(planted.glob("*/*.mp4"))[:6]]
    real = dataset_module.decode_clip
    killed = tmp_path / "killed"

    def decode_clip(path, **options):  # the first process to decode clip 3 is killed, no later one
        if path == paths[3] and not killed.exists():
            killed.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return real(path, **options)

    monkeypatch.setattr(dataset_module, "decode_clip", decode_clip)
    clips = ClipDataset(paths, config=tiny_config.model)
    batches = list(decode_batches(clips, batch_size=2, workers=2, collate_fn=collate))
    assert killed.exists()
    assert sorted(i for b in batches for i in b["index"]) == list(range(6))  # each once, none failed
    assert [f for b in batches for f in b["failed"]] == []


class SegfaultOn(ClipDataset):
    """Decoding the file named `victim` segfaults, in any process: a class a forkserver can unpickle."""

    victim = ""

    def decode(self, index: int, source=None):
        if Path(self.paths[index]).name == self.victim:
            ctypes.string_at(0)
        return super().decode(index, source)


@pytest.mark.slow
def test_forkserver_workers_as_on_a_gpu_lose_only_the_crashed_clip(planted, tiny_config):
    """Once CUDA is initialised, workers and the isolated decode start by forkserver (device.worker_context)."""
    from avaudit.media.dataset import collate
    from avaudit.media.workers import decode_batches

    paths = sorted(planted.glob("*/*.mp4"))[:6]
    clips = SegfaultOn([str(p) for p in paths], config=tiny_config.model)
    clips.victim = paths[2].name  # an instance attribute travels with the pickled dataset
    batches = list(decode_batches(clips, batch_size=2, workers=2, collate_fn=collate, context="forkserver"))
    assert [f for b in batches for f in b["failed"]] == [
        (2, "decoder crashed", f"{paths[2]}: the decoding process was killed by SIGSEGV")]
    assert sorted(i for b in batches for i in b["index"]) == [0, 1, 3, 4, 5]


class Numbered:
    """Rows that decode to a small tensor each, with ClipDataset's ways to name a lost row."""

    time_limit = 5.0

    def __init__(self, n: int):
        self.paths = [f"clip{i}.mp4" for i in range(n)]

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index: int):
        return Item(index, torch.full((4, 8), float(index)))

    def empty_item(self, index: int, reason: str, detail: str):
        return Item(index, None, reason, detail)

    def crashed(self, index: int, how: str):
        return self.empty_item(index, Skip.decoder_crashed, f"{self.paths[index]}: the decoding process {how}")


class Item(NamedTuple):
    index: int
    frames: torch.Tensor | None
    reason: str = ""
    detail: str = ""


def stack(items: list[Item]) -> dict:
    good = [item for item in items if not item.reason]
    return {"index": [item.index for item in good], "failed": [(i.index, i.reason) for i in items if i.reason],
            "frames": torch.stack([item.frames for item in good]) if good else None}


def test_a_worker_killed_while_its_batch_is_in_transfer_costs_the_batch_not_the_run(monkeypatch, tmp_path):
    """The unlucky moment: a worker has handed its batch over, and the main process is receiving the
    tensors' file descriptors from it, when it is killed. The transfer breaks (EOFError) while the worker
    still looks alive to torch, which re-raises the EOFError: the run ended with no outputs. The kill
    is stretched in time to make the moment certain: the worker closes the transfer, then is killed
    0.3 s later, as the kernel would have done between closing its files and reporting it dead."""
    from multiprocessing import reduction

    from avaudit.media.workers import decode_batches

    fired = tmp_path / "fired"
    real = reduction.send_handle

    def send_handle(conn, handle, destination_pid):  # runs in the workers (forked: they inherit it)
        if os.getpid() != parent and not fired.exists():
            fired.touch()
            conn.close()
            time.sleep(0.3)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(conn, handle, destination_pid)

    parent = os.getpid()
    monkeypatch.setattr(reduction, "send_handle", send_handle)
    batches = list(decode_batches(Numbered(12), batch_size=2, workers=2, collate_fn=stack, context="fork"))
    assert fired.exists()
    rows = [i for batch in batches for i in batch["index"]]
    assert sorted(rows) == list(range(12)) and [f for b in batches for f in b["failed"]] == []
    for batch in batches:
        assert batch["frames"][:, 0, 0].tolist() == [float(i) for i in batch["index"]]


class FailsOn(Numbered):
    def __getitem__(self, index: int):
        if index == 3:
            raise OSError(5, "the dataset's own error")
        return super().__getitem__(index)


def test_an_error_of_the_dataset_is_raised_not_taken_for_a_dead_worker(monkeypatch):
    from avaudit.media import workers

    monkeypatch.setattr(workers, "WORKER_EXIT_WAIT_S", 0.2)  # no worker dies: no need to wait long for one
    with pytest.raises(OSError, match="the dataset's own error"):
        list(workers.decode_batches(FailsOn(6), batch_size=2, workers=2, collate_fn=stack, context="fork"))
