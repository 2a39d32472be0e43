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

The run's state has one owner, TrainState: `start` builds it, `run_stage` trains a stage's epochs
(`run_epoch`, then `validate`), and `finish` evaluates, calibrates and writes the last checkpoint.
"""
from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist

from avaudit.audits.calibration import calibrated_softmax, fit_temperatures, layer_ece
from avaudit.audits.decisions import softmax
from avaudit.audits.metrics import accuracies, category_accuracies
from avaudit.config import Config, ModelConfig
from avaudit.device import autocast, default_workers, init_distributed, pick_device
from avaudit.errors import AvauditWarning, UsageError
from avaudit.model.checkpoint import CheckpointError, load_checkpoint
from avaudit.model.fusion import FusionNet, fusion_loss
from avaudit.training.sources import ClipSource, Memory, Skipped, inputs_on, memory_mode
from avaudit.training.split import split_train_val, training_classes, training_labels
from avaudit.training.stages import FINAL, STAGES, Stage
from avaudit.training.state import History, ResumeState, TrainingSet, TrainState
from avaudit.vocab import LAYERS, SKIPPED_COLUMNS


def run_recipe(table: pd.DataFrame, *, config: Config, out: Path, video_weights: Path | None = None,
               device: str = "auto", resume: bool = False, decoder: str = "pyav",
               on_event: Callable[[str, dict], None] | None = None) -> dict:
    """Run the three-stage recipe on the labelled rows of `table`; returns the final metrics, with
    `skipped` (the rows that did not decode) and `classes`.

    `out` is rewritten (atomically) after every epoch and every `checkpoint_minutes` /
    `checkpoint_steps` within one; with `resume`, training continues from the batch it holds.
    on_event(kind, info) receives progress: data, stage, batch, epoch, checkpoint, done.
    """
    state = start(table, config=config, out=out, video_weights=video_weights, device=device, resume=resume,
                  decoder=decoder, on_event=on_event or (lambda kind, info: None))
    for stage_index in range(state.recipe.stage, len(STAGES)):
        run_stage(state, stage_index)
    return finish(state)


def training_set(table: pd.DataFrame, config: Config, *, rank: int, world: int) -> TrainingSet:
    """The classes, each row's training label and the split; a UsageError where DATA cannot train."""
    t = config.train
    if (table["labels"] == "").any():
        raise UsageError("every training clip needs a label: DATA has unlabelled rows "
                         "(use a folder of category folders or a labelled manifest)")
    labels_text = training_labels(table["labels"], seed=t.seed)
    classes = training_classes(table["labels"])
    if len(classes) < 2:
        raise UsageError(f"training needs at least two categories; DATA has {len(classes)}")
    labels = np.array(labels_text.map({c: i for i, c in enumerate(classes)}), dtype=np.int64)
    train_rows, val_rows = split_train_val(table.assign(label=labels_text), fraction=t.val_fraction, seed=t.seed)
    return TrainingSet(table, classes, labels_text, labels, train_rows, val_rows, val_rows[rank::world])


def start(table: pd.DataFrame, *, config: Config, out: Path, video_weights: Path | None, device: str,
          resume: bool, on_event: Callable[[str, dict], None], decoder: str = "pyav") -> TrainState:
    """The run set up: ranks joined, the network built (or resumed from `out`), the clips' source chosen."""
    rank, world = init_distributed(device)
    dev = pick_device(device)
    data = training_set(table, config, rank=rank, world=world)
    torch.manual_seed(config.train.seed)
    model = FusionNet(config.model, len(data.classes))
    if video_weights is not None:
        from avaudit.model.backbones import load_video_weights

        load_video_weights(model.video_net, video_weights)
    recipe, history = ResumeState(), History(out, [])
    if resume and out.exists():
        recipe, history.rows = resume_from(out, config=config, classes=data.classes, model=model)
    model.to(dev)
    if dev.type == "cuda":
        model.video_net.to(memory_format=torch.channels_last_3d)
    wrapped = (torch.nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)
               if world > 1 else model)
    skipped = Skipped(len(table))
    skipped.merge(recipe.skipped)
    keep, why = memory_mode(len(data.train_rows) + len(data.my_val_rows), config)
    on_event("data", {"memory": keep, "note": why})
    memory = (Memory(np.concatenate([data.train_rows, data.my_val_rows]), len(table), config.model)
              if keep else None)
    workers = default_workers() if config.train.num_workers is None else config.train.num_workers
    return TrainState(data=data, config=config, out=out, model=model, wrapped=wrapped, device=dev, rank=rank,
                      world=world, skipped=skipped, memory=memory, memory_note=why, workers=workers, decoder=decoder,
                      recipe=recipe, history=history, on_event=on_event)


