"""The training recipe of section 4.2: audio backbone, then video backbone, then all five layers.

Single process:  avaudit train DATA --preset small
Several (DDP):   torchrun --nproc_per_node 2 -m avaudit train DATA --preset small
                 (gloo on CPU, NCCL on GPU; add --nnodes/--rdzv-endpoint for several machines)
Every rank decodes the clips once into memory, a DistributedSampler shards each epoch, every rank
scores the whole validation split (so all take the same lr decisions), rank 0 alone writes.
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from avaudit.audits.calibration import calibrated_softmax, fit_temperatures, layer_ece
from avaudit.audits.decisions import softmax, vote
from avaudit.config import Config
from avaudit.device import autocast, init_distributed, pick_device, worker_context
from avaudit.errors import AvauditWarning, UsageError
from avaudit.media.dataset import ClipDataset, first_item
from avaudit.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from avaudit.model.fusion import FusionNet, fusion_loss
from avaudit.vocab import LAYERS, SKIPPED_COLUMNS

VAL_SPLITS = ("val", "valid", "validate", "validation")


@dataclass(frozen=True)
class Stage:
    name: str
    layers: tuple[str, ...]  # whose losses are summed (eq. 5 over these)
    use_video: bool
    use_audio: bool
    metric: str  # validation accuracy that drives the lr schedule


STAGES = (
    Stage("audio", ("audio",), use_video=False, use_audio=True, metric="audio"),
    Stage("video", ("visual",), use_video=True, use_audio=False, metric="visual"),
    Stage("joint", LAYERS, use_video=True, use_audio=True, metric="vote"),
)


@dataclass
class Inputs:
    """Decoded clips held in memory: (N, T, H, W, 3) uint8, (N, samples) float32, (N, T) bool."""
    frames: torch.Tensor
    audio: torch.Tensor
    onsets: torch.Tensor

    def batch(self, index, device):
        index = torch.as_tensor(index)
        return (self.frames[index].to(device, non_blocking=True), self.audio[index].to(device, non_blocking=True),
                self.onsets[index].to(device, non_blocking=True))


def split_train_val(table: pd.DataFrame, *, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the training and validation clips.

    The manifest's split column decides when it names both a training and a validation split;
    otherwise a seeded `fraction` of every category is held out (at least one clip of any
    category with two or more).
    """
    split = table["split"].str.lower().to_numpy() if "split" in table else np.full(len(table), "")
    if (split == "train").any() and np.isin(split, VAL_SPLITS).any():
        return np.flatnonzero(split == "train"), np.flatnonzero(np.isin(split, VAL_SPLITS))
    rng = np.random.default_rng(seed)
    val = []
    for _, rows in sorted(table.groupby("label").indices.items()):
        if len(rows) >= 2:
            val.extend(rng.permutation(rows)[: max(1, int(round(fraction * len(rows))))])
    val = np.sort(np.asarray(val, int))
    return np.setdiff1d(np.arange(len(table)), val), val


def training_labels(labels: pd.Series, *, seed: int) -> pd.Series:
    """One label per clip: multi-label rows (LLP, AVE) get one of theirs at random, as in section 4.2,
    except that a label no clip drew is given to the first clip carrying it whose draw another clip
    shares, so that every class has a clip to learn it from where DATA allows."""
    rng = np.random.default_rng(seed)
    chosen = labels.map(lambda text: (lambda parts: parts[rng.integers(len(parts))])(text.split(";")))
    counts = chosen.value_counts().to_dict()
    for label in training_classes(labels):
        if counts.get(label):
            continue
        for i in np.flatnonzero(labels.str.split(";").map(lambda parts, want=label: want in parts).to_numpy()):
            if counts[chosen.iat[i]] > 1:
                counts[chosen.iat[i]] -= 1
                chosen.iat[i], counts[label] = label, 1
                break
    return chosen


def training_classes(labels: pd.Series) -> list[str]:
    """The classes a model trained on these rows has: every label that appears, multi-label rows included."""
    return sorted(set(";".join(labels.unique()).split(";")) - {""})


def decode_inputs(table: pd.DataFrame, config: Config, *, workers: int,
                  on_event: Callable[[str, dict], None]) -> tuple[Inputs, np.ndarray, pd.DataFrame]:
    """Decode every row once: the inputs, which rows decoded (bool by position), the skipped rows."""
    m = config.model
    dataset = ClipDataset(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy(), config=m)
    frames = torch.zeros(len(table), m.steps, m.crop, m.crop, 3, dtype=torch.uint8)
    audio = torch.zeros(len(table), m.n_samples)
    onsets = torch.zeros(len(table), m.steps, dtype=torch.bool)
    ok = np.ones(len(table), bool)
    skipped = []
    loader = DataLoader(dataset, batch_size=1, num_workers=workers, collate_fn=first_item,
                        multiprocessing_context=worker_context() if workers else None)
    on_event("decode_start", {"total": len(table)})
    for item in loader:
        i = item.index
        if item.reason:
            ok[i] = False
            skipped.append({"video_id": table["video_id"].iat[i], "path": table["path"].iat[i],
                            "reason": item.reason, "detail": item.detail})
        frames[i], audio[i], onsets[i] = item.frames, item.audio, item.onsets
        on_event("decode", {"index": i})
    return Inputs(frames, audio, onsets), ok, pd.DataFrame(skipped, columns=list(SKIPPED_COLUMNS))


