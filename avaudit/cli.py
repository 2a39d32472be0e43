"""The command line: one small function per command that parses, calls avaudit.commands, and prints.

Heavy modules (torch, numpy, pandas, decord, librosa) are imported inside the commands so
`--help` stays fast.
"""
from __future__ import annotations

import functools
import sys
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from avaudit.vocab import By, Confidence, Device, NoAudio, Rule, plural

app = typer.Typer(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
                  help="Audit audio-visual video datasets with the event-specific fusion network.")


def console():
    """stdout console; piped output gets wide lines instead of 80 columns of folded names."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=160)


def fail(message: str) -> None:
    from avaudit.display import console as err_console
    from avaudit.display import safe

    err_console.print(f"[bold red]error:[/] {safe(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def show_warning(message, category, filename, lineno, file=None, line=None):
    """avaudit's own warnings as one yellow line (its text made safe); others as Python shows them."""
    from avaudit.display import warn
    from avaudit.errors import AvauditWarning

    if issubclass(category, AvauditWarning):
        warn(message)
    else:
        show_warning.default(message, category, filename, lineno, file, line)


def guarded(command):
    """The package's own errors (avaudit.errors.AvauditError: manifest, checkpoint, media, usage)
    end with one red line and exit code 2; anything else is a bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from avaudit.commands import NotRankZero
        from avaudit.errors import AvauditError, AvauditWarning

        try:
            with warnings.catch_warnings():
                show_warning.default = warnings.showwarning
                warnings.showwarning = show_warning
                warnings.simplefilter("always", AvauditWarning)  # avaudit says each once itself
                return command(*args, **kwargs)
        except NotRankZero:
            raise typer.Exit(0) from None
        except AvauditError as err:
            fail(str(err))

    return wrapper


def finish(run) -> None:
    """Print the run's notes; exit 1 when some videos were skipped (listed in <command>_skipped.csv), else 0."""
    from avaudit.display import safe

    out = console()
    for note in run.notes:
        out.print(f"[yellow]note:[/] {safe(note)}", highlight=False, soft_wrap=True)
    if len(run.skipped):
        reasons = ", ".join(f"{n:,} {r}" for r, n in run.skipped["reason"].value_counts().items())
        out.print(f"[yellow]{len(run.skipped):,} of {plural(run.n_rows, 'video')} skipped[/] ({safe(reasons)}): "
                  f"see {safe(run.skipped_path)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


DataArg = Annotated[Path, typer.Argument(help="Folder of category folders, flat folder, or manifest file.")]
ModelOpt = Annotated[Optional[Path], typer.Option(help="Checkpoint [default: the shipped avaudit/models/default.pt].")]
RootOpt = Annotated[Optional[Path], typer.Option(help="Where a manifest's media live [default: its folder].")]
DeviceOpt = Annotated[Device, typer.Option(help="Where the network runs.")]
BatchOpt = Annotated[int, typer.Option(help="Clips per batch.")]
WorkersOpt = Annotated[Optional[int], typer.Option(
    help="Decoding worker processes; 0 means 1, so that a crashing decoder costs one clip "
         "[default: one per CPU core, shared by torchrun ranks].", show_default=False)]
ClassesOpt = Annotated[Optional[Path], typer.Option(
    help="AudioSet's class index (index,mid,display_name) naming a segments CSV's labels "
         "[default: class_labels_indices.csv beside DATA].")]
OutsideOpt = Annotated[bool, typer.Option(help="Open manifest rows that name files outside --root.")]


def version(value: bool) -> None:
    if value:
        from importlib.metadata import version as installed

        print(f"avaudit {installed('avaudit')}")
        raise typer.Exit(0)


@app.callback()
def main_options(_version: Annotated[bool, typer.Option("--version", callback=version, is_eager=True,
                                                        help="Print the version and exit.")] = False):
    """Audit audio-visual video datasets with the event-specific fusion network."""


@app.command()
@guarded
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
    classes: ClassesOpt = None, allow_outside_root: OutsideOpt = False,
):
    """Train the network: audio backbone, then video backbone, then all five layers (section 4.2)."""
    from avaudit.device import init_distributed
    from avaudit.display import TrainProgress, safe, show_train_result
    from avaudit.outputs import write_csv
    from avaudit.training import train_data

    rank, _ = (0, 1) if out.exists() and not resume else init_distributed(device.value)
    with TrainProgress() if rank == 0 else nullcontext(lambda kind, info: None) as progress:
        result = train_data(data, preset=preset, out=out, epochs=epochs, seed=seed, root=root,
                            video_weights=video_weights, device=device.value, resume=resume, on_event=progress,
                            workers=workers, memory_budget=memory_budget, checkpoint_minutes=checkpoint_minutes,
                            checkpoint_steps=checkpoint_steps, classes=classes,
                            allow_outside_root=allow_outside_root)
    if rank != 0:
        return
    skipped = result["skipped"]
    show_train_result(console(), result, out)
    if len(skipped):
        listed = out.with_name(out.name + ".skipped.csv")  # beside the model, named after it
        write_csv(skipped, listed)
        console().print(f"[yellow]{plural(len(skipped), 'clip')} skipped[/]: see {safe(listed)}", soft_wrap=True)
        raise typer.Exit(1)