def resume_from(out: Path, *, config: Config, classes: list[str], model: FusionNet) -> tuple[ResumeState, list]:
    """Load the checkpoint `out` into `model` and torch's generator; where its recipe stands, and its history."""
    saved = load_checkpoint(out, preset=config.preset)
    if saved["classes"] != classes:
        raise CheckpointError(f"{out}: trained on other categories; cannot resume on this DATA")
    model.load_state_dict(saved["model"])
    recipe = ResumeState.from_dict(saved["recipe"])
    if recipe.rng is not None:
        torch.set_rng_state(recipe.rng)
    return recipe, saved["metrics"]["history"]


def run_stage(state: TrainState, stage_index: int) -> None:
    """Train one stage's epochs, from where the recipe stands, validating after each; a fresh SGD
    and lr schedule, unless resuming inside the stage."""
    stage, t = STAGES[stage_index], state.config.train
    optimizer = torch.optim.SGD(state.model.parameters(), lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    # "not risen for 3 epochs" -> lr drops on the 3rd; torch counts patience as epochs tolerated.
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=t.lr_factor,
                                                           patience=max(0, t.patience - 1))
    here = state.recipe.stage == stage_index  # resumed inside this stage
    if here and state.recipe.optimizer is not None:
        optimizer.load_state_dict(state.recipe.optimizer)
        scheduler.load_state_dict(state.recipe.scheduler)
    epochs = t.epochs[stage_index]
    first_epoch = state.recipe.epoch if here else 0
    state.on_event("stage", {"stage": stage.name, "epochs": epochs, "batches": len(state.stage_batches(stage_index, 0)),
                             "first_epoch": first_epoch, "first_step": state.recipe.step if here else 0,
                             "clips_per_epoch": len(state.data.train_rows), "world": state.world,
                             "measured": stage.measured})
    for epoch in range(first_epoch, epochs):
        if not (state.recipe.stage == stage_index and state.recipe.epoch == epoch):  # a fresh epoch
            state.recipe = dataclasses.replace(state.recipe, stage=stage_index, epoch=epoch, step=0, loss_sum=0.0,
                                               loss_batches=0, seconds=0.0)
        lr = optimizer.param_groups[0]["lr"]
        run_epoch(state, stage_index, epoch, optimizer=optimizer, scheduler=scheduler)
        train_seconds = state.recipe.seconds
        val_started = time.perf_counter()
        metrics = validate(state, stage)
        scheduler.step(metrics[stage.metric])
        record = {"stage": stage.name, "epoch": epoch + 1, "lr": lr,
                  "loss": state.recipe.loss_sum / max(1, state.recipe.loss_batches),
                  **{f"val_{k}": v for k, v in metrics.items()},
                  "seconds": train_seconds + time.perf_counter() - val_started,
                  "clips_per_second": state.n_trained / max(train_seconds, 1e-9)}
        end_epoch(state, stage_index, record, more=epoch + 1 < epochs, optimizer=optimizer, scheduler=scheduler)


def run_epoch(state: TrainState, stage_index: int, epoch: int, *, optimizer, scheduler) -> None:
    """Train on this rank's batches of the epoch, from the step the recipe stands at; checkpoint on
    the way every `checkpoint_steps` batches or `checkpoint_minutes` (rank 0)."""
    stage, t, recipe = STAGES[stage_index], state.config.train, state.recipe
    batches = state.stage_batches(stage_index, epoch)
    state.model.train()
    started = last_save = time.perf_counter()
    spent = recipe.seconds
    row_batches = [state.data.train_rows[b] for b in batches[recipe.step :]]
    for b, batch in enumerate(state.source(stage).batches(row_batches), start=recipe.step):
        loss = train_step(state.wrapped, state.model, batch, state.data.labels, stage=stage, optimizer=optimizer,
                          device=state.device, distributed=state.world > 1, config=state.config.model)
        if loss is not None:
            recipe.loss_sum += loss
            recipe.loss_batches += 1
        recipe.step = b + 1
        recipe.seconds = spent + time.perf_counter() - started
        state.on_event("batch", {"stage": stage.name, "epoch": epoch, "batch": b, "loss": loss,
                                 "clips": len(batch["rows"]) * state.world})
        due = ((t.checkpoint_steps and recipe.step % t.checkpoint_steps == 0)
               or (t.checkpoint_minutes and time.perf_counter() - last_save >= 60 * t.checkpoint_minutes))
        if due and recipe.step < len(batches) and recipe.loss_batches and state.rank == 0:
            recipe.optimizer, recipe.scheduler = optimizer.state_dict(), scheduler.state_dict()
            state.save()
            last_save = time.perf_counter()
            state.on_event("checkpoint", {"stage": stage.name, "epoch": epoch, "step": recipe.step})


