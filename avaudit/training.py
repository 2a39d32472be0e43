"""The training recipe of section 4.2: audio backbone, then video backbone, then all five layers.

Single process:  avaudit train DATA --preset small
Several (DDP):   torchrun --nproc_per_node 2 -m avaudit train DATA --preset small
                 (gloo on CPU, NCCL on GPU; add --nnodes/--rdzv-endpoint for several machines)

Worker processes decode the clips while the network trains (media.workers.decode_batches: a decoder
that crashes costs its clip). Every epoch is a seeded permutation
of the training rows (DistributedSampler's), dealt to the ranks in turn, so each rank decodes only
its own share; each stage decodes only the inputs it uses (the audio stage no frames, the video
stage no sound). Where the decoded clips fit `train.memory_budget`, they are kept after their first
decode and later epochs read them from memory; past it, every epoch streams them, and memory does
not grow with the rows. Each rank scores its share of the validation split and the logits are
gathered, so every rank takes the same lr decisions. Rank 0 alone writes: the checkpoint (at every
epoch's end and every `checkpoint_minutes` / `checkpoint_steps` inside one, so `--resume` continues
from the batch it stopped at), `train_history.csv` and `train_curves.png` beside it.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from avaudit.audits.calibration import calibrated_softmax, fit_temperatures, layer_ece
from avaudit.audits.decisions import softmax
from avaudit.config import Config, ModelConfig
from avaudit.device import autocast, default_workers, init_distributed, pick_device
from avaudit.errors import AvauditWarning, UsageError
from avaudit.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from avaudit.model.fusion import FusionNet, fusion_loss
from avaudit.trainset import (
    FINAL,
    STAGES,
    ClipSource,
    Memory,
    Skipped,
    Stage,
    accuracies,
    category_accuracies,
    epoch_order,
    gather_scores,
    inputs_on,
    memory_mode,
    rank_batches,
    split_train_val,
    training_classes,
    training_labels,
)
from avaudit.vocab import LAYERS, SKIPPED_COLUMNS

HISTORY_FILE, CURVES_FILE = "train_history.csv", "train_curves.png"
HISTORY_COLUMNS = ("stage", "epoch", "lr", "loss", *(f"val_{name}" for name in (*LAYERS, "vote")), "seconds",
                   "clips_per_second")


@dataclass
class ResumeState:
    """Where the recipe stands; every checkpoint holds it (as a plain dict: weights_only loads it).

    `--resume` rebuilds the epoch's permutation from the seed, skips the `step` batches already
    trained on, and carries on with the same optimizer, scheduler and generator state, so a run
    that was killed ends with the weights of one that was not.
    """
    stage: int = 0  # index in STAGES of the stage in progress; len(STAGES) once all are done
    epoch: int = 0  # epoch in progress within that stage
    step: int = 0  # batches of that epoch already trained on
    optimizer: dict | None = None  # the stage's SGD state (None: the stage starts a fresh one)
    scheduler: dict | None = None  # its ReduceLROnPlateau state
    loss_sum: float = 0.0  # the epoch's training loss, summed over its finished batches (rank 0)
    loss_batches: int = 0
    seconds: float = 0.0  # seconds the epoch has taken so far (training batches only)
    rng: torch.Tensor | None = None  # torch's CPU generator
    skipped: list = field(default_factory=list)  # [row, reason, detail] of rows that did not decode
    done: bool = False

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict) -> "ResumeState":
        """From a checkpoint's `recipe`; those written before mid-epoch resuming lack the new fields."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@torch.no_grad()
def score(model: FusionNet, source: ClipSource, rows: np.ndarray, *, stage: Stage, device,
          batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows that decoded, their (N, 5, C) logits) for `rows`, in order, with the stage's inputs."""
    model.eval()
    done, out = [], []
    for batch in source.batches([rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]):
        if len(batch["rows"]):
            with autocast(device):
                logits = model(*inputs_on(batch, source.model, device, stage), use_video=stage.use_video,
                               use_audio=stage.use_audio)
            done.append(batch["rows"])
            out.append(logits.float().cpu())
    n_classes = model.heads["audio"].out_features
    return (np.concatenate(done) if done else np.zeros(0, np.int64),
            torch.cat(out).numpy() if out else np.zeros((0, len(LAYERS), n_classes), np.float32))


