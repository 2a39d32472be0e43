"""Rich progress for long work: a bar with count, rate and ETA, fed by the library's on_event calls."""
from __future__ import annotations

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TaskProgressColumn,
                           TextColumn, TimeElapsedColumn, TimeRemainingColumn)
from rich.text import Text

from avaudit.vocab import LAYERS

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second, from rich's own speed estimate."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s", style="cyan")


def make_progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), RateColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                    console=console, transient=False)


class _Display:
    """A live rich display for the length of a `with` block."""

    def __init__(self):
        self.progress = make_progress()
        self.task = None

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()


class AuditProgress(_Display):
    """on_event receiver for inference: one bar over the videos."""

    def __init__(self, description: str):
        super().__init__()
        self.description = description

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "start":
            self.task = self.progress.add_task(self.description, total=info["total"], info="")
        elif kind == "advance":
            self.progress.advance(self.task, info["n"])
            self.progress.update(self.task, info=info.get("info", ""))


class TrainProgress(_Display):
    """on_event receiver for training: the data mode, then one bar per stage counting its clips, so
    the rate is clips per second and the ETA the stage's; the info column has the epoch, the
    running loss and the last validation accuracies."""

    def __init__(self):
        super().__init__()
        self.last = ""

    def __call__(self, kind: str, info: dict) -> None:
        p = self.progress
        if kind == "data":
            p.console.print(f"[cyan]data:[/] {info['note']}", highlight=False, soft_wrap=True)
        elif kind == "stage":
            self.stage = info
            per_batch = max(1, -(-info["clips_per_epoch"] // max(1, info["batches"])))
            remaining = max(0, (info["epochs"] - info["first_epoch"]) * info["clips_per_epoch"]
                            - info["first_step"] * per_batch)
            self.epoch, self.loss = info["first_epoch"], []
            self.task = p.add_task(f"{info['stage']} stage", total=remaining, info=self.epoch_info())
        elif kind == "batch":
            if info["epoch"] != self.epoch:
                self.epoch, self.loss = info["epoch"], []
            if info["loss"] is not None:
                self.loss.append(info["loss"])
            p.update(self.task, advance=info["clips"], info=self.epoch_info())
        elif kind == "epoch":
            accs = " ".join(f"{name[:4]} {info[f'val_{name}']:.2f}" for name in (*LAYERS, "vote")
                            if info[f"val_{name}"] == info[f"val_{name}"])  # NaN: not measured in this stage
            self.last = f"val: {accs}"
            p.update(self.task, info=self.epoch_info())

    def epoch_info(self) -> str:
        epoch = f"epoch {min(self.epoch + 1, self.stage['epochs'])}/{self.stage['epochs']}"
        loss = f"  loss {sum(self.loss) / len(self.loss):.3f}" if self.loss else ""
        return f"{epoch}{loss}  {self.last}"