NoAudioOpt = Annotated[NoAudio, typer.Option(help="Clips without a sound track: skip them, or audit them "
                                                   "with silence.")]


OutOpt = Annotated[Optional[Path], typer.Option(help="Output folder [default: ./avaudit-out/<command>].")]
CacheOpt = Annotated[Optional[Path], typer.Option(
    help="Logit cache, outside DATA [default: $AVAUDIT_CACHE_DIR or ~/.cache/avaudit].")]
TruthOpt = Annotated[Optional[list[str]], typer.Option(help="People's labels to score against: a VGGSounder CSV, "
    "`vggsounder` (the installed package's), or AVVP's audio then visual event file (twice).")]
ConfidenceOpt = Annotated[Confidence, typer.Option(
    help="raw: the paper's softmax; calibrated: per-layer temperatures fitted on validation.")]


def audit_options(model, root, device, batch_size, workers, cache_dir, confidence, no_audio, classes=None,
                  allow_outside_root=False):
    """The AuditOptions every audit command takes, from the options they all share."""
    from avaudit.commands import DEFAULT_CONFIDENCE, AuditOptions

    return AuditOptions(model=model, root=root, device=device.value, batch_size=batch_size, workers=workers,
                        cache_dir=cache_dir, confidence=confidence or DEFAULT_CONFIDENCE, no_audio=no_audio,
                        classes=classes, allow_outside_root=allow_outside_root)


def run_with_progress(name: str, function, *args, **kwargs):
    from avaudit.display import AuditProgress

    with AuditProgress(name) as progress:
        return function(*args, on_event=progress, **kwargs)


def cache_line(run) -> None:
    from avaudit.display import show_counts

    show_counts(console(), run)


@app.command()
@guarded
def bias(data: DataArg, model: ModelOpt = None, out: OutOpt = None,
         rule: Annotated[Rule, typer.Option(help="paper: layer most confident in the true label; "
                                                 "sufficiency: does one modality alone suffice.")] = None,
         sufficiency: Annotated[Optional[float], typer.Option(
             help="Fraction of the best audio-visual confidence a unimodal layer must reach.")] = None,
         type_margin: Annotated[Optional[float], typer.Option(help="Name an event type only where its layer leads "
             "the other audio-visual layers by this; else `audiovisual` [default: 0.003; 0 names all].")] = None,
         truth_audio: Annotated[Optional[Path], typer.Option(help="Audio events to score against (AVVP).")] = None,
         truth_visual: Annotated[Optional[Path], typer.Option(help="Visual events, with --truth-audio.")] = None,
         truth: TruthOpt = None,
         confidence: ConfidenceOpt = None, root: RootOpt = None, device: DeviceOpt = Device.auto,
         batch_size: BatchOpt = 8, workers: WorkersOpt = None, cache_dir: CacheOpt = None,
         no_audio: NoAudioOpt = NoAudio.skip, classes: ClassesOpt = None, allow_outside_root: OutsideOpt = False):
    """Which layer carries each video's and category's label (Tables 3 and 4)."""
    from avaudit import commands
    from avaudit.display import show_bias

    if (truth_audio is None) != (truth_visual is None):
        fail("--truth-audio and --truth-visual go together: the audio events and the visual events of the same videos")
    options = audit_options(model, root, device, batch_size, workers, cache_dir, confidence, no_audio, classes,
                            allow_outside_root)
    run = run_with_progress("bias", commands.bias, data, out=out, rule=rule or commands.DEFAULT_RULE,
                            fraction=sufficiency if sufficiency is not None else commands.SUFFICIENCY_FRACTION,
                            type_margin=commands.TYPE_MARGIN if type_margin is None else type_margin,
                            truth=[*(truth or ()), *filter(None, (truth_audio, truth_visual))] or None, options=options)
    show_bias(console(), run)
    cache_line(run)
    finish(run)


