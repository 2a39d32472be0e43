"""What a training run holds while the recipe runs: the clips and their split, the network, where
the clips come from, and where the recipe stands (saved in every checkpoint, so `--resume` goes on
from it); and the per-epoch history written beside the checkpoint.
"""
from __future__ import annotations

import dataclasses
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import torch

from avaudit.config import Config
from avaudit.model.checkpoint import save_checkpoint
from avaudit.model.fusion import FusionNet
from avaudit.outputs import OutputError
from avaudit.training.sources import ClipSource, Memory, Skipped
from avaudit.training.split import epoch_order, rank_batches
from avaudit.training.stages import FINAL, Stage
from avaudit.vocab import LAYERS

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


class History:
    """One row per finished epoch: kept in the checkpoint, written as train_history.csv and drawn as
    train_curves.png beside it (rank 0)."""

    def __init__(self, out: Path, rows: list[dict]):
        self.out, self.rows = out, rows

    def write(self, *, curves: bool) -> dict[str, Path | None]:
        """Write the history (and with `curves`, its drawing); the files written, by result key."""
        from avaudit.outputs import write_csv

        frame = pd.DataFrame(self.rows, columns=list(HISTORY_COLUMNS))
        written = {"history_csv": self.out.parent / HISTORY_FILE, "curves_png": None}
        with written_or_said(written["history_csv"], "the training history"):
            write_csv(frame, written["history_csv"])
            if curves and len(frame):
                from avaudit.plots import train_curves, write_png

                written["curves_png"] = self.out.parent / CURVES_FILE
                write_png(train_curves(frame), written["curves_png"])
        return written


@contextmanager
def written_or_said(path: Path, what: str) -> Iterator[None]:
    """A full disk or a lost permission while training writes: one OutputError naming the file, not
    an OSError traceback. The checkpoint and the history are written atomically, so the last ones
    written are whole, and --resume goes on from the checkpoint."""
    try:
        yield
    except OSError as err:
        raise OutputError(f"{path}: writing {what} failed ({err.strerror or err}); the last one written there, "
                          f"if any, is whole: make room and train again with --resume") from None


@dataclass(frozen=True)
class TrainingSet:
    """The rows trained on and validated on, and the class each row is trained as."""
    table: pd.DataFrame  # the manifest's rows (video_id, path, start, end, labels, ...)
    classes: list[str]  # the model's classes, sorted
    labels_text: pd.Series  # (N,) each row's training label (one of a multi-label row's)
    labels: np.ndarray  # (N,) int64: its index in `classes`
    train_rows: np.ndarray  # positions in `table`
    val_rows: np.ndarray  # positions in `table`, every rank's
    my_val_rows: np.ndarray  # this rank's share of val_rows: it scores them, and the logits are gathered


@dataclass
class TrainState:
    """One run of the recipe as its loop sees it. `recipe` says where it stands and is what a
    checkpoint resumes from; `last_val` keeps the joint stage's last validation, which the final
    evaluation reuses."""
    data: TrainingSet
    config: Config
    out: Path  # the checkpoint
    model: FusionNet
    wrapped: torch.nn.Module  # the model, or its DistributedDataParallel under torchrun
    device: torch.device
    rank: int
    world: int
    skipped: Skipped  # rows that did not decode, every rank's once gathered
    memory: Memory | None  # the decoded clips kept after their first decode (None: every epoch streams)
    memory_note: str  # why the clips are kept or streamed (memory_mode's sentence)
    workers: int  # decoding worker processes
    decoder: str  # what decodes the frames (vocab.Decoder)
    recipe: ResumeState
    history: History
    on_event: Callable[[str, dict], None]
    sources: dict[Stage, ClipSource] = field(default_factory=dict)
    last_val: tuple[np.ndarray, np.ndarray] | None = None  # (rows, logits) gathered from every rank
    warned: bool = False  # categories without a validation clip: said once, after the first validation

    @property
    def per_rank(self) -> int:
        """Clips per batch on each rank: the preset's batch shared among the ranks."""
        return max(1, self.config.train.batch_size // self.world)

    @property
    def n_trained(self) -> int:
        """Training clips that decoded (so far)."""
        return int((~self.skipped.bad[self.data.train_rows]).sum())

    def source(self, stage: Stage) -> ClipSource:
        """The clips as `stage` uses them: one source per stage when streaming (a stage's workers end
        with it), one for every stage when the decoded clips are kept in memory."""
        key = FINAL if self.memory is not None else stage
        if key not in self.sources:
            self.sources.clear()
            self.sources[key] = ClipSource(self.data.table, self.config.model, stage=key, workers=self.workers,
                                           skipped=self.skipped, memory=self.memory, batch_size=self.per_rank,
                                           decoder=self.decoder)
        return self.sources[key]

    def stage_batches(self, stage_index: int, epoch: int) -> list[np.ndarray]:
        """This rank's batches of the epoch, as positions in train_rows."""
        order = epoch_order(len(self.data.train_rows), seed=self.config.train.seed + stage_index, epoch=epoch)
        return rank_batches(order, rank=self.rank, world=self.world, per_rank=self.per_rank)

    def save(self, metrics: dict | None = None, extra: dict | None = None) -> None:
        """Write the checkpoint (rank 0 calls it): the weights, where the recipe stands, the history."""
        self.recipe.rng = torch.get_rng_state()
        self.recipe.skipped = self.skipped.rows()
        val_ids = self.data.table["video_id"].to_numpy()[self.data.val_rows].tolist()
        with written_or_said(self.out, "the checkpoint"):
            save_checkpoint(self.out, config=self.config, classes=self.data.classes,
                            model_state=self.model.state_dict(), recipe=self.recipe.to_dict(),
                            metrics=metrics or {"history": self.history.rows},
                            extra={"val_ids": val_ids, **(extra or {})})
