"""Rich output: progress bars fed by the library's on_event calls, and user data made safe to print.

Paths, labels and ids come from the user's files: `safe()` them before they go into a rich string
or table cell, so `x[/y]` prints as itself (not as markup, nor as a MarkupError) and an escape
sequence in a file name reaches the terminal as the text `\x1b`, not as a command to it.
"""
from __future__ import annotations

import functools
import re
import warnings

import typer
from rich.console import Console
from rich.markup import escape
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

from avaudit.vocab import LAYERS, plural

console = Console(stderr=True)

# C0 and C1 control characters (ESC starts terminal commands, CR and BS overwrite what was printed,
# a newline forges lines) and the bidirectional overrides that make text read other than it is.
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def visible(text) -> str:
    """`text` with every control character written out as an escape (`\\x1b`, `\\n`, `\\u202e`)."""
    return CONTROL.sub(_spell, str(text))


def _spell(match: re.Match) -> str:
    code = ord(match.group())
    return {9: "\\t", 10: "\\n", 13: "\\r"}.get(code) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def safe(text) -> str:
    """User data for a rich string with markup: visible, and its [brackets] escaped."""
    return escape(visible(text))


def warn(message) -> None:
    """One yellow line on stderr (the CLI shows avaudit's own warnings this way)."""
    console.print(f"[yellow]warning:[/] {safe(message)}", highlight=False, soft_wrap=True)


class RateColumn(ProgressColumn):
    """Items per second, from rich's own speed estimate."""

    def render(self, task) -> Text:
        return Text(f"{task.speed:.1f}/s" if task.speed else "-/s", style="cyan")


def make_progress() -> Progress:
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TaskProgressColumn(), RateColumn(), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.fields[info]}", markup=False),
                    console=console, transient=False)


class _Display:
    """A live rich display for the length of a `with` block."""

    def __init__(self):
        self.progress = make_progress()
        self.task = None
        self.started = False

    def __enter__(self):
        return self

    def add_task(self, description: str, **fields):
        """A new bar; the display starts with the first (an error before any work prints no empty bar)."""
        if not self.started:
            self.progress.start()
            self.started = True
        return self.progress.add_task(safe(description), **fields)

    def __exit__(self, *exc):
        if self.started:
            self.progress.stop()


class AuditProgress(_Display):
    """on_event receiver for inference: one bar over the videos."""

    def __init__(self, description: str):
        super().__init__()
        self.description = description

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "start":
            self.task = self.add_task(self.description, total=info["total"], info="")
        elif kind == "advance":
            self.progress.advance(self.task, info["n"])
            self.progress.update(self.task, info=visible(info.get("info", "")))


