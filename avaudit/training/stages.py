"""The three stages of section 4.2's recipe: what each trains, on which inputs, and what it measures."""
from __future__ import annotations

from dataclasses import dataclass

from avaudit.vocab import LAYERS


@dataclass(frozen=True)
class Stage:
    name: str
    layers: tuple[str, ...]  # whose losses are summed (eq. 5 over these)
    use_video: bool
    use_audio: bool
    metric: str  # validation accuracy that drives the lr schedule

    @property
    def measured(self) -> tuple[str, ...]:
        """The validation accuracies this stage's inputs can tell: a layer that needs a modality the
        stage leaves undecoded, and the vote over all five, only in the joint stage."""
        return (*LAYERS, "vote") if self.use_video and self.use_audio else self.layers


STAGES = (
    Stage("audio", ("audio",), use_video=False, use_audio=True, metric="audio"),
    Stage("video", ("visual",), use_video=True, use_audio=False, metric="visual"),
    Stage("joint", LAYERS, use_video=True, use_audio=True, metric="vote"),
)
FINAL = STAGES[-1]  # the end-of-training evaluation needs every input