def check_decoded(labels: pd.Series, train_ok: np.ndarray, val_ok: np.ndarray, skipped: Skipped, *,
                  warn: bool) -> None:
    """No clip to train on is a UsageError (raised before any model is written: after the first epoch
    found every training clip refused); with `warn`, categories left without a validation clip are a
    warning, since their accuracy (all of it, with no validation clip) is NaN."""
    if not len(train_ok):
        reasons = pd.Series([reason for reason, _ in skipped.why.values()]).value_counts()
        raise UsageError(f"no clip to train on: {len(skipped.why)} of {len(labels)} clips were skipped ("
                         + ", ".join(f"{n} {r}" for r, n in reasons.items()) + "); no model written")
    missing = sorted(set(labels) - set(labels.iloc[val_ok]))
    if warn and missing:
        shown = ", ".join(missing[:8]) + (" ..." if len(missing) > 8 else "")
        warnings.warn(f"{len(missing)} of {labels.nunique()} categories have no validation clip (one needs 2 or "
                      f"more clips that decode to hold one out): {shown}; their accuracy is not measured (n/a)"
                      + ("; with no validation clip at all, every accuracy is NaN, the learning rate never drops "
                         "and the temperatures stay 1" if not len(val_ok) else ""), AvauditWarning, stacklevel=3)


class History:
    """One row per finished epoch: kept in the checkpoint, written as train_history.csv and drawn as
    train_curves.png beside it (rank 0)."""

    def __init__(self, out: Path, rows: list[dict]):
        self.out, self.rows = out, rows

    def write(self, *, curves: bool) -> None:
        from avaudit.outputs import write_csv

        frame = pd.DataFrame(self.rows, columns=list(HISTORY_COLUMNS))
        write_csv(frame, self.out.parent / HISTORY_FILE)
        if curves and len(frame):
            from avaudit.plots import train_curves, write_png

            write_png(train_curves(frame), self.out.parent / CURVES_FILE)