def validate(state: TrainState, stage: Stage) -> dict[str, float]:
    """The validation split scored with the stage's inputs (each rank its share, gathered) and the
    accuracies the stage can measure; the joint stage's scores are kept for the final evaluation."""
    data = state.data
    rows, logits = score(state.model, state.source(stage), data.my_val_rows, stage=stage, device=state.device,
                         batch_size=state.config.train.batch_size)
    rows, logits = gather_scores(rows, logits, data.val_rows)
    state.skipped.gather()
    check_decoded(data.labels_text, data.train_rows[~state.skipped.bad[data.train_rows]], rows, state.skipped,
                  warn=not state.warned and state.rank == 0)
    state.warned = True
    if stage is STAGES[-1]:
        state.last_val = rows, logits
    return accuracies(logits, data.labels[rows], stage.measured)


def end_epoch(state: TrainState, stage_index: int, record: dict, *, more: bool, optimizer, scheduler) -> None:
    """Record the epoch, move the recipe on (the next stage starts a fresh optimizer), checkpoint."""
    state.history.rows.append(record)
    state.recipe = dataclasses.replace(
        state.recipe, stage=stage_index if more else stage_index + 1, epoch=state.recipe.epoch + 1 if more else 0,
        step=0, loss_sum=0.0, loss_batches=0, seconds=0.0,
        optimizer=optimizer.state_dict() if more else None, scheduler=scheduler.state_dict() if more else None,
        done=stage_index == len(STAGES) - 1 and not more)
    if state.rank == 0:
        state.save()
        state.history.write(curves=not more and stage_index < len(STAGES) - 1)  # the last one: in finish
    state.on_event("epoch", record)


def finish(state: TrainState) -> dict:
    """The final evaluation (the joint stage's last validation, or a fresh one when there was none),
    per-layer temperatures, and the last checkpoint; the metrics, the skipped rows, the classes, and
    the history files written (rank 0: `history_csv`, `curves_png`)."""
    data = state.data
    state.recipe = dataclasses.replace(state.recipe, stage=len(STAGES), epoch=0, step=0, optimizer=None,
                                       scheduler=None, done=True)
    if state.last_val is None:  # resumed after the last epoch, or no joint epochs at all
        rows, logits = score(state.model, state.source(FINAL), data.my_val_rows, stage=FINAL, device=state.device,
                             batch_size=state.config.train.batch_size)
        state.last_val = gather_scores(rows, logits, data.val_rows)
    state.sources.clear()
    state.skipped.gather()
    val_rows, val_logits = state.last_val
    val_labels = data.labels[val_rows]
    # Raw layer confidences are not comparable (the paper's stated limitation): fit one
    # temperature per layer on the validation split, for `--confidence calibrated`.
    temperatures = fit_temperatures(val_logits, val_labels)
    final = {"val": accuracies(val_logits, val_labels), "n_train": state.n_trained,
             "n_val": int(len(val_rows)), "n_skipped": int(state.skipped.bad.sum()),
             "categories": category_accuracies(val_logits, val_labels, data.classes).to_dict("records"),
             "val_ece_raw": layer_ece(softmax(val_logits), val_labels),
             "val_ece_calibrated": layer_ece(calibrated_softmax(val_logits, temperatures), val_labels),
             "data": state.memory_note}
    written = {}
    if state.rank == 0:
        state.save({"history": state.history.rows, "final": final}, {"temperatures": [float(x) for x in temperatures]})
        written = state.history.write(curves=True)
    state.on_event("done", final)
    if dist.is_initialized():
        dist.barrier()
    return {**final, "skipped": skipped_table(state), "classes": data.classes, **written}


def skipped_table(state: TrainState) -> pd.DataFrame:
    """The rows that did not decode, as skipped.csv lists them."""
    rows = state.skipped.rows()
    positions = [row for row, _, _ in rows]
    return pd.DataFrame({"video_id": state.data.table["video_id"].to_numpy()[positions],
                         "path": state.data.table["path"].to_numpy()[positions],
                         "reason": [reason for _, reason, _ in rows], "detail": [detail for _, _, detail in rows]},
                        columns=list(SKIPPED_COLUMNS))


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


def gather_scores(rows: np.ndarray, logits: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every rank's (rows, logits), in the order of `order` (the validation rows): the same on every rank."""
    if dist.is_initialized():
        every = [None] * dist.get_world_size()
        dist.all_gather_object(every, (rows, logits))
        rows = np.concatenate([r for r, _ in every])
        logits = np.concatenate([x for _, x in every])
    position = {int(row): i for i, row in enumerate(order)}
    sort = np.argsort([position[int(row)] for row in rows], kind="stable")
    return rows[sort], logits[sort]


def train_step(wrapped, model: FusionNet, batch: dict, labels: np.ndarray, *, stage: Stage, optimizer,
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
    loss = fusion_loss(logits.float(), torch.as_tensor(labels[rows]).to(device), stage.layers)
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
