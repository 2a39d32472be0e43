"""The command line: one small function per command that parses, calls the library (avaudit.commands),
and prints.

Heavy modules (torch, numpy, pandas, decord, librosa) are imported inside the commands so
`--help` stays fast. Every option is declared once, in avaudit.cli_options (the ones every audit
shares in AUDIT_OPTIONS); the library fills in every default the user did not give.
"""
from __future__ import annotations

import functools
import inspect
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand

from avaudit.cli_options import (
    AUDIT_OPTIONS,
    CacheOpt,
    ClassesOpt,
    DataArg,
    DecoderOpt,
    DeviceOpt,
    LabelFieldOpt,
    ModelOpt,
    OutOpt,
    OutsideOpt,
    RootOpt,
    RuleOpt,
    TruthOpt,
    VideoColumnOpt,
)
from avaudit.display import fail, finish, one_line_errors
from avaudit.display import stdout as console
from avaudit.options import DEFAULT_MODEL, THRESHOLDS, AuditOptions
from avaudit.vocab import By, Device, plural


class PlainUsage(TyperCommand):
    """A command whose usage line names its arguments as its help and the docs do (`DATA`), not `{DATA}`."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        return [piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece
                for piece in super().collect_usage_pieces(ctx)]


app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Audit audio-visual video datasets with the event-specific fusion network.")


def version(value: bool) -> None:
    if value:
        from importlib.metadata import version as installed

        print(f"avaudit {installed('avaudit')}")
        raise typer.Exit(0)


@app.callback()
def main_options(_version: Annotated[bool, typer.Option("--version", callback=version, is_eager=True,
                                                        help="Print the version and exit.")] = False):
    """Audit audio-visual video datasets with the event-specific fusion network."""


@app.command(cls=PlainUsage)
@one_line_errors
def train(
    data: DataArg,
    preset: Annotated[str, typer.Option(help="small | paper | FILE.yaml")] = "small",
    out: Annotated[Path, typer.Option(help="Checkpoint to write (rewritten every epoch and every "
                                           "--checkpoint-minutes); train_history.csv and train_curves.png "
                                           "go beside it.")] = Path(
        "avaudit-out/train/model.pt"),
    epochs: Annotated[Optional[int], typer.Option(help="Epochs of every stage [default: the preset's].")] = None,
    video_weights: Annotated[Optional[Path], typer.Option(
        help="torchvision's Kinetics-400 mc3_18 state dict (mc3_18-a90a0ba3.pth), a local file.")] = None,
    device: DeviceOpt = Device.auto,
    resume: Annotated[bool, typer.Option(help="Continue from --out where a run stopped.")] = False,
    root: RootOpt = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of initialisation, split and order.")] = None,
    workers: Annotated[Optional[int], typer.Option(
        help="Decoding worker processes [default: one per CPU core, shared by torchrun ranks].",
        show_default=False)] = None,
    memory_budget: Annotated[Optional[float], typer.Option(
        help="GiB of decoded clips kept in memory after the first epoch; a set that needs more streams "
             "every epoch [default: the preset's, 2].", show_default=False)] = None,
    checkpoint_minutes: Annotated[Optional[float], typer.Option(
        help="Also checkpoint inside an epoch this often; --resume continues from that batch "
             "(0: at epoch ends only) [default: the preset's, 5].", show_default=False)] = None,
    checkpoint_steps: Annotated[Optional[int], typer.Option(
        help="Also checkpoint every N batches (0: off) [default: the preset's, 0].", show_default=False)] = None,
    classes: ClassesOpt = None, allow_outside_root: OutsideOpt = False, decoder: DecoderOpt = None,
    label_field: LabelFieldOpt = None, video_column: VideoColumnOpt = None,
):
    """Train the network: audio backbone, then video backbone, then all five layers (section 4.2)."""
    from avaudit.display import TrainProgress, safe, show_train_result
    from avaudit.training import command

    with TrainProgress() as progress:  # under torchrun only rank 0 reports progress, and returns
        result = command.train(data, preset=preset, out=out, epochs=epochs, seed=seed, root=root,
                               video_weights=video_weights, device=device.value, resume=resume, on_event=progress,
                               workers=workers, memory_budget=memory_budget, checkpoint_minutes=checkpoint_minutes,
                               checkpoint_steps=checkpoint_steps, classes=classes,
                               allow_outside_root=allow_outside_root, label_field=label_field,
                               video_column=video_column, **given(decoder=decoder))
    show_train_result(console(), result, out)
    if result["skipped_csv"] is not None:
        console().print(f"[yellow]{plural(len(result['skipped']), 'clip')} skipped[/]: see "
                        f"{safe(result['skipped_csv'])}", soft_wrap=True)
        raise typer.Exit(1)


def audit_command(command):
    """`command` with the options every audit shares (AUDIT_OPTIONS) after its own, handed to it as one
    AuditOptions, `options`, holding only those the user gave."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "options"]
    shared = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation, default=default)
              for name, (annotation, default) in AUDIT_OPTIONS.items()]

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        given = {name: kwargs.pop(name) for name in AUDIT_OPTIONS}
        options = AuditOptions(**{k: v for k, v in given.items() if v is not None and v is not False})
        return command(*args, options=options, **kwargs)

    wrapper.__signature__ = signature.replace(parameters=own + shared)
    wrapper.__annotations__ = {p.name: p.annotation for p in own + shared}
    return wrapper


