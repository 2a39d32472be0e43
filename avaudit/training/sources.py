"""Where the training clips come from: decoded by worker processes while the network trains, or
kept in memory after a first decode; and the rows that did not decode.
"""
from __future__ import annotations

import os
from typing import Iterator

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from avaudit.config import Config, ModelConfig
from avaudit.device import worker_context
from avaudit.media.dataset import ClipDataset, ClipItem, collate
from avaudit.media.workers import decode_batches
from avaudit.training.stages import Stage


def clip_bytes(model: ModelConfig) -> int:
    """Bytes one decoded clip takes in memory (config.ModelConfig.clip_bytes)."""
    return model.clip_bytes


class Skipped:
    """Rows that did not decode: they leave every later batch, and end in skipped.csv."""

    def __init__(self, n_rows: int):
        self.bad = np.zeros(n_rows, bool)
        self.why: dict[int, tuple[str, str]] = {}

    def add(self, row: int, reason: str, detail: str) -> None:
        if not self.bad[row]:
            self.bad[row] = True
            self.why[int(row)] = (str(reason), str(detail))  # plain str: a Skip enum would not load weights_only

    def rows(self) -> list:
        return [[row, *self.why[row]] for row in sorted(self.why)]

    def merge(self, rows: list) -> None:
        for row, reason, detail in rows:
            self.add(int(row), reason, detail)

    def gather(self) -> None:
        """Every rank learns the rows the others found bad."""
        if dist.is_initialized():
            every = [None] * dist.get_world_size()
            dist.all_gather_object(every, self.rows())
            for rows in every:
                self.merge(rows)


class _RowSubset(Dataset):
    """The rows one pass decodes, as a dataset of their own for media.workers.decode_batches (which
    isolates decoder crashes): item k is row rows[k] of the table, and says k (decode_batches keeps
    count by position); the caller maps it back."""

    def __init__(self, dataset: ClipDataset, rows: np.ndarray):
        self.dataset, self.rows = dataset, np.asarray(rows, dtype=np.int64)
        self.time_limit = dataset.time_limit

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, k: int) -> ClipItem:
        return self.dataset[int(self.rows[k])]._replace(index=k)

    def empty_item(self, k: int, reason: str = "", detail: str = "") -> ClipItem:
        return self.dataset.empty_item(int(self.rows[k]), reason, detail)._replace(index=k)

    def crashed(self, k: int, how: str) -> ClipItem:
        return self.dataset.crashed(int(self.rows[k]), how)._replace(index=k)

    def name(self, k: int) -> str:
        """How decode_batches names item k's video in a timeout's detail (ClipDataset.name)."""
        return self.dataset.name(int(self.rows[k]))


def _items(items: list[ClipItem]) -> list[ClipItem]:
    """collate_fn that leaves the items as they are: the caller batches them (a function: picklable)."""
    return items


def collate_rows(items: list[ClipItem]) -> dict:
    """An audit's batch (inference.run.collate) with the rows that decoded as an int64 array."""
    batch = collate(items)
    batch["rows"] = np.array(batch.pop("index"), dtype=np.int64)
    return batch


