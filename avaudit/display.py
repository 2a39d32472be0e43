"""Rich progress for long work: a bar with count, rate and ETA, fed by the library's on_event calls."""
from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
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
    """on_event receiver for training: decoding, then one bar per stage epoch with loss and accuracy."""

    def __init__(self):
        super().__init__()
        self.last = ""

    def __call__(self, kind: str, info: dict) -> None:
        p = self.progress
        if kind == "decode_start":
            self.task = p.add_task("decode", total=info["total"], info="")
        elif kind == "decode":
            p.advance(self.task)
        elif kind == "stage":
            self.stage = info
        elif kind == "batch":
            if info["batch"] == 0:
                self.task = p.add_task(f"{info['stage']} {info['epoch'] + 1}/{self.stage['epochs']}",
                                       total=self.stage["batches"], info=self.last)
            p.update(self.task, advance=1, info=f"loss {info['loss']:.3f}  {self.last}")
        elif kind == "epoch":
            accs = " ".join(f"{name[:4]} {info[f'val_{name}']:.2f}"
                            for name in (*LAYERS, "vote"))
            self.last = f"val: {accs}  lr {info['lr']:.0e}"
            p.update(self.task, info=f"loss {info['loss']:.3f}  {self.last}")