def given(**values) -> dict:
    """The keyword arguments the user gave (not None): the library has the defaults of the others."""
    return {name: value for name, value in values.items() if value is not None}


def run_with_progress(name: str, function, *args, **kwargs):
    from avaudit.display import AuditProgress

    with AuditProgress(name) as progress:
        return function(*args, on_event=progress, **kwargs)


def cache_line(run) -> None:
    from avaudit.display import show_counts

    show_counts(console(), run)


@app.command(cls=PlainUsage)
@one_line_errors
@audit_command
def bias(data: DataArg, out: OutOpt = None, rule: RuleOpt = None,
         sufficiency: Annotated[Optional[float], typer.Option(
             help="Fraction of the best audio-visual layer's margin over the label's closest rival that a unimodal "
                  "layer must reach "
                  f"[default: {THRESHOLDS.fraction:g}].")] = None,
         type_margin: Annotated[Optional[float], typer.Option(help="Name an event type only where its layer leads "
             f"the other audio-visual layers by this; else `audiovisual` [default: {THRESHOLDS.type_margin:g}; "
             "0 names all].")] = None,
         min_support: Annotated[Optional[float], typer.Option(help="Call a category's group (or type) unclear where "
             f"fewer redraws of its videos agree with it than this [default: {THRESHOLDS.min_support:g}].")] = None,
         truth_audio: Annotated[Optional[Path], typer.Option(help="Audio events to score against (AVVP).")] = None,
         truth_visual: Annotated[Optional[Path], typer.Option(help="Visual events, with --truth-audio.")] = None,
         truth: TruthOpt = None,
         flagged_vote: Annotated[bool, typer.Option(help="Let videos with a quality flag (still, silent, a "
             "duplicate's copy) vote on their category's call; by default they get their own call only.")] = False,
         *, options: AuditOptions):
    """Which layer carries each video's and category's label (Tables 3 and 4)."""
    from avaudit import commands
    from avaudit.display import show_bias, show_truth

    if (truth_audio is None) != (truth_visual is None):
        fail("--truth-audio and --truth-visual go together: the audio events and the visual events of the same videos")
    run = run_with_progress("bias", commands.bias, data, out=out, options=options, **given(
        rule=rule, fraction=sufficiency, type_margin=type_margin, min_support=min_support,
        truth=[*(truth or ()), *filter(None, (truth_audio, truth_visual))] or None, flagged_vote=flagged_vote or None))
    show_bias(console(), run)
    if run.summary.flagged_line():
        console().print(run.summary.flagged_line(), highlight=False, soft_wrap=True)
    if run.summary.truth is not None:
        show_truth(console(), run.summary.truth, run.out)
    cache_line(run)
    finish(run)


@app.command(cls=PlainUsage)
@one_line_errors
@audit_command
def predict(data: DataArg, out: OutOpt = None,
            export_probs: Annotated[Optional[Path], typer.Option(
                help="Also write labels and per-class probabilities (.npz) for cleanlab.")] = None,
            *, options: AuditOptions):
    """Each video's vote (equation 6), multi-label set (equation 7) and per-layer confidence."""
    from avaudit import commands

    run = run_with_progress("predict", commands.predict, data, out=out, export_probs=export_probs, options=options)
    table = run.tables["predictions.csv"]
    mean = table["labels_eq7"].str.count(";").add(1).mean() if len(table) else 0
    console().print(f"{plural(len(table), 'video')} predicted" + (f"; mean labels per video (eq. 7): {mean:.2f}"
                                                                  if len(table) else ""))
    cache_line(run)
    finish(run)