@app.command()
@guarded
def predict(data: DataArg, model: ModelOpt = None, out: OutOpt = None,
            export_probs: Annotated[Optional[Path], typer.Option(
                help="Also write labels and per-class probabilities (.npz) for cleanlab.")] = None,
            confidence: ConfidenceOpt = None, root: RootOpt = None, device: DeviceOpt = Device.auto,
            batch_size: BatchOpt = 8, workers: WorkersOpt = None, cache_dir: CacheOpt = None,
            no_audio: NoAudioOpt = NoAudio.skip, classes: ClassesOpt = None, allow_outside_root: OutsideOpt = False):
    """Each video's vote (equation 6), multi-label set (equation 7) and per-layer confidence."""
    from avaudit import commands

    options = audit_options(model, root, device, batch_size, workers, cache_dir, confidence, no_audio, classes,
                            allow_outside_root)
    run = run_with_progress("predict", commands.predict, data, out=out, export_probs=export_probs,
                            options=options)
    table = run.tables["predictions.csv"]
    mean = table["labels_eq7"].str.count(";").add(1).mean() if len(table) else 0
    console().print(f"{plural(len(table), 'video')} predicted" + (f"; mean labels per video (eq. 7): {mean:.2f}"
                                                                  if len(table) else ""))
    cache_line(run)
    finish(run)


@app.command("missing-labels")
@guarded
def missing_labels(data: DataArg, model: ModelOpt = None, out: OutOpt = None, confidence: ConfidenceOpt = None,
                   min_confidence: Annotated[Optional[float], typer.Option(
                       help="Leave out candidates below this confidence [default: 0.5].")] = None,
                   max_confusion: Annotated[Optional[float], typer.Option(help="Set apart (confusions.csv) candidates "
                       "proposed this much on their label's other videos [default: 0.1; over 1 keeps all].")] = None,
                   truth: TruthOpt = None,
                   root: RootOpt = None, device: DeviceOpt = Device.auto, batch_size: BatchOpt = 8,
                   workers: WorkersOpt = None, cache_dir: CacheOpt = None, no_audio: NoAudioOpt = NoAudio.skip,
                   classes: ClassesOpt = None, allow_outside_root: OutsideOpt = False):
    """Labels a video shows (equation 7) that its annotation lacks, most confident first."""
    from rich.table import Table

    from avaudit import commands
    from avaudit.display import safe, show_candidate_truth

    options = audit_options(model, root, device, batch_size, workers, cache_dir, confidence, no_audio, classes,
                            allow_outside_root)
    run = run_with_progress("missing-labels", commands.missing_labels, data, out=out,
                            min_confidence=commands.MIN_CANDIDATE_CONFIDENCE if min_confidence is None
                            else min_confidence,
                            max_confusion=commands.MAX_CANDIDATE_CONFUSION if max_confusion is None else max_confusion,
                            truth=truth or None, options=options)
    candidates = run.tables["missing_labels.csv"]
    table = Table(title=f"{plural(len(candidates), 'candidate label')} in {run.summary['n_videos_with_candidates']:,} "
                        f"of {plural(run.summary['n_videos'], 'video')} (top 15)")
    for name in ("video_id", "label", "candidate", "layer", "confidence"):
        table.add_column(name, overflow="fold")
    for row in candidates.head(15).itertuples(index=False):
        table.add_row(*(safe(v) for v in (row.video_id, row.label, row.candidate, row.layer)), f"{row.confidence:.3f}")
    console().print(table)
    console().print(f"{plural(run.summary['n_confused'], 'candidate')} set apart as a layer's systematic confusion "
                    f"between "
                    f"categories: see {safe(run.out / 'confusions.csv')}")
    show_candidate_truth(console(), run)
    cache_line(run)
    finish(run)


