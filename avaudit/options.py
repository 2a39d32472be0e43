"""What a caller can choose, said once: the audit options, the decision thresholds and their defaults,
each checked at the API's door in the caller's own parameter names.

Imports no numpy, pandas or torch, so the CLI's `--help` reads its defaults from here.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from enum import StrEnum
from pathlib import Path

from avaudit.errors import ParameterError
from avaudit.vocab import By, Confidence, Decoder, Device, NoAudio, Rule

# the shipped checkpoint is package data, so an installed wheel finds it as a source tree does
DEFAULT_MODEL = Path(__file__).resolve().parent / "weights" / "default.pt"
OUTPUT_ROOT = Path("avaudit-out")  # each command writes to OUTPUT_ROOT/<command> unless told


@dataclass(frozen=True)
class Thresholds:
    """The decisions' settings and their defaults, chosen on the decision stress bench and our own planted tuning
    set (docs/decisions-bench.md, docs/decisions.md)."""
    rule: Rule = Rule.sufficiency  # recovers planted truth better than the paper's rule
    fraction: float = 0.7  # of the best audio-visual layer's margin over the label's closest rival a unimodal layer
    # must reach (sufficiency; docs/decisions-bench.md)
    type_margin: float = 0.003  # an event type is named when its layer leads the other audio-visual layers by this
    min_support: float = 0.8  # a category's group or type less sure than this is unclear (docs/decisions-bench.md)
    false_call_rate: float = 0.1  # groups are called so that at most this share is wrong by chance (Benjamini-Hochberg)
    video_noise: float = 0.2  # a video whose margins are this close (in logits) to changing its call is not `clear`
    min_confidence: float = 0.3  # missing-label candidates below this are left out (docs/decisions-bench.md)
    min_precision: float = 0.7  # candidates estimated less precise are set apart (docs/decisions-bench.md)
    max_confusion: float | None = None  # a layer proposing a candidate this much on its label's other videos: set
    # apart; off, as the precision estimate tells a confusion from a label missing from a whole class


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class AuditOptions:
    """How an audit reads DATA and runs the network; the same for every audit command."""
    model: Path | None = None  # checkpoint file [default: the shipped DEFAULT_MODEL]
    root: Path | None = None  # where a manifest's media live [default: the manifest's folder]
    device: Device = Device.auto  # where the network runs
    batch_size: int = 8  # clips per batch
    workers: int | None = None  # decoding processes [default: one per core]
    cache_dir: Path | None = None  # logit cache [default: $AVAUDIT_CACHE_DIR or ~/.cache/avaudit]
    confidence: Confidence = Confidence.raw  # raw softmax or calibrated temperatures (docs/decisions.md)
    no_audio: NoAudio = NoAudio.skip  # clips without sound: skip them or audit them with silence
    decoder: Decoder = Decoder.pyav  # what decodes the frames (benchmarks/README.md: PyAV reads every container right)
    classes: Path | None = None  # AudioSet's class index [default: class_labels_indices.csv beside DATA]
    allow_outside_root: bool = False  # open manifest rows that name files outside the media root
    label_field: str | None = None  # shards' .json field or Parquet column of the label [default: .cls/.txt, label]
    video_column: str | None = None  # Parquet column of the videos' bytes or paths [default: video]

    @property
    def model_file(self) -> Path:
        """The checkpoint file this audit loads."""
        return Path(self.model) if self.model is not None else DEFAULT_MODEL


def audit_options(options: AuditOptions | None, overrides: dict) -> AuditOptions:
    """`options` with keyword overrides, checked: `bias(data, model="m.pt")` and `bias(data, options=o)`
    both work, and a wrong type or value is refused here, before anything is read or decoded."""
    if options is not None and not isinstance(options, AuditOptions):
        raise ParameterError("options", f"must be an AuditOptions, not {options!r}")
    known = {f.name for f in fields(AuditOptions)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise TypeError(f"{unknown[0]!r} is not an audit option (known: {', '.join(sorted(known))})")
    o = replace(options or AuditOptions(), **overrides)
    for name in ("model", "root", "cache_dir", "classes"):
        check_path(name, getattr(o, name))
    check_int("batch_size", o.batch_size, 1)
    if o.workers is not None:
        check_int("workers", o.workers, 0)
    check_bool("allow_outside_root", o.allow_outside_root)
    for name in ("label_field", "video_column"):
        if getattr(o, name) is not None and (not isinstance(getattr(o, name), str) or not getattr(o, name)):
            raise ParameterError(name, f"must be a field or column name, not {getattr(o, name)!r}")
    return replace(o, device=choice("device", o.device, Device), no_audio=choice("no_audio", o.no_audio, NoAudio),
                   confidence=choice("confidence", o.confidence, Confidence),
                   decoder=choice("decoder", o.decoder, Decoder))


def check_path(name: str, value) -> None:
    if value is not None and not isinstance(value, (str, os.PathLike)):
        raise ParameterError(name, f"must be a path (str or Path), not {value!r}")


def check_int(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ParameterError(name, f"must be an integer of {low} or more, not {value!r}")
    if value < low:
        raise ParameterError(name, f"must be {low} or more, not {value!r}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ParameterError(name, f"must be True or False, not {value!r}")


def choice(name: str, value, kind: type[StrEnum]) -> StrEnum:
    """`value` as a member of `kind`, or a ParameterError listing the members."""
    try:
        return kind(value)
    except ValueError:
        raise ParameterError(name, f"must be one of {', '.join(kind)}, not {value!r}") from None


def check_range(name: str, value, low: float, high: float, *, low_open: bool = False) -> None:
    """A number inside [low, high] ((low, high] with `low_open`), or a ParameterError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ParameterError(name, f"must be a number, not {value!r}")
    if not (low < value <= high if low_open else low <= value <= high):
        raise ParameterError(name, f"must be in {'(' if low_open else '['}{low:g}, {high:g}], not {value:g}")


def check_number(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ParameterError(name, f"must be a number, not {value!r}")


def check_truth(truth) -> list[str]:
    """`truth` as the list of specs truthfiles.read_truth takes: one file (or `vggsounder`), or AVVP's two."""
    specs = [truth] if isinstance(truth, (str, os.PathLike)) else truth
    if not isinstance(specs, (list, tuple)) or not all(isinstance(s, (str, os.PathLike)) for s in specs):
        raise ParameterError("truth", f"must be a path, 'vggsounder' or a list of two paths, not {truth!r}")
    if not 1 <= len(specs) <= 2:
        raise ParameterError("truth", "takes one VGGSounder CSV (or 'vggsounder'), or AVVP's audio and visual event "
                             f"files, not {len(specs)} files")
    return [os.fspath(s) for s in specs]


def check_rule(rule) -> Rule:
    return choice("rule", rule, Rule)


def check_by(by) -> By:
    return choice("by", by, By)