@app.command("missing-labels", cls=PlainUsage)
@one_line_errors
@audit_command
def missing_labels(data: DataArg, out: OutOpt = None,
                   min_confidence: Annotated[Optional[float], typer.Option(
                       help=f"Leave out candidates below this confidence [default: {THRESHOLDS.min_confidence:g}].")
                   ] = None,
                   max_confusion: Annotated[Optional[float], typer.Option(help="Set apart (confusions.csv) candidates "
                       "proposed this much on their label's other videos too [default: off].")] = None,
                   min_precision: Annotated[Optional[float], typer.Option(help="Set apart (confusions.csv) candidates "
                       f"whose estimated precision is under this [default: {THRESHOLDS.min_precision:g}].")] = None,
                   truth: TruthOpt = None,
                   groups: Annotated[Optional[str], typer.Option(help="The categories' groups from people or "
                       "another run: a CSV with category and group columns (a bias_categories.csv), a VGGSounder "
                       "CSV or `vggsounder` (each label's majority modality) [default: this run's bias call].")
                   ] = None,
                   *, options: AuditOptions):
    """Labels a video shows (equation 7) that its annotation lacks, most confident first."""
    from avaudit import commands
    from avaudit.display import show_missing_labels

    run = run_with_progress("missing-labels", commands.missing_labels, data, out=out, options=options,
                            **given(min_confidence=min_confidence, max_confusion=max_confusion,
                                    min_precision=min_precision, truth=truth or None, groups=groups))
    show_missing_labels(console(), run)
    cache_line(run)
    finish(run)


@app.command(cls=PlainUsage)
@one_line_errors
@audit_command
def retarget(data: Annotated[Optional[Path], typer.Argument(
                 help="DATA to audit first; without it, the latest `bias` run is used.", metavar="DATA",
                 show_default=False)] = None,
             keep: Annotated[list[str], typer.Option(
                 help="Group (audiovisual, audio, visual, redundant, unclear) or layer to keep; repeatable.")] = None,
             by: Annotated[Optional[By], typer.Option(
                 help=f"Keep whole categories or single videos [default: {By.category}].")] = None,
             out: Annotated[Optional[Path], typer.Option(
                 help="Subset file, in DATA's own format; with DATA, its bias run goes to a bias/ folder beside it "
                      "[default: avaudit-out/retarget/subset.<ext>].",
                 metavar="OUT")] = None,
             from_run: Annotated[Optional[Path], typer.Option(
                 "--from", help="A bias run's folder, used without DATA [default: the newest under avaudit-out/].",
             )] = None,
             compare: Annotated[Optional[str], typer.Option(
                 help="Report how many classes of a Kinetics-Sounds list (ks31, ks32, ks34) the subset holds.")] = None,
             drop: Annotated[Optional[list[str]], typer.Option(
                 help="Leave out videos with these quality flags, comma-joined or repeated: still, silent, "
                      "duplicate (each group of duplicates keeps one copy).")] = None,
             rule: RuleOpt = None, *, options: AuditOptions):
    """Write the subset of DATA whose categories (or videos) fall in --keep, e.g. a Kinetics-AV list."""
    from avaudit import commands
    from avaudit.display import show_retarget

    if not keep:
        fail("give at least one --keep (audiovisual, audio, visual, redundant, unclear, or a layer name)")
    run = run_with_progress("retarget", commands.retarget, data, keep=keep, out=out, options=options,
                            **given(by=by, compare=compare, bias_run=from_run, rule=rule, drop=drop or None))
    show_retarget(console(), run.summary)
    if run.summary.drop:
        console().print(f"left out {plural(run.summary.n_dropped, 'video')} flagged {' or '.join(run.summary.drop)}",
                        highlight=False, soft_wrap=True)
    finish(run)