class TrainProgress(_Display):
    """on_event receiver for training: the data mode, then one bar per stage counting its clips, so
    the rate is clips per second and the ETA the stage's; the info column has the epoch, the
    running loss and the last validation accuracies the stage measures. Piped (no terminal to
    redraw a bar on), one whole line per epoch instead, cut at no width."""

    def __init__(self):
        super().__init__()
        self.last = ""
        self.live = console.is_terminal

    def __call__(self, kind: str, info: dict) -> None:
        if kind == "data":
            console.print(f"[cyan]data:[/] {safe(info['note'])}", highlight=False, soft_wrap=True)
        elif kind == "stage":
            self.stage = info
            self.epoch, self.loss, self.last = info["first_epoch"], [], ""
            if self.live and info["epochs"] > info["first_epoch"]:
                self.task = self.add_task(f"{info['stage']} stage", total=self.remaining(info), info=self.epoch_info())
        elif kind == "batch":
            if info["epoch"] != self.epoch:
                self.epoch, self.loss = info["epoch"], []
            if info["loss"] is not None:
                self.loss.append(info["loss"])
            if self.live:
                self.progress.update(self.task, advance=info["clips"], info=self.epoch_info())
        elif kind == "epoch":
            self.last = f"val {self.accuracies(info, ' ')}  lr {info['lr']:.0e}"
            if self.live:
                self.progress.update(self.task, info=self.epoch_info())
            else:
                console.print(f"{info['stage']} stage epoch {info['epoch']}/{self.stage['epochs']}: loss "
                              f"{info['loss']:.3f}, val {self.accuracies(info, ', ')}, lr {info['lr']:.0e}",
                              markup=False, highlight=False, soft_wrap=True)

    @staticmethod
    def remaining(info: dict) -> int:
        """Clips the stage has still to train on (a resumed stage starts part-way)."""
        per_batch = max(1, -(-info["clips_per_epoch"] // max(1, info["batches"])))
        return max(0, (info["epochs"] - info["first_epoch"]) * info["clips_per_epoch"]
                   - info["first_step"] * per_batch)

    def accuracies(self, info: dict, sep: str) -> str:
        """The validation accuracies the stage measures, each named whole (n/a: no validation clip)."""
        return sep.join(f"{name} {value:.2f}" if value == value else f"{name} n/a"
                        for name in self.stage["measured"] for value in [info[f"val_{name}"]])

    def epoch_info(self) -> str:
        epoch = f"epoch {min(self.epoch + 1, self.stage['epochs'])}/{self.stage['epochs']}"
        loss = f"  loss {sum(self.loss) / len(self.loss):.3f}" if self.loss else ""
        return f"{epoch}{loss}  {self.last}"


def show_train_result(console, result: dict, out) -> None:
    """Validation accuracy per category and overall, and where the model went."""
    from rich.table import Table

    table = Table(title=f"validation accuracy ({result['n_val']} clips held out, {result['n_train']} trained on)")
    table.add_column("category", overflow="fold")
    for name in (*LAYERS, "vote"):
        table.add_column(name, justify="right")
    def cell(value: float, digits: int) -> str:  # NaN: no validation clip (training warned why)
        return "n/a" if value != value else f"{value:.{digits}f}"

    for row in result["categories"]:
        table.add_row(safe(row["category"]), *(cell(row[name], 2) for name in (*LAYERS, "vote")))
    table.add_row("[bold]all", *(f"[bold]{cell(result['val'][name], 3)}" for name in (*LAYERS, "vote")))
    console.print(table)
    console.print(f"model written to {safe(out)}", soft_wrap=True)
    written = [safe(path) for path in (result.get("history_csv"), result.get("curves_png")) if path is not None]
    if written:
        console.print(f"per-epoch history: {', '.join(written)}", soft_wrap=True)


def show_bias(console, run) -> None:
    """Table 3's row, Table 4's counts and the per-category table of a bias run."""
    from rich.table import Table

    out = console
    summary = run.summary
    if not summary.n_videos:
        return out.print("no video was audited: no table of categories")
    categories = run.tables["bias_categories.csv"]
    names = list(summary.categories_per_layer)
    table = Table(title=safe(f"categories per layer (Table 3), rule {summary.rule}, {summary.confidence} confidence"))
    for name in (*names, "total"):
        table.add_column(name, justify="right")
    counts = summary.categories_per_layer
    table.add_row(*(str(counts[name]) for name in names), str(summary.total))
    out.print(table)
    stats = summary.layer_statistics
    out.print("Table 4: uniquely correct videos " + ", ".join(
        f"{k} {v}" for k, v in stats["uniquely_correct"].items())
        + f"; (instant or onset) and not continuous {stats['instant_or_onset_not_continuous']}")
    shown = {"category": "category", "layer": "layer", "group": "group",
             "group_support": "support", "support_needed": "needed", "why_unclear": "why unclear",
             "type_support": "type support", "type_margin": "type margin"}
    categories = categories[[c for c in shown if c in categories.columns]]  # the rest: bias_categories.csv
    per = Table(title="per category: its call and how sure it is (support: share of redraws that agree; needed: "
                "the support a call needs in this run, the false-call cut included)")
    for name in categories.columns:
        per.add_column(shown[name], overflow="fold",
                       justify="left" if name in ("category", "layer", "group", "why_unclear") else "right")
    for row in categories.itertuples(index=False):
        per.add_row(*(safe(_cell(v)) for v in row))
    out.print(per)


def _cell(value) -> str:
    """A table cell: floats to 4 decimals (the type margin is read in thousandths), NaN (no margin: not an
    audio-visual category) left empty."""
    if isinstance(value, float):
        return "" if value != value else f"{round(value, 4) + 0.0:.4f}"  # + 0.0: -0.0 is shown as 0.0000
    return str(value)


def show_truth(console, truth: dict, out) -> None:
    """One line per level: how often the audit's modality agrees with people's, and Cohen's kappa."""
    videos, categories = truth["videos"], truth["categories"]
    source = "people's labels" if "people" in truth else "the annotated events"
    lines = [f"against {source}: {level} {block['n_agree']} of {block['n_scored']} agree"
             + (f" ({100 * block['agreement']:.1f}%)" if block["n_scored"] else "")
             + (f", kappa {block['kappa']:.2f}" if block.get("kappa") is not None else "")
             + (f", {block['n_unclear']} unclear counted apart" if block.get("n_unclear") else "")
             for level, block in (("videos", videos), ("categories", categories))]
    lines.append(f"{videos['n_video_not_annotated']} audited rows not in the truth, "
                 f"{videos['n_label_not_annotated']} with a label it does not give; "
                 f"{plural(truth['n_truth_unmatched'], 'truth row')} "
                 f"({plural(truth['n_truth_videos_unmatched'], 'video')}) match no audited video "
                 f"({out / 'bias_truth_unmatched.csv'}); "
                 f"see {out / 'bias_truth.csv'}, {out / 'bias_truth_scores.csv'} and {out / 'bias_truth_matrix.csv'}")
    console.print("\n".join(safe(line) for line in lines), highlight=False)


def show_missing_labels(console, run, top: int = 15) -> None:
    """A missing-labels run: its `top` candidates, what was set apart and, with --truth, the scores against
    people's label sets (precision, recall and average precision)."""
    from rich.table import Table

    candidates, summary = run.tables["missing_labels.csv"], run.summary
    table = Table(title=f"{plural(len(candidates), 'candidate label')} in {summary.n_videos_with_candidates:,} "
                        f"of {plural(summary.n_videos, 'video')}" + (f" (top {top})" if len(candidates) > top else ""))
    for name in ("video_id", "label", "candidate", "layer", "confidence", "precision"):
        table.add_column(name, overflow="fold")
    for row in candidates.head(top).itertuples(index=False):
        table.add_row(*(safe(v) for v in (row.video_id, row.label, row.candidate, row.layer)), f"{row.confidence:.3f}",
                      f"{row.precision:.2f}")
    console.print(table)
    console.print(f"{plural(summary.n_confused, 'candidate')} set apart as too unlikely (estimated precision) "
                  f"or a layer's confusion: see {safe(run.out / 'confusions.csv')}")
    if summary.truth is None:
        return
    truth, out = summary.truth, run.out

    def number(value) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    console.print(safe(f"against people's labels on {truth['n_videos_covered']:,} videos: {truth['n_right']} of "
                       f"{truth['n_candidates']} candidates right (precision {number(truth['precision'])}), "
                       f"{truth['n_right']} of {truth['n_missing']} missing labels found (recall "
                       f"{number(truth['recall'])}), average precision {number(truth['average_precision'])}; "
                       f"{truth['n_truth_videos_unmatched']} truth videos match no audited one; "
                       f"see {out / 'missing_labels_truth.csv'}"), highlight=False, soft_wrap=True)


def show_retarget(console, summary) -> None:
    """What a retarget kept (runs.RetargetSummary), where it went, and the Kinetics-Sounds comparison when
    asked for."""
    console.print(f"kept {summary.n_videos:,} of {plural(summary.n_input_rows, 'video')} in "
                  f"{plural(len(summary.categories), 'category', 'categories')} -> {visible(summary.out)} "
                  f"({summary.format}), from the bias run in {visible(summary.bias_run)}", markup=False,
                  highlight=False, soft_wrap=True)
    if summary.compare is not None:
        c = summary.compare
        console.print(f"{c['n_matched']} of {plural(c['n_reference'], c['reference'] + ' class')} are in the subset "
                      f"({100 * c['fraction']:.0f}%)")


def show_checks(console, checks) -> bool:
    """avaudit doctor's checks, one line each with the fix of every failure; whether all passed."""
    width = max(len(c.name) for c in checks)
    for check in checks:
        mark = "[green]ok  [/]" if check.ok else "[bold red]FAIL[/]"
        console.print(f"{mark}  {check.name:<{width}}  {escape(check.detail)}", highlight=False, soft_wrap=True)
        if not check.ok:
            console.print(f"      {'':<{width}}  fix: {escape(check.fix)}", highlight=False, soft_wrap=True)
    failed = [c.name for c in checks if not c.ok]
    if failed:
        console.print(f"[bold red]{len(failed)} of {len(checks)} checks failed[/]: {', '.join(failed)}",
                      highlight=False)
    else:
        console.print(f"[green]all {len(checks)} checks passed[/]", highlight=False)
    return not failed


def show_counts(console, run) -> None:
    """How many of a run's videos came from the cache, were decoded and were skipped, and where it wrote."""
    console.print(f"{run.n_cached:,} of {plural(run.n_rows, 'video')} read from the cache, "
                  f"{run.n_decoded:,} decoded, {len(run.skipped):,} skipped; outputs in {visible(run.out)}",
                  markup=False, highlight=False, soft_wrap=True)


# A library parameter's flag where the two names differ (ParameterError names the parameter).
FLAGS = {"fraction": "--sufficiency", "bias_run": "--from"}


def stdout():
    """stdout console; piped output gets wide lines instead of 80 columns of folded names."""
    from rich.console import Console

    out = Console()
    return out if out.is_terminal else Console(width=160)


def fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {safe(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def show_warning(message, category, filename, lineno, file=None, line=None):
    """avaudit's own warnings as one yellow line (its text made safe); others as Python shows them."""
    from avaudit.display import warn
    from avaudit.errors import AvauditWarning

    if issubclass(category, AvauditWarning):
        warn(message)
    else:
        show_warning.default(message, category, filename, lineno, file, line)


def one_line_errors(command):
    """The package's own errors (avaudit.errors.AvauditError: manifest, checkpoint, media, usage)
    end with one red line and exit code 2, a library parameter named by its flag; anything else is a
    bug and keeps its traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from avaudit.errors import AvauditError, AvauditWarning, NotRankZero, ParameterError

        try:
            with warnings.catch_warnings():
                show_warning.default = warnings.showwarning
                warnings.showwarning = show_warning
                warnings.simplefilter("always", AvauditWarning)  # avaudit says each once itself
                return command(*args, **kwargs)
        except NotRankZero:
            raise typer.Exit(0) from None
        except ParameterError as err:
            fail(f"{flag(err.parameter)} {err.problem}")
        except AvauditError as err:
            fail(str(err))

    return wrapper


def finish(run) -> None:
    """Print the run's notes; exit 1 when some videos were skipped (listed in <command>_skipped.csv), else 0."""
    out = stdout()
    for note in run.notes:
        out.print(f"[yellow]note:[/] {safe(note)}", highlight=False, soft_wrap=True)
    if len(run.skipped):
        reasons = ", ".join(f"{n:,} {r}" for r, n in run.skipped["reason"].value_counts().items())
        out.print(f"[yellow]{len(run.skipped):,} of {plural(run.n_rows, 'video')} skipped[/] ({safe(reasons)}): "
                  f"see {safe(run.skipped_path)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def flag(parameter: str) -> str:
    """The CLI's flag for a library parameter: `batch_size` -> `--batch-size`, `fraction` -> `--sufficiency`."""
    return FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


def show_localized(video, result: dict, target) -> None:
    """`localize`'s answer in two lines: the predicted label, where and when the sound is, and which labels
    the model knows."""
    from avaudit.labels import known_classes

    stdout().print(f"{safe(video)}: predicted {safe(result['predicted'])}; "
                    f"strongest response at {result['peak_time']:.1f} s, "
                    f"x={result['peak_xy_fraction'][0]:.2f} y={result['peak_xy_fraction'][1]:.2f} of the frame; "
                    f"pictures in {safe(target)}", soft_wrap=True)
    stdout().print(f"note: {safe(known_classes(result['classes']))}", highlight=False, soft_wrap=True)
