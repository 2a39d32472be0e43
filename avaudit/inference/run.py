"""Batched inference: DataLoader workers decode while the model runs; five-layer logits out.

A decoding process that dies costs its one clip (`decoder crashed`, media/workers.py), never the run.

Only the clips the cache lacks come here (avaudit.logits), so only they import torch.
"""
from __future__ import annotations

import time
from typing import Callable

import numpy as np
import pandas as pd
import torch

from avaudit.config import Config
from avaudit.device import CoreShare, autocast, default_workers, worker_context
from avaudit.media.dataset import ClipDataset, collate
from avaudit.media.manifests import skipped_table
from avaudit.media.workers import decode_batches
from avaudit.vocab import LAYERS, Skip


def fill(inputs: torch.Tensor, size: int) -> torch.Tensor:
    """`inputs` with blank clips (zeros) appended up to `size`: the network always runs on the same
    shape, so a clip's logits never depend on how many others decoded beside it (a skipped clip, the
    last batch, the rows a resumed run still had to do). Their results are dropped."""
    missing = size - len(inputs)
    return torch.cat([inputs, inputs.new_zeros((missing, *inputs.shape[1:]))]) if missing > 0 else inputs


@torch.no_grad()
def run_model(table: pd.DataFrame, model, config: Config, *, device: torch.device, batch_size: int = 8,
              workers: int | None = None, on_event: Callable[[str, dict], None] | None = None,
              on_batch: Callable[[np.ndarray, np.ndarray, np.ndarray, dict], None] | None = None,
              no_audio: str = "skip", decoder: str = "pyav",
              quality: bool = False) -> tuple[np.ndarray, np.ndarray, pd.DataFrame, dict]:
    """Logits (N, 5, C) float32, all finite, for the rows of `table` (NaN rows where a clip was skipped:
    it did not decode, or the network's output for it was not finite, `non-finite output`), the
    seconds of real content in each row's window (N,), the skipped rows indexed by their
    position in `table`, and with `quality` each clip's quality arrays (media.dataset.measure_quality:
    name -> (N, ...), NaN or zero rows where skipped; {} without).

    on_batch(row positions, their logits, their seconds, their quality arrays) sees every finished batch
    (the cache writes them). The network always runs on `batch_size` clips (fill): results depend on the
    batch size, not on the batch.
    """
    on_event = on_event or (lambda kind, info: None)
    workers = default_workers() if workers is None else workers
    stored = "member" in table  # rows inside shard files (media/sources.py)
    dataset = ClipDataset(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy(),
                          config=config.model, no_audio=no_audio, decoder=decoder, quality=quality,
                          members=[table[c].to_numpy() for c in ("member", "offset", "size")] if stored else None)
    # decode_batches decodes in one process for workers=0 too (a crash costs one clip); the network
    # then keeps every core, as a run without workers should, and its results do not vary with them.
    loader = decode_batches(dataset, batch_size=batch_size, workers=workers, collate_fn=collate,
                            pin_memory=device.type == "cuda", context=worker_context())
    n_classes = model.heads[LAYERS[0]].out_features
    logits = np.full((len(table), len(LAYERS), n_classes), np.nan, np.float32)
    seconds = np.full(len(table), np.nan, np.float32)
    measured: dict[str, np.ndarray] = {}
    skipped = []
    model.eval()
    on_event("start", {"total": len(table)})
    cores = CoreShare(device=device, workers=workers)
    try:
        for batch in loader:
            for index, reason, detail in batch["failed"]:
                skipped.append((int(index), table["video_id"].iat[index], table["path"].iat[index], reason, detail))
            started = time.process_time()
            rows = np.asarray(batch["index"], dtype=np.int64)
            if len(rows):
                inputs = [fill(batch[key], batch_size).to(device, non_blocking=True)
                          for key in ("frames", "audio", "onsets")]
                with autocast(device):
                    out = model(*inputs)[: len(rows)].float().cpu().numpy()
                finite = np.isfinite(out).all(axis=(1, 2))
                for index in rows[~finite]:
                    skipped.append((int(index), table["video_id"].iat[index], table["path"].iat[index], Skip.non_finite,
                                    f"{table['path'].iat[index]}: the network's output holds NaN or infinity (the "
                                    f"clip's sound or frames hold values the network cannot take)"))
                rows = rows[finite]
                logits[rows], seconds[rows] = out[finite], np.asarray(batch["seconds"], np.float32)[finite]
                for name, values in batch["quality"].items():
                    if name not in measured:
                        measured[name] = np.zeros((len(table), *values.shape[1:]), values.dtype)
                        measured[name][:] = np.nan if values.dtype.kind == "f" else 0
                    measured[name][rows] = values[finite]
            cores.update(batch["cpu_s"], time.process_time() - started)
            if len(rows) and on_batch is not None:
                on_batch(rows, logits[rows], seconds[rows], {name: values[rows] for name, values in measured.items()})
            on_event("advance", {"n": len(batch["index"]) + len(batch["failed"])})
    finally:
        cores.restore()
    return logits, seconds, skipped_table(skipped), measured