def _stage_batches(n_train: int, t, *, stage_index: int, epoch: int, rank: int, world: int) -> list[np.ndarray]:
    per_rank = max(1, t.batch_size // world)
    return rank_batches(epoch_order(n_train, seed=t.seed + stage_index, epoch=epoch), rank=rank, world=world,
                        per_rank=per_rank)


def train(table: pd.DataFrame, *, config: Config, out: Path, video_weights: Path | None = None,
          device: str = "auto", resume: bool = False,
          on_event: Callable[[str, dict], None] | None = None) -> dict:
    """Run the three-stage recipe on the labelled rows of `table`; returns the final metrics.

    `out` is rewritten (atomically) after every epoch and every `checkpoint_minutes` /
    `checkpoint_steps` within one; with `resume`, training continues from the batch it holds.
    on_event(kind, info) receives progress: data, stage, batch, epoch, checkpoint, done.
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
    my_val = val_idx[rank::world]  # each rank scores its share; the logits are gathered

    torch.manual_seed(t.seed)
    model = FusionNet(config.model, len(classes))
    if video_weights is not None:
        from avaudit.model.backbones import load_video_weights

        load_video_weights(model.video_net, video_weights)
    state, history = ResumeState(), History(out, [])
    if resume and out.exists():
        saved = load_checkpoint(out, preset=config.preset)
        if saved["classes"] != classes:
            raise CheckpointError(f"{out}: trained on other categories; cannot resume on this DATA")
        model.load_state_dict(saved["model"])
        state, history.rows = ResumeState.from_dict(saved["recipe"]), saved["metrics"]["history"]
        if state.rng is not None:
            torch.set_rng_state(state.rng)
    model.to(dev)
    if dev.type == "cuda":
        model.video_net.to(memory_format=torch.channels_last_3d)
    wrapped = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
               if world > 1 else model)

    skipped = Skipped(len(table))
    skipped.merge(state.skipped)
    keep, why = memory_mode(len(train_idx) + len(my_val), config)
    on_event("data", {"memory": keep, "note": why})
    memory = Memory(np.concatenate([train_idx, my_val]), len(table), config.model) if keep else None
    sources: dict[Stage, ClipSource] = {}
    workers = default_workers() if t.num_workers is None else t.num_workers

    def source(stage: Stage) -> ClipSource:
        key = FINAL if memory is not None else stage
        if key not in sources:
            sources.clear()  # a streaming stage's workers end with it
            sources[key] = ClipSource(table, config.model, stage=key, workers=workers, skipped=skipped,
                                      memory=memory, batch_size=max(1, t.batch_size // world))
        return sources[key]

    def save(metrics: dict | None = None, extra: dict | None = None) -> None:
        state.rng = torch.get_rng_state()
        state.skipped = skipped.rows()
        save_checkpoint(out, config=config, classes=classes, model_state=model.state_dict(), recipe=state.to_dict(),
                        metrics=metrics or {"history": history.rows},
                        extra={"val_ids": table["video_id"].to_numpy()[val_idx].tolist(), **(extra or {})})

    labels_t = torch.as_tensor(labels)
    last_val = None  # (rows, logits) of the joint stage's last epoch: the final evaluation reuses them
    warned = False  # categories without a validation clip: said once, after the first validation
    for stage_index in range(state.stage, len(STAGES)):
        stage = STAGES[stage_index]
        optimizer = torch.optim.SGD(model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
        # "not risen for 3 epochs" -> lr drops on the 3rd; torch counts patience as epochs tolerated.
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=t.lr_factor,
                                                               patience=max(0, t.patience - 1))
        if state.optimizer is not None and state.stage == stage_index:
            optimizer.load_state_dict(state.optimizer)
            scheduler.load_state_dict(state.scheduler)
        epochs = t.epochs[stage_index]
        first_epoch = state.epoch if state.stage == stage_index else 0
        n_batches = len(_stage_batches(len(train_idx), t, stage_index=stage_index, epoch=0, rank=rank, world=world))
        on_event("stage", {"stage": stage.name, "epochs": epochs, "batches": n_batches, "first_epoch": first_epoch,
                           "first_step": state.step if state.stage == stage_index else 0,
                           "clips_per_epoch": len(train_idx), "world": world, "measured": stage.measured})
        for epoch in range(first_epoch, epochs):
            if not (state.stage == stage_index and state.epoch == epoch):  # a fresh epoch
                state = dataclasses.replace(state, stage=stage_index, epoch=epoch, step=0, loss_sum=0.0,
                                            loss_batches=0, seconds=0.0)
            batches = _stage_batches(len(train_idx), t, stage_index=stage_index, epoch=epoch, rank=rank, world=world)
            model.train()
            started = last_save = time.perf_counter()
            spent = state.seconds
            lr = optimizer.param_groups[0]["lr"]
            row_batches = [train_idx[b] for b in batches[state.step :]]
            for b, batch in enumerate(source(stage).batches(row_batches), start=state.step):
                loss = train_step(wrapped, model, batch, labels_t, stage=stage, optimizer=optimizer, device=dev,
                                  distributed=world > 1, config=config.model)
                if loss is not None:
                    state.loss_sum += loss
                    state.loss_batches += 1
                state.step = b + 1
                state.seconds = spent + time.perf_counter() - started
                on_event("batch", {"stage": stage.name, "epoch": epoch, "batch": b, "loss": loss,
                                   "clips": len(batch["rows"]) * world})
                due = ((t.checkpoint_steps and state.step % t.checkpoint_steps == 0)
                       or (t.checkpoint_minutes and time.perf_counter() - last_save >= 60 * t.checkpoint_minutes))
                if due and state.step < len(batches) and state.loss_batches and rank == 0:
                    state.optimizer, state.scheduler = optimizer.state_dict(), scheduler.state_dict()
                    save()
                    last_save = time.perf_counter()
                    on_event("checkpoint", {"stage": stage.name, "epoch": epoch, "step": state.step})
            train_seconds = state.seconds
            val_started = time.perf_counter()
            rows, logits = score(model, source(stage), my_val, stage=stage, device=dev, batch_size=t.batch_size)
            rows, logits = gather_scores(rows, logits, val_idx)
            skipped.gather()
            check_decoded(labels_text, train_idx[~skipped.bad[train_idx]], rows, skipped,
                          warn=not warned and rank == 0)
            warned = True
            metrics = accuracies(logits, labels[rows], stage.measured)
            scheduler.step(metrics[stage.metric])
            if stage is STAGES[-1]:
                last_val = rows, logits
            trained = int((~skipped.bad[train_idx]).sum())
            record = {"stage": stage.name, "epoch": epoch + 1, "lr": lr,
                      "loss": state.loss_sum / max(1, state.loss_batches),
                      **{f"val_{k}": v for k, v in metrics.items()},
                      "seconds": train_seconds + time.perf_counter() - val_started,
                      "clips_per_second": trained / max(train_seconds, 1e-9)}
            history.rows.append(record)
            more = epoch + 1 < epochs
            state = dataclasses.replace(
                state, stage=stage_index if more else stage_index + 1, epoch=epoch + 1 if more else 0, step=0,
                loss_sum=0.0, loss_batches=0, seconds=0.0,
                optimizer=optimizer.state_dict() if more else None,  # the next stage starts a fresh optimizer
                scheduler=scheduler.state_dict() if more else None,
                done=stage_index == len(STAGES) - 1 and not more)
            if rank == 0:
                save()
                history.write(curves=not more and stage_index < len(STAGES) - 1)  # the last one: below
            on_event("epoch", record)

    state = dataclasses.replace(state, stage=len(STAGES), epoch=0, step=0, optimizer=None, scheduler=None, done=True)
    if last_val is None:  # resumed after the last epoch, or no joint epochs at all
        rows, logits = score(model, source(FINAL), my_val, stage=FINAL, device=dev, batch_size=t.batch_size)
        last_val = gather_scores(rows, logits, val_idx)
    sources.clear()
    skipped.gather()
    val_rows, val_logits = last_val
    val_labels = labels[val_rows]
    # Raw layer confidences are not comparable (the paper's stated limitation): fit one
    # temperature per layer on the validation split, for `--confidence calibrated`.
    temperatures = fit_temperatures(val_logits, val_labels)
    final = {"val": accuracies(val_logits, val_labels), "n_train": int((~skipped.bad[train_idx]).sum()),
             "n_val": int(len(val_rows)), "n_skipped": int(skipped.bad.sum()),
             "categories": category_accuracies(val_logits, val_labels, classes).to_dict("records"),
             "val_ece_raw": layer_ece(softmax(val_logits), val_labels),
             "val_ece_calibrated": layer_ece(calibrated_softmax(val_logits, temperatures), val_labels),
             "data": why}
    if rank == 0:
        save({"history": history.rows, "final": final}, {"temperatures": [float(x) for x in temperatures]})
        history.write(curves=True)
    on_event("done", final)
    if dist.is_initialized():
        dist.barrier()
    rows = skipped.rows()
    frame = pd.DataFrame({"video_id": table["video_id"].to_numpy()[[r for r, _, _ in rows]],
                          "path": table["path"].to_numpy()[[r for r, _, _ in rows]],
                          "reason": [r for _, r, _ in rows], "detail": [d for _, _, d in rows]},
                         columns=list(SKIPPED_COLUMNS))
    return {**final, "skipped": frame, "classes": classes}


def train_step(wrapped, model: FusionNet, batch: dict, labels: torch.Tensor, *, stage: Stage, optimizer,
               device: torch.device, distributed: bool, config: ModelConfig) -> float | None:
    """One SGD step on the batch; its loss, or None when the batch was empty.

    Under DDP every rank must step together: a rank whose batch came out empty (its clips did not
    decode, or its share ran out first) steps on one blank clip with the loss multiplied by zero,
    and its batch-norm statistics are put back as they were."""
    rows = batch["rows"]
    if not len(rows) and not distributed:
        return None
    blank = not len(rows)
    if blank:
        m = config
        rows = np.zeros(1, np.int64)
        batch = {"rows": rows, "frames": torch.zeros(1, m.steps, m.crop, m.crop, 3, dtype=torch.uint8),
                 "audio": torch.zeros(1, m.n_samples), "onsets": torch.zeros(1, m.steps, dtype=torch.bool)}
        buffers = {name: value.clone() for name, value in model.named_buffers()}
    frames, audio, onsets = inputs_on(batch, config, device, stage)
    with autocast(device):
        logits = wrapped(frames, audio, onsets, use_video=stage.use_video, use_audio=stage.use_audio)
    loss = fusion_loss(logits.float(), labels[torch.as_tensor(rows)].to(device), stage.layers)
    if blank:
        loss = loss * 0.0
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    if blank:
        with torch.no_grad():
            for name, value in model.named_buffers():
                value.copy_(buffers[name])
        return None
    return loss.item()


def train_data(data: Path, *, preset: str | Path = "small", out: Path = Path("avaudit-out/train/model.pt"),
               epochs: int | None = None, seed: int | None = None, root: Path | None = None,
               video_weights: Path | None = None, device: str = "auto", resume: bool = False,
               on_event: Callable | None = None, workers: int | None = None, memory_budget: float | None = None,
               checkpoint_minutes: float | None = None, checkpoint_steps: int | None = None,
               classes: Path | None = None, allow_outside_root: bool = False) -> dict:
    """Train the network on DATA (section 4.2's three stages) and write the checkpoint `out`.

    `workers`, `memory_budget` (GiB), `checkpoint_minutes` and `checkpoint_steps` override the preset's
    `train.num_workers`, `train.memory_budget`, ... (None: the preset's). `classes` and `allow_outside_root`
    are read_manifest's.
    Returns the validation metrics; its `skipped` holds the rows of DATA that were not used.
    """
    from avaudit.config import load_config
    from avaudit.media.manifests import read_manifest

    overrides = {}
    if epochs is not None:
        overrides["train.epochs"] = [epochs] * 3
    for name, value in (("seed", seed), ("num_workers", workers), ("memory_budget", memory_budget),
                        ("checkpoint_minutes", checkpoint_minutes), ("checkpoint_steps", checkpoint_steps)):
        if value is not None:
            overrides[f"train.{name}"] = value
    config = load_config(preset, overrides)
    manifest = read_manifest(Path(data), root=root, classes=classes, allow_outside_root=allow_outside_root)
    out = Path(out)
    if out.exists() and not resume:  # every torchrun rank checks, so none waits for one that left
        raise UsageError(f"{out} exists: pass --resume to continue it, or another --out")
    result = train(manifest.table, config=config, out=out, video_weights=video_weights, device=device,
                   resume=resume, on_event=on_event)
    result["skipped"] = pd.concat([manifest.skipped[list(SKIPPED_COLUMNS)], result["skipped"]], ignore_index=True)
    return result
