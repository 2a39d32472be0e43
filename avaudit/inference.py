"""Batched inference: DataLoader workers decode while the model runs; five-layer logits out."""
from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from .config import LAYERS, Config
from .data import ClipDataset, worker_context
from .train import autocast

SKIPPED_COLUMNS = ["video_id", "path", "reason", "detail"]


def collate(items: list[dict]) -> dict:
    """Stack the clips that decoded; keep the failures' reasons beside them."""
    good = [item for item in items if not item["reason"]]
    batch = {"failed": [(item["index"], item["reason"], item["detail"]) for item in items if item["reason"]],
             "index": [item["index"] for item in good]}
    for key in ("frames", "audio", "onsets"):
        batch[key] = torch.stack([item[key] for item in good]) if good else None
    return batch


@torch.no_grad()
def run_model(table: pd.DataFrame, model, config: Config, *, device: torch.device, batch_size: int = 8,
              workers: int = 2, on_event: Callable[[str, dict], None] | None = None
              ) -> tuple[np.ndarray, pd.DataFrame]:
    """Logits (N, 5, C) float32 for the rows of `table` (NaN rows where a clip was skipped)."""
    on_event = on_event or (lambda kind, info: None)
    dataset = ClipDataset(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy(),
                          config=config.model)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate,
                        pin_memory=device.type == "cuda",
                        multiprocessing_context=worker_context() if workers else None)
    n_classes = model.heads[LAYERS[0]].out_features
    logits = np.full((len(table), len(LAYERS), n_classes), np.nan, np.float32)
    skipped = []
    model.eval()
    on_event("start", {"total": len(table)})
    for batch in loader:
        for index, reason, detail in batch["failed"]:
            skipped.append((table["video_id"].iat[index], table["path"].iat[index], reason, detail))
        if batch["index"]:
            inputs = [batch[key].to(device, non_blocking=True) for key in ("frames", "audio", "onsets")]
            with autocast(device):
                logits[batch["index"]] = model(*inputs).float().cpu().numpy()
        on_event("advance", {"n": len(batch["index"]) + len(batch["failed"])})
    return logits, pd.DataFrame(skipped, columns=SKIPPED_COLUMNS)