@app.command(cls=PlainUsage)
@one_line_errors
@audit_command
def quality(data: DataArg, out: OutOpt = None, *, options: AuditOptions):
    """Still pictures, silent sound and duplicate clips (and across which splits), measured in the audit's decode."""
    from avaudit import commands
    from avaudit.display import safe

    run = run_with_progress("quality", commands.quality, data, out=out, options=options)
    console().print(f"{run.summary.line()}; see {safe(run.out / 'quality_videos.csv')}", highlight=False,
                    soft_wrap=True)
    cache_line(run)
    finish(run)


@app.command(cls=PlainUsage)
@one_line_errors
def localize(video: Annotated[Path, typer.Argument(help="One video file.", metavar="VIDEO")], model: ModelOpt = None,
             out: OutOpt = None, decoder: DecoderOpt = None,
             timeline: Annotated[bool, typer.Option(help="Also plot each layer's confidence per second.")] = False):
    """Where and when the sound is, from alpha_t = V_t z^A_t over the frames (section 4.4)."""
    from avaudit import commands
    from avaudit.display import show_localized
    from avaudit.localize import localize as run_localize

    target = commands.output_dir(out, "localize")
    show_localized(video, run_localize(video, model=model or DEFAULT_MODEL, out=target, timeline=timeline,
                                       **given(decoder=decoder)), target)


@app.command(cls=PlainUsage)
@one_line_errors
def report(folder: Annotated[Path, typer.Argument(help="Folder holding audit outputs, e.g. avaudit-out/.",
                                                  metavar="FOLDER")]):
    """One self-contained report.html from the bias, missing-labels, retarget and predict outputs."""
    from avaudit.display import safe
    from avaudit.report import build_report

    console().print(f"report written to {safe(build_report(folder))}", soft_wrap=True)


@app.command("make-samples", cls=PlainUsage)
@one_line_errors
def make_samples(
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist or be empty).", metavar="OUT")],
    seed: Annotated[int, typer.Option(help="Seed of every planted choice.")] = 0,
    clips: Annotated[int, typer.Option(help="Clips per category.")] = 20,
    two_event: Annotated[int, typer.Option(help="Two-event clips per unimodal category.")] = 2,
    co_occur: Annotated[int, typer.Option(help="Visual-only categories (0-2) whose every clip also carries an "
                                               "audio-only category's sound, unlabelled.")] = 0,
    confounders: Annotated[bool, typer.Option(
        "--confounders", help="Also plant still, silent and duplicate clips (confounders_truth.csv).")] = False,
):
    """Write a planted audio-visual dataset whose truth is known (truth.csv, missing_truth.csv)."""
    from avaudit.display import AuditProgress, safe
    from avaudit.planted import make_samples as plant
    from avaudit.planted_confounders import KINDS, PER_KIND

    if clips < 1 or two_event < 0:
        fail(f"--clips must be 1 or more and --two-event 0 or more, not {clips} and {two_event}")
    with AuditProgress("writing clips") as progress:
        result = plant(out, seed=seed, clips_per_category=clips, two_event_per_category=two_event,
                       co_occur=co_occur, on_event=progress, confounders=PER_KIND if confounders else 0)
    console().print(f"planted set written to {safe(out)}: {safe(str(result))}", soft_wrap=True)
    if confounders:
        console().print(f"{len(KINDS) * PER_KIND} confounders planted beside them: manifest.csv gives every clip's "
                        "split, confounders_truth.csv what was planted where", soft_wrap=True)


@app.command(cls=PlainUsage)
def doctor(cache_dir: CacheOpt = None, model: Annotated[Optional[Path], typer.Option(
        help="Checkpoint to load [default: the shipped one].")] = None):
    """Check what a run needs: libraries against the pins, decord and PyAV on a real clip, onset detection,
    the model, the cache folder and the GPU. Exit 0 when all work, 1 with a fix for each problem."""
    from avaudit.display import show_checks
    from avaudit.doctor import PACKAGE, run_checks

    console().print(f"avaudit doctor: Python {sys.version.split()[0]} ({sys.executable}), avaudit in {PACKAGE}",
                    highlight=False, soft_wrap=True)
    if not show_checks(console(), run_checks(cache_dir=cache_dir, model=model)):
        raise typer.Exit(1)


def main() -> None:
    import os

    # The decoding workers and the network share the CPU cores during an audit; OpenMP threads
    # that spin after each parallel op take those cores from the decoders, sleeping ones give them
    # back (benchmarks/README.md). torch reads it at import, so it is set before any command runs;
    # a value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    app()