@torch.no_grad()
def predict_logits(model: FusionNet, inputs: Inputs, index: np.ndarray, *, device, batch_size: int) -> np.ndarray:
    """(N, 5, C) logits of the clips at `index`, in order."""
    model.eval()
    out = []
    for start in range(0, len(index), batch_size):
        with autocast(device):
            out.append(model(*inputs.batch(index[start : start + batch_size], device)).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(LAYERS), model.heads["audio"].out_features))


def accuracies(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Validation accuracy of every layer's argmax and of the eq. 6 vote."""
    if len(labels) == 0:
        return {name: float("nan") for name in (*LAYERS, "vote")}
    result = {name: float((logits[:, i].argmax(-1) == labels).mean()) for i, name in enumerate(LAYERS)}
    result["vote"] = float((vote(softmax(logits)) == labels).mean())
    return result


def category_accuracies(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """Per category: validation clips and each layer's and the vote's accuracy."""
    rows = []
    for c, name in enumerate(classes):
        mask = labels == c
        if mask.any():
            rows.append({"category": name, "n_val": int(mask.sum()), **accuracies(logits[mask], labels[mask])})
    return pd.DataFrame(rows)


def check_decoded(labels: pd.Series, train_idx: np.ndarray, val_idx: np.ndarray, skipped: pd.DataFrame) -> None:
    """No clip to train on is a UsageError (before any model is written); categories left without a
    validation clip are a warning, since their accuracy (all of it, with no validation clip) is NaN."""
    if not len(train_idx):
        reasons = ", ".join(f"{n} {r}" for r, n in skipped["reason"].value_counts().items())
        raise UsageError(f"no clip to train on: {len(skipped)} of {len(labels)} clips were skipped ({reasons}); "
                         f"no model written")
    missing = sorted(set(labels) - set(labels.iloc[val_idx]))
    if missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        warnings.warn(f"{len(missing)} of {labels.nunique()} categories have no validation clip (one needs 2 or "
                      f"more clips that decode to hold one out): {shown}; their accuracy is not measured (n/a)"
                      + ("; with no validation clip at all, every accuracy is NaN, the learning rate never drops "
                         "and the temperatures stay 1" if not len(val_idx) else ""), AvauditWarning, stacklevel=3)


def train(table: pd.DataFrame, *, config: Config, out: Path, video_weights: Path | None = None,
          device: str = "auto", resume: bool = False,
          on_event: Callable[[str, dict], None] | None = None) -> dict:
    """Run the three-stage recipe on the labelled rows of `table`; returns the final metrics.

    `out` is rewritten (atomically) after every epoch; with `resume`, training continues from it.
    on_event(kind, info) receives progress: decode_start, decode, stage, batch, epoch, done.
    """
    on_event = on_event or (lambda kind, info: None)
    rank, world = init_distributed(device)
    dev = pick_device(device)
    t = config.train
    if (table["labels"] == "").any():
        raise UsageError("every training clip needs a label: DATA has unlabelled rows "
                         "(use a folder of category folders or a labelled manifest)")
    labels_text = training_labels(table["labels"], seed=t.seed)
    classes = training_classes(table["labels"])
    if len(classes) < 2:
        raise UsageError(f"training needs at least two categories; DATA has {len(classes)}")
    labels = np.array(labels_text.map({c: i for i, c in enumerate(classes)}), dtype=np.int64)
    train_idx, val_idx = split_train_val(table.assign(label=labels_text), fraction=t.val_fraction, seed=t.seed)

    torch.manual_seed(t.seed)
    model = FusionNet(config.model, len(classes))
    if video_weights is not None:
        from avaudit.model.backbones import load_video_weights

        load_video_weights(model.video_net, video_weights)
    state = {"stage": 0, "epoch": 0, "optimizer": None, "scheduler": None, "done": False}
    history: list[dict] = []
    if resume and out.exists():
        saved = load_checkpoint(out, preset=config.preset)
        if saved["classes"] != classes:
            raise CheckpointError(f"{out}: trained on other categories; cannot resume on this DATA")
        model.load_state_dict(saved["model"])
        state, history = saved["recipe"], saved["metrics"]["history"]
    model.to(dev)
    if dev.type == "cuda":
        model.video_net.to(memory_format=torch.channels_last_3d)
    wrapped = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
               if world > 1 else model)

    inputs, ok, skipped = decode_inputs(table, config, workers=t.num_workers, on_event=on_event)
    train_idx, val_idx = train_idx[ok[train_idx]], val_idx[ok[val_idx]]
    check_decoded(labels_text, train_idx, val_idx, skipped)
    per_rank = max(1, t.batch_size // world)
    labels_t = torch.as_tensor(labels)

    for stage_index in range(state["stage"], len(STAGES)):
        stage = STAGES[stage_index]
        optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        # "not risen for 3 epochs" -> lr drops on the 3rd; torch counts patience as epochs tolerated.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=t.lr_factor,
                                                               patience=max(0, t.patience - 1))
        if state["optimizer"] is not None and state["stage"] == stage_index:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        first_epoch = state["epoch"] if state["stage"] == stage_index else 0
        sampler = DistributedSampler(train_idx, num_replicas=world, rank=rank, shuffle=True,
                                     seed=t.seed + stage_index)
        n_batches = -(-len(sampler) // per_rank)
        on_event("stage", {"stage": stage.name, "epochs": t.epochs[stage_index], "batches": n_batches,
                           "first_epoch": first_epoch})
        for epoch in range(first_epoch, t.epochs[stage_index]):
            sampler.set_epoch(epoch)
            order = train_idx[np.fromiter(iter(sampler), int)]
            model.train()
            started, losses = time.perf_counter(), []
            for b in range(n_batches):
                index = order[b * per_rank : (b + 1) * per_rank]
                frames, audio, onsets = inputs.batch(index, dev)
                with autocast(dev):
                    logits = wrapped(frames, audio, onsets, use_video=stage.use_video, use_audio=stage.use_audio)
                loss = fusion_loss(logits.float(), labels_t[index].to(dev), stage.layers)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                on_event("batch", {"stage": stage.name, "epoch": epoch, "batch": b, "loss": losses[-1]})
            val_logits = predict_logits(model, inputs, val_idx, device=dev, batch_size=t.batch_size)
            metrics = accuracies(val_logits, labels[val_idx])
            scheduler.step(metrics[stage.metric])
            seconds = time.perf_counter() - started
            record = {"stage": stage.name, "epoch": epoch + 1, "loss": float(np.mean(losses)),
                      "lr": optimizer.param_groups[0]["lr"], "seconds": seconds,
                      "clips_per_second": len(order) / seconds, **{f"val_{k}": v for k, v in metrics.items()}}
            history.append(record)
            last = stage_index == len(STAGES) - 1 and epoch + 1 == t.epochs[stage_index]
            state = {"stage": stage_index if epoch + 1 < t.epochs[stage_index] else stage_index + 1,
                     "epoch": epoch + 1 if epoch + 1 < t.epochs[stage_index] else 0,
                     "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "done": last}
            if state["stage"] != stage_index:  # the next stage starts a fresh optimizer
                state["optimizer"] = state["scheduler"] = None
            if rank == 0:
                save_checkpoint(out, config=config, classes=classes, model_state=model.state_dict(), recipe=state,
                                metrics={"history": history},
                                extra={"val_ids": table["video_id"].to_numpy()[val_idx].tolist()})
            on_event("epoch", record)

    val_logits = predict_logits(model, inputs, val_idx, device=dev, batch_size=t.batch_size)
    # Raw layer confidences are not comparable (the paper's stated limitation): fit one
    # temperature per layer on the validation split, for `--confidence calibrated`.
    temperatures = fit_temperatures(val_logits, labels[val_idx])
    final = {"val": accuracies(val_logits, labels[val_idx]), "n_train": int(len(train_idx)),
             "n_val": int(len(val_idx)), "n_skipped": int(len(skipped)),
             "categories": category_accuracies(val_logits, labels[val_idx], classes).to_dict("records"),
             "val_ece_raw": layer_ece(softmax(val_logits), labels[val_idx]),
             "val_ece_calibrated": layer_ece(calibrated_softmax(val_logits, temperatures), labels[val_idx])}
    if rank == 0:
        save_checkpoint(out, config=config, classes=classes, model_state=model.state_dict(), recipe=state,
                        metrics={"history": history, "final": final},
                        extra={"val_ids": table["video_id"].to_numpy()[val_idx].tolist(),
                               "temperatures": [float(x) for x in temperatures]})
    on_event("done", final)
    if dist.is_initialized():
        dist.barrier()
    return {**final, "skipped": skipped, "classes": classes}


def train_data(data: Path, *, preset: str | Path = "small", out: Path = Path("avaudit-out/train/model.pt"),
          epochs: int | None = None, seed: int | None = None, root: Path | None = None,
          video_weights: Path | None = None, device: str = "auto", resume: bool = False,
          on_event: Callable | None = None) -> dict:
    """Train the network on DATA (section 4.2's three stages) and write the checkpoint `out`.

    Returns the validation metrics; its `skipped` holds the rows of DATA that were not used.
    """
    from avaudit.config import load_config
    from avaudit.media.manifests import read_manifest

    overrides = {}
    if epochs is not None:
        overrides["train.epochs"] = [epochs] * 3
    if seed is not None:
        overrides["train.seed"] = seed
    config = load_config(preset, overrides)
    manifest = read_manifest(Path(data), root=root)
    out = Path(out)
    if out.exists() and not resume:  # every torchrun rank checks, so none waits for one that left
        raise UsageError(f"{out} exists: pass --resume to continue it, or another --out")
    result = train(manifest.table, config=config, out=out, video_weights=video_weights, device=device,
                          resume=resume, on_event=on_event)
    result["skipped"] = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], result["skipped"]], ignore_index=True)
    return result