@app.command()
@guarded
def retarget(data: Annotated[Optional[Path], typer.Argument(
                 help="DATA to audit first; without it, the latest `bias` run is used.")] = None,
             keep: Annotated[list[str], typer.Option(
                 help="Group (audiovisual, audio, visual, redundant) or layer to keep; repeatable.")] = None,
             by: Annotated[By, typer.Option(help="Keep whole categories or single videos.")] = By.category,
             out: Annotated[Optional[Path], typer.Option(
                 help="Subset file, in DATA's own format [default: avaudit-out/retarget/subset.<ext>].")] = None,
             from_run: Annotated[Optional[Path], typer.Option(
                 "--from", help="A bias run's folder, used without DATA [default: the newest under avaudit-out/].",
             )] = None,
             compare: Annotated[Optional[str], typer.Option(
                 help="Report how many classes of a Kinetics-Sounds list (ks31, ks32, ks34) the subset holds.")] = None,
             model: ModelOpt = None, rule: Annotated[Rule, typer.Option()] = None,
             confidence: ConfidenceOpt = None, root: RootOpt = None, device: DeviceOpt = Device.auto,
             batch_size: BatchOpt = 8, workers: WorkersOpt = None, cache_dir: CacheOpt = None,
             no_audio: NoAudioOpt = NoAudio.skip, classes: ClassesOpt = None, allow_outside_root: OutsideOpt = False):
    """Write the subset of DATA whose categories (or videos) fall in --keep, e.g. a Kinetics-AV list."""
    from avaudit import commands

    if not keep:
        fail("give at least one --keep (audiovisual, audio, visual, redundant, or a layer name)")
    options = audit_options(model, root, device, batch_size, workers, cache_dir, confidence, no_audio, classes,
                            allow_outside_root)
    run = run_with_progress("retarget", commands.retarget, data, keep=keep, by=by.value, out=out, compare=compare,
                            bias_run=from_run, rule=rule or commands.DEFAULT_RULE, options=options)
    from avaudit.display import show_retarget

    show_retarget(console(), run.summary)
    finish(run)


@app.command()
@guarded
def localize(video: Annotated[Path, typer.Argument(help="One video file.")], model: ModelOpt = None,
             out: OutOpt = None,
             timeline: Annotated[bool, typer.Option(help="Also plot each layer's confidence per second.")] = False):
    """Where and when the sound is, from alpha_t = V_t z^A_t over the frames (section 4.4)."""
    from avaudit import commands
    from avaudit.display import safe
    from avaudit.labels import classes_note
    from avaudit.localize import localize as run_localize

    target = commands.output_dir(out, "localize")
    result = run_localize(video, model=model or commands.DEFAULT_MODEL, out=target, timeline=timeline)
    console().print(f"{safe(video)}: predicted {safe(result['predicted'])}; "
                    f"strongest response at {result['peak_time']:.1f} s, "
                    f"x={result['peak_xy_fraction'][0]:.2f} y={result['peak_xy_fraction'][1]:.2f} of the frame; "
                    f"pictures in {safe(target)}", soft_wrap=True)
    console().print(f"note: {safe(classes_note(result['classes'], []))}", highlight=False, soft_wrap=True)


@app.command()
@guarded
def report(folder: Annotated[Path, typer.Argument(help="Folder holding audit outputs, e.g. avaudit-out/.")]):
    """One self-contained report.html from the bias, missing-labels, retarget and predict outputs."""
    from avaudit.display import safe
    from avaudit.report import build_report

    console().print(f"report written to {safe(build_report(folder))}", soft_wrap=True)


@app.command("make-samples")
@guarded
def make_samples(
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist or be empty).")],
    seed: Annotated[int, typer.Option(help="Seed of every planted choice.")] = 0,
    clips: Annotated[int, typer.Option(help="Clips per category.")] = 20,
    two_event: Annotated[int, typer.Option(help="Two-event clips per unimodal category.")] = 2,
):
    """Write a planted audio-visual dataset whose truth is known (truth.csv, missing_truth.csv)."""
    from avaudit.display import safe
    from avaudit.planted import make_samples as write_samples

    result = write_samples(out, seed=seed, clips_per_category=clips, two_event_per_category=two_event)
    console().print(f"planted set written to {safe(out)}: {safe(result)}", soft_wrap=True)


@app.command()
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
