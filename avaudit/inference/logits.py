"""Every row's five-layer logits: read from the cache, or decoded and run and added to it.

Torch is imported only when some clip is not in the cache, so a re-audit of cached data starts
and finishes in the time its tables take (benchmarks/cached_reaudit.py).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from avaudit.inference.blocks import Where
from avaudit.inference.cache import LogitCache, clip_key_bytes, default_cache_dir, model_fingerprint
from avaudit.media.manifests import skipped_table
from avaudit.outputs import atomic_write_text

CHECKPOINT_FIELDS = ("format", "config", "classes", "temperatures")  # what an audit reads besides weights


def signals_enabled() -> bool:
    """Whether audits measure each clip's quality signals as they decode it: always, but for
    benchmarks/quality_overhead.py, which sets AVAUDIT_SIGNALS=0 to time the audit without them."""
    return os.environ.get("AVAUDIT_SIGNALS", "1") != "0"


def quality_arrays() -> dict[str, tuple[tuple[int, ...], type]]:
    """The per-clip quality arrays an audit measures (media.dataset.measure_quality) and caches with the
    logits: name -> (shape of one clip's, dtype)."""
    from avaudit.media.digest import DIGEST_BYTES
    from avaudit.quality.signals import SIGNAL_NAMES, SIGNATURE_BYTES

    return {"signals": ((len(SIGNAL_NAMES),), np.float32), "signatures": ((SIGNATURE_BYTES,), np.uint8),
            "digests": ((DIGEST_BYTES,), np.uint8)}


def checkpoint_info(model_path: Path, cache_dir: Path | None = None) -> dict:
    """The checkpoint's fields an audit needs, without its weights.

    Loaded and checked once per model (avaudit.checkpoint.load_checkpoint, which imports torch)
    and kept beside the model's cache entries, under the fingerprint of its bytes; later audits of
    the same file read them back. Always the JSON round trip, so the first run and later ones
    write the same run.yaml.
    """
    from avaudit.model.checkpoint import check_fields, require_file

    model_path = require_file(model_path)
    saved = Path(cache_dir or default_cache_dir()) / model_fingerprint(model_path) / "checkpoint.json"
    try:
        fields = json.loads(saved.read_text())
        check_fields(fields, model_path)  # a copy that was changed by hand is read again from the model
        return fields
    except (OSError, ValueError, AttributeError):  # AttributeError: JSON that is not a mapping
        pass
    from avaudit.model.checkpoint import load_checkpoint

    data = load_checkpoint(model_path)
    text = json.dumps({key: data[key] for key in CHECKPOINT_FIELDS if key in data})
    try:
        atomic_write_text(saved, text)
    except OSError:
        pass  # a read-only cache costs the next run a torch import, nothing else
    return json.loads(text)


def logits_fingerprint(model_path, *, no_audio: str = "skip", decoder: str = "pyav") -> str:
    """The cache's name for the logits of this checkpoint: clips read with silence in place of a missing
    track, or whose frames another decoder decoded, are cached apart."""
    return model_fingerprint(model_path) + f"-{decoder}" + ("-silence" if no_audio == "silence" else "")


class RowLogits:
    """Each manifest row's five-layer logits, read from the cache a block of rows at a time (`read`), never all
    at once unless asked (`everything`): the cache's index says where each row's entry lies; the few rows that
    decoded but have no entry (no file identity to key them by) are kept here."""

    def __init__(self, cache: LogitCache, where: Where, kept: dict[int, np.ndarray]) -> None:
        self.cache, self.where = cache, where
        self._kept_rows = np.fromiter(sorted(kept), np.int64, len(kept))
        self._kept = np.stack([kept[row] for row in self._kept_rows]) if kept else None
        self.decoded = where.found.copy()  # (N,) bool: the rows with logits
        self.decoded[self._kept_rows] = True

    def __len__(self) -> int:
        return len(self.where)

    def read(self, positions: np.ndarray) -> np.ndarray:
        """Logits (n, 5, C) float32 of the rows at `positions` (any order, repeats allowed), NaN where skipped."""
        positions = np.asarray(positions, np.int64)
        logits = self.cache.read(self.where[positions])
        if self._kept is not None:
            at = np.searchsorted(self._kept_rows, positions)
            hit = np.flatnonzero(self._kept_rows[np.minimum(at, len(self._kept_rows) - 1)] == positions)
            logits[hit] = self._kept[at[hit]]
        return logits

    def everything(self) -> np.ndarray:
        """Logits (N, 5, C) of every row: for small data and tests; an audit reads blocks."""
        return self.read(np.arange(len(self)))


def infer_logits(table: pd.DataFrame, model_path, checkpoint: dict, *, device: str, batch_size: int = 8,
                 workers: int | None = None, cache_dir=None, on_event: Callable[[str, dict], None] | None = None,
                 no_audio: str = "skip",
                 decoder: str = "pyav") -> tuple[RowLogits, np.ndarray, pd.DataFrame, int, dict]:
    """Logits of every row: cached ones read back, the rest decoded, run and added to the cache.

    The cache lives outside DATA (`cache_dir`, default the user's cache directory) under the
    checkpoint's fingerprint, keyed by each file's identity and window; entries are appended per
    batch, so an interrupted run resumes where it stopped. Returns the logits (RowLogits: read a block
    of rows at a time), the seconds of
    real content in each window (N,), skipped rows, how many rows came from the cache, and each row's
    quality arrays (quality_arrays(): name -> (N, ...), NaN or zero where skipped), measured in the same decode
    and cached with the logits. An entry cached without them (an older version) is decoded again, once.
    """

    n_classes = len(checkpoint["classes"])
    fingerprint = logits_fingerprint(model_path, no_audio=no_audio, decoder=decoder)
    cache = LogitCache(Path(cache_dir or default_cache_dir()), fingerprint, n_classes=n_classes,
                       source=str(Path(model_path).resolve()))
    keys = clip_key_bytes(table["path"], table["start"].to_numpy(), table["end"].to_numpy(),  # text: a block at a time
                          members=table["member"] if "member" in table else None,
                          offsets=table["offset"].to_numpy() if "offset" in table else None)
    where = cache.locate(keys)
    found, seconds = where.found.copy(), cache.read(where, "seconds")
    measure = signals_enabled()
    quality = cached_quality(cache, where) if measure else {}
    for known, _ in quality.values():
        found &= known
    quality = {name: values for name, (_, values) in quality.items()}
    todo = np.flatnonzero(~found)
    # A clip the manifest lists more than once (under new ids, once per label) is decoded once.
    repeat = pd.Index(keys[todo]).duplicated() & (keys[todo] != b"")
    once, copies = todo[~repeat], todo[repeat]
    skipped, kept = skipped_table([]), {}
    if len(once):
        from avaudit.device import pick_device
        from avaudit.inference.run import run_model
        from avaudit.model.checkpoint import load_network

        dev = pick_device(device)
        model, _, config, _ = load_network(model_path, device=dev)
        new, new_seconds, skipped, new_quality = run_model(
            table.iloc[once], model, config, device=dev, batch_size=batch_size, workers=workers,
            on_event=on_event, no_audio=no_audio, decoder=decoder, quality=measure,
            on_batch=lambda rows, out, secs, arrays: cache.add(keys[once[rows]], out, secs, **arrays))  # key known
        seconds[once] = new_seconds
        for name, values in new_quality.items():
            quality[name][once] = values
        skipped.index = once[skipped.index]
        now = cache.locate(keys[todo])  # the entries just added win
        where.record[todo], where.row[todo] = now.record, now.row
        unkeyed = np.flatnonzero(~where.found[once] & np.isfinite(new).all(axis=(1, 2)))
        kept = {int(once[i]): new[i] for i in unkeyed}  # decoded, but no file identity to cache them by
    if len(copies):
        shared = share_with_copies(table, keys, once, copies, (seconds, *quality.values()), skipped)
        skipped = pd.concat([skipped, shared]).sort_index()
    where.record[np.asarray(skipped.index, np.int64)] = -1  # a row decoded again that failed this time is skipped
    cache.release_keys()  # every row located: the audit reads them by place
    return RowLogits(cache, where, kept), seconds, skipped.reset_index(drop=True), int(found.sum()), quality


def cached_quality(cache: LogitCache, where: Where) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each quality array (quality_arrays()) of the located entries `where` as the cache holds it: name -> (known
    (N,), values (N, ...)), values NaN or zero where unknown; a key is known only with the shape this version
    measures."""
    arrays = {}
    for name, (shape, dtype) in quality_arrays().items():
        known, values = cache.lookup_extra_at(where, name)
        if values is None or values.shape[1:] != shape:
            known, values = np.zeros(len(where), bool), np.zeros((len(where), *shape), dtype)
        values = values.astype(dtype, copy=False)
        if values.dtype.kind == "f":
            values[~known] = np.nan
        arrays[name] = (known, values)
    return arrays


def share_with_copies(table: pd.DataFrame, keys: np.ndarray, once: np.ndarray, copies: np.ndarray,
                      arrays: tuple[np.ndarray, ...], skipped: pd.DataFrame) -> pd.DataFrame:
    """Give each repeated row its first copy's rows of `arrays` (seconds, quality arrays; its logits are its first
    copy's cache entry), or its skip reason; returns the repeats' skipped rows."""
    named = keys[once] != b""  # keyless rows are never repeats: each fails on its own
    source = pd.Series(once[named], index=keys[once][named]).loc[keys[copies]].to_numpy()
    for array in arrays:
        array[copies] = array[source]
    failed = np.isin(source, skipped.index)
    reasons = skipped.loc[source[failed], ["reason", "detail"]].to_numpy()
    rows = copies[failed]
    return skipped_table([(row, table["video_id"].iat[row], table["path"].iat[row], *reason)
                          for row, reason in zip(rows, reasons)])