class Memory:
    """Decoded clips kept for later epochs: one array per input, a slot per row it may hold.

    torch.empty maps its pages lazily, so memory grows as rows are first decoded into it."""

    def __init__(self, rows: np.ndarray, n_rows: int, model: ModelConfig):
        self.slot = np.full(n_rows, -1, np.int64)
        self.slot[rows] = np.arange(len(rows))
        self.have = np.zeros(n_rows, bool)
        n = len(rows)
        self.frames = torch.empty(n, model.steps, model.crop, model.crop, 3, dtype=torch.uint8)
        self.audio = torch.empty(n, model.n_samples)
        self.onsets = torch.empty(n, model.steps, dtype=torch.bool)

    def store(self, batch: dict) -> None:
        if len(batch["rows"]):
            slots = torch.as_tensor(self.slot[batch["rows"]])
            for key in ("frames", "audio", "onsets"):
                getattr(self, key)[slots] = batch[key]
            self.have[batch["rows"]] = True

    def take(self, rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        slots = torch.as_tensor(self.slot[rows])
        return self.frames[slots], self.audio[slots], self.onsets[slots]


class ClipSource:
    """Decoded batches of table rows, from decoding worker processes (and, in memory mode, from Memory).

    One source decodes one set of inputs: a streaming stage's own (`stage.use_video/use_audio`,
    onsets only where every input is used), or all of them when `memory` keeps them for every stage.
    Each pass (an epoch's training batches, a validation) is one media.workers.decode_batches over its
    rows, so a decoder that crashes costs its clip (`decoder crashed`), not the run.
    """

    def __init__(self, table: pd.DataFrame, model: ModelConfig, *, stage: Stage, workers: int,
                 skipped: Skipped, memory: Memory | None, batch_size: int, decoder: str = "pyav"):
        everything = memory is not None or (stage.use_video and stage.use_audio)
        stored = "member" in table  # rows inside WebDataset shards or Parquet files (media/sources.py)
        self.dataset = ClipDataset(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy(),
                                   config=model, video=memory is not None or stage.use_video,
                                   sound=memory is not None or stage.use_audio, onsets=everything,
                                   members=[table[c].to_numpy() for c in ("member", "offset", "size")] if stored
                                   else None, decoder=decoder)
        self.workers, self.batch_size = max(1, workers), batch_size  # decoding never in this process
        self.skipped, self.memory, self.model = skipped, memory, model

    def _decoded(self, rows: np.ndarray) -> Iterator[ClipItem]:
        """The items of `rows` (index: the table row), in order but after a decoder crash."""
        for chunk in decode_batches(_RowSubset(self.dataset, rows), batch_size=self.batch_size, workers=self.workers,
                                    collate_fn=_items, context=worker_context()):
            for item in chunk:
                yield item._replace(index=int(rows[item.index]))

    def batches(self, row_batches: list[np.ndarray]) -> Iterator[dict]:
        """One decoded batch per entry of `row_batches`, in order: `rows` that decoded (known bad
        rows left out), their `frames`, `audio`, `onsets` (empty where not decoded)."""
        wanted = [rows[~self.skipped.bad[rows]] for rows in row_batches]
        need = [rows if self.memory is None else rows[~self.memory.have[rows]] for rows in wanted]
        everything = np.concatenate(need) if need else np.zeros(0, np.int64)
        decoded = self._decoded(everything) if len(everything) else iter(())
        arrived: dict[int, ClipItem] = {}  # rows decoded ahead of their batch (after a crash, out of order)
        for rows, asked in zip(wanted, need):
            while any(int(row) not in arrived for row in asked):
                item = next(decoded)
                arrived[item.index] = item
            batch = collate_rows([arrived.pop(int(row)) for row in asked])
            for row, reason, detail in batch["failed"]:
                self.skipped.add(row, reason, detail)
            if self.memory is not None:
                self.memory.store(batch)
                rows = rows[~self.skipped.bad[rows]]
                batch = {"rows": rows, "failed": batch["failed"],
                         **dict(zip(("frames", "audio", "onsets"), self.memory.take(rows)))}
            yield batch


def inputs_on(batch: dict, model: ModelConfig, device: torch.device, stage: Stage):
    """(frames, audio, onsets) on the device, as the stage uses them. An input the stage does not use
    goes as an empty or zero tensor, whether or not it was decoded: the network never reads frames
    or sound of a modality the stage zeroes, and onsets feed only the onset layer, which only the
    joint stage trains and measures."""
    n = len(batch["rows"])
    if stage.use_video and batch.get("frames") is not None:
        frames = batch["frames"]
    else:
        frames = torch.zeros(n, 0, model.crop, model.crop, 3, dtype=torch.uint8)
    audio = batch["audio"] if stage.use_audio and batch.get("audio") is not None else torch.zeros(n, 0)
    if stage.use_video and stage.use_audio and batch.get("onsets") is not None:
        onsets = batch["onsets"]
    else:
        onsets = torch.zeros(n, model.steps, dtype=torch.bool)
    return (frames.to(device, non_blocking=True), audio.to(device, non_blocking=True),
            onsets.to(device, non_blocking=True))


def memory_mode(n_rows: int, config: Config) -> tuple[bool, str]:
    """Whether the decoded clips are kept after their first decode, and a sentence saying why."""
    per_clip = clip_bytes(config.model)
    ranks_here = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    need = n_rows * per_clip * ranks_here
    budget = config.train.memory_budget * 2**30
    held = (f"{n_rows:,} clips x {per_clip / 2**20:.2f} MiB" + (f" x {ranks_here} ranks" if ranks_here > 1 else "")
            + f" = {need / 2**30:.2f} GiB")
    if need <= budget:
        return True, (f"decoded clips kept in memory after the first epoch: {held}, within the memory budget "
                      f"of {config.train.memory_budget:g} GiB")
    return False, (f"streaming: {held} is over the memory budget of {config.train.memory_budget:g} GiB, so "
                   f"every epoch decodes its clips while the network trains (the audio stage no frames, "
                   f"the video stage no sound)")
