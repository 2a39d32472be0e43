"""One self-contained HTML page from the outputs of the audits found in a folder.

It stays small at any audit size: a table embeds at most MAX_ROWS rows (sortable, filterable, shown a page
at a time) and links its full CSV beside the outputs; skipped videos are counts by reason plus the first
rows. Pictures are embedded; flagged clips (the top missing-label candidates, each category's examples, the
clips with a quality flag and the duplicate pairs) play in `<video controls>` from their own files, by a path
relative to the report (file:// where none exists), so the page never reaches for a network.
"""
from __future__ import annotations

import base64
import html
import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import quote

import numpy as np
import pandas as pd

from avaudit.errors import UsageError
from avaudit.outputs import read_csv, read_csv_blocks
from avaudit.runs import RunRecord, find_runs, run_names
from avaudit.vocab import AV_LAYERS, CATEGORY_ASSIGNMENTS, LAYERS, QUALITY_FLAGS, plural

SECTIONS = ("settings", "table3", "categories", "table4", "truth", "missing", "quality", "retarget", "predictions",
            "skipped")
MAX_ROWS = 1000  # rows of one table embedded in the page; its CSV holds them all
PAGE_ROWS = 25  # rows of a table shown at a time
STORED_SUFFIXES = (".tar", ".parquet")  # the path of a clip inside a WebDataset shard or a Parquet file
STORED_NOTE = ('<p class="muted">DATA is stored in shards or Parquet: its clips are inside those files, so the '
               'page names the file that holds each one instead of playing it (a browser plays files, not tar '
               'members or Parquet cells). To watch one, extract it: <code>tar -xf SHARD.tar KEY.mp4</code>, '
               'or write its Parquet cell\'s bytes to a file.</p>')
FIRST_SKIPPED = 20  # skipped rows listed under the counts by reason
EXAMPLES = 2  # clips of each category to watch: its videos surest at the category's layer
TEXT_COLUMNS = ("video_id", "path", "label", "candidate", "category", "filename", "labels_eq7", "vote", "detail",
                "flags", "duplicate_of", "split", "labels", "streams")

ASSETS = Path(__file__).resolve().parent / "assets"  # report.js and report.css, package data
# Before its script runs, a table shows only its first page (else a 1000-row table flashes whole).
FIRST_PAGE_ONLY = f"table.paged:not(.ready) tbody tr:nth-child(n+{PAGE_ROWS + 1}){{display:none}}"


def run_file(runs: dict[str, RunRecord], command: str, name: str) -> Path | None:
    """`name` in the folder of `command`'s run, when that run is recorded and wrote it."""
    run = runs.get(command)
    return run.file(name) if run is not None and run.file(name).exists() else None


def read_table(path: Path, columns: list[str] | None = None, rows: int | None = None) -> pd.DataFrame:
    """An output CSV (only its `columns` or first `rows`, when given: a per-video table of ten million rows is
    read for a few columns, or for the rows the page shows) with names kept as text (a category called `1984` or
    `NA` is a name), and the other columns as numbers wherever every non-empty value is one (an empty
    `confusion` is a missing number)."""
    return typed(read_csv(path, dtype={c: str for c in TEXT_COLUMNS}, usecols=columns, nrows=rows))


def table_blocks(path: Path, columns: list[str]) -> Iterator[pd.DataFrame]:
    """read_table's `columns` a block of rows at a time, for what counts or ranks a per-video table's rows."""
    for block in read_csv_blocks(path, dtype={c: str for c in TEXT_COLUMNS}, usecols=columns):
        yield typed(block)


def typed(table: pd.DataFrame) -> pd.DataFrame:
    """The columns not named as text (TEXT_COLUMNS) as numbers, where every non-empty value is one."""
    for name in table.columns.difference(TEXT_COLUMNS):
        if not pd.api.types.is_numeric_dtype(table[name]):
            given = table[name] != ""
            number = pd.to_numeric(table[name].where(given), errors="coerce")
            if number.notna().sum() == given.sum():
                table[name] = number
    return table


def cell(value) -> str:
    """A table cell as HTML text: floats to 3 decimals, missing numbers empty."""
    if isinstance(value, float):
        return "" if np.isnan(value) else f"{value:.3f}"
    return html.escape(str(value))


def image(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def href(target: Path | str, folder: Path) -> str:
    """A link from the report in `folder` to a file: relative where one exists, else a file:// URI."""
    target = Path(target).absolute()
    try:
        return quote(Path(os.path.relpath(target, folder.absolute())).as_posix())
    except ValueError:  # another drive on Windows
        return target.as_uri()


def csv_link(path: Path, folder: Path) -> str:
    return f'<a href="{html.escape(href(path, folder))}">{html.escape(path.name)}</a>'


def in_shard(path: str) -> str | None:
    """What the page shows for a clip stored inside a WebDataset shard or a Parquet cell (its tables' path is
    that file): its place, as a browser plays files, never tar members or cells (docs/datasets.md); None for
    a clip of its own file."""
    if not str(path).endswith(STORED_SUFFIXES):
        return None
    return (f'<span class="muted" title="inside {html.escape(path)}: a page plays files, not tar members or Parquet '
            f'cells">in {html.escape(Path(path).name)}</span> ')


def player(path: str, folder: Path) -> str:
    """The clip itself, played from its file; preload none, so a long page loads no video until asked."""
    source = html.escape(href(path, folder))
    return in_shard(path) or f'<video controls preload="none" src="{source}" title="{html.escape(path)}"></video>'


def clip_link(path: str, folder: Path) -> str:
    """A link to the clip that a click turns into its player, playing: a page of a thousand players would
    cost Chromium seconds to lay out, even with nothing loaded."""
    link = f'<a class="clip" href="{html.escape(href(path, folder))}" title="{html.escape(path)}">&#9654; clip</a> '
    return in_shard(path) or link


def table_html(frame: pd.DataFrame, *, table_id: str = "", source: Path | None = None, folder: Path | None = None,
               paged: bool = True, escape: bool = True, total: int | None = None) -> str:
    """The first MAX_ROWS rows, shown PAGE_ROWS at a time, with a line saying how many and where the rest
    are (`total` rows in `source`, by default the frame's). escape=False: the cells are HTML already."""
    shown = frame.head(MAX_ROWS)
    total = len(frame) if total is None else total
    note = ""
    if source is not None:
        part = f"the first {len(shown):,} of {total:,} rows" if len(shown) < total else f"{total:,} rows"
        note = f'<p class="muted">{part}; the whole table: {csv_link(source, folder)}</p>'
    body = shown.to_html(index=False, table_id=table_id or None, classes="paged" if paged else None,
                         float_format=lambda v: f"{v:.3f}", escape=escape, border=0, na_rep="")
    if paged:
        body = body.replace('class="dataframe paged"', f'class="dataframe paged" data-page="{PAGE_ROWS}"', 1)
    return note + body


def thumbnails(path: str, n: int = 5) -> bytes | None:
    """A strip of n frames of a clip, or None when it cannot be decoded any more."""
    if not os.path.isfile(path):
        return None
    from avaudit.media.decode import thumbnail_frames
    from avaudit.plots import frame_strip

    try:
        return frame_strip(thumbnail_frames(path, n=n))
    except Exception:  # noqa: BLE001 - a report must not fail over one vanished clip
        return None


def section(name: str, title: str, body: str) -> str:
    return f'<section id="{name}"><h2>{html.escape(title)}</h2>{body}</section>'


def absent(what: str) -> str:
    return f'<p class="muted">no {what} run found</p>'


def category_examples(blocks: Iterable[pd.DataFrame], categories: pd.DataFrame) -> pd.Series:
    """Each category's EXAMPLES videos surest of their label at the category's layer (the best audio-visual
    layer when its type is unclear, the best layer when redundant): category -> list of paths. The videos come a
    block of rows at a time; each block's are ranked with the best of those before them, so ties go to the
    earlier row as in one ranking of them all."""
    best = pd.DataFrame({"label": pd.Series(dtype=str), "path": pd.Series(dtype=str)})
    layer_of, column_of = dict(zip(categories["category"], categories["layer"])), {n: i for i, n in enumerate(LAYERS)}
    for videos in blocks:
        conf = videos[[f"conf_{name}" for name in LAYERS]].to_numpy(float)
        layer = videos["label"].map(layer_of).to_numpy()
        column = pd.Series(layer).map(column_of).fillna(-1).to_numpy(int)
        best_av = conf[:, : len(AV_LAYERS)].max(axis=1) if len(conf) else np.zeros(0)
        score = np.where(column >= 0, conf[np.arange(len(conf)), column],
                         np.where(layer == "audiovisual", best_av, conf.max(axis=1, initial=0)))
        ranked = pd.concat([best, videos[["label", "path"]].assign(score=score)], ignore_index=True).sort_values(
            ["label", "score"], ascending=[True, False], kind="mergesort")
        best = ranked.groupby("label", sort=False).head(EXAMPLES)
    return best.groupby("label", sort=False)["path"].agg(list)


def bias_sections(folder: Path, summary_path: Path) -> list[str]:
    from avaudit.plots import layer_bars

    summary = json.loads(summary_path.read_text())
    per_layer = summary["categories_per_layer"]
    counts = {n: per_layer[n] for n in CATEGORY_ASSIGNMENTS if n in per_layer}
    parts = [section("table3", "Categories per layer (Table 3)", image(
        layer_bars(counts, title=f"rule {summary['rule']}, {summary['confidence']} confidence"), "Table 3")
        + table_html(pd.DataFrame([counts]), paged=False))]
    categories_path = summary_path.parent / "bias_categories.csv"
    categories = read_table(categories_path)
    examples = category_examples(table_blocks(summary_path.parent / "bias_videos.csv",
                                              ["path", "label", *(f"conf_{n}" for n in LAYERS)]), categories)
    shown = categories.head(MAX_ROWS).map(cell)
    shown.insert(1, "examples", ['<span class="clips">' + "".join(clip_link(p, folder) for p in examples.get(c, []))
                                 + "</span>" for c in categories["category"].head(MAX_ROWS)])
    per_video = csv_link(summary_path.parent / "bias_videos.csv", folder)
    parts.append(section("categories", "Per category", table_html(
        shown, table_id="categories", source=categories_path, folder=folder, escape=False, total=len(categories))
        + f'<p class="muted">per video: {per_video}</p>'))
    stats = summary["layer_statistics"]
    rows = [{"layer": k, "uniquely correct videos": v} for k, v in stats["uniquely_correct"].items()]
    rows.append({"layer": "(instant or onset) and not continuous",
                 "uniquely correct videos": stats["instant_or_onset_not_continuous"]})
    parts.append(section("table4", "Layer statistics (Table 4)", table_html(pd.DataFrame(rows), paged=False)))
    truth = summary_path.parent / "bias_truth_categories.csv"
    body = '<p class="muted">no bias run with --truth (or --truth-audio/--truth-visual) found</p>'
    if "truth" in summary and truth.exists():
        t = summary["truth"]
        body = "".join(f"<p>{level}: the audit's group agrees with the annotated modality for {t[level]['n_agree']:,} "
                       f"of {t[level]['n_scored']:,}" + (f", Cohen's kappa {t[level]['kappa']:.2f}"
                       if t[level].get("kappa") is not None else "") + "</p>" for level in ("videos", "categories"))
        body += table_html(read_table(truth), source=truth, folder=folder) + (
            f'<p class="muted">per video: {csv_link(summary_path.parent / "bias_truth.csv", folder)}</p>')
    parts.append(section("truth", "Against annotated modalities", body))
    return parts


def missing_section(folder: Path, runs: dict[str, RunRecord], top: int) -> str:
    path = run_file(runs, "missing-labels", "missing_labels.csv")
    if not path:
        return section("missing", "Missing-label candidates", absent("missing-labels"))
    missing = read_table(path)
    rows = []
    for row in missing.head(top).itertuples(index=False):
        strip = thumbnails(row.path)
        rows.append(f"<tr><td>{html.escape(row.video_id)}</td><td>{html.escape(row.label)}</td>"
                    f"<td>{html.escape(row.candidate)}</td><td>{html.escape(row.layer)}</td>"
                    f"<td>{row.confidence:.3f}</td><td>{player(row.path, folder)}</td>"
                    f"<td>{image(strip, row.video_id) if strip else ''}</td></tr>")
    body = (f"<p>{len(missing):,} candidates in {missing['video_id'].nunique():,} videos; the top {len(rows)}, to "
            f"watch and hear:</p><table><thead><tr><th>video</th><th>label</th><th>candidate</th><th>layer</th>"
            f"<th>confidence</th><th>clip</th><th>frames</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
            f"<h3>All candidates</h3>" + table_html(missing, source=path, folder=folder))
    confusions = path.parent / "confusions.csv"
    if confusions.exists():
        body += ("<h3>Set apart: a layer's systematic confusion between categories</h3>"
                 + table_html(read_table(confusions), source=confusions, folder=folder))
    return section("missing", "Missing-label candidates", body)


def quality_section(folder: Path, runs: dict[str, RunRecord]) -> str:
    """The quality run's counts, its flagged clips and its duplicate pairs, each clip behind a link that plays it."""
    path = run_file(runs, "quality", "quality_videos.csv")
    summary = run_file(runs, "quality", "quality_summary.json")
    if not path or not summary:
        return section("quality", "Quality flags", absent("quality"))
    info = json.loads(summary.read_text())
    videos = read_table(path)
    flagged = videos[videos["flags"] != ""]
    shown = flagged.head(MAX_ROWS).map(cell)
    shown.insert(1, "clip", [clip_link(p, folder) for p in flagged["path"].head(MAX_ROWS)])
    counts = ", ".join(f"{info['n_flagged'][flag]:,} {flag}" for flag in QUALITY_FLAGS)
    streams = ", ".join(f"{info['pairs_per_streams'][name]:,} {name}" for name in ("audiovisual", "audio", "visual"))
    body = (f"<p>{info['n_flagged']['any']:,} of {plural(info['n_videos'], 'clip')} flagged ({counts}); "
            f"{plural(info['n_duplicate_pairs'], 'duplicate pair')} ({streams}), {info['n_cross_split_pairs']:,} "
            f"of them across splits</p>" + table_html(shown, table_id="flagged", escape=False)
            + f'<p class="muted">every clip, flagged or not, with its levels: {csv_link(path, folder)}</p>')
    pairs_path = path.parent / "quality_duplicates.csv"
    if pairs_path.exists():
        pairs = read_table(pairs_path)
        where = dict(zip(videos["video_id"], videos["path"]))
        shown = pairs.head(MAX_ROWS).map(cell)
        for column in ("video_id", "duplicate_of"):
            shown[column] = [clip_link(where[v], folder) + cell(v) if v in where else cell(v)
                             for v in pairs[column].head(MAX_ROWS)]
        body += "<h3>Duplicate pairs</h3>" + table_html(shown, table_id="duplicates", source=pairs_path,
                                                         folder=folder, escape=False, total=len(pairs))
    return section("quality", "Quality flags", body)


def retarget_section(folder: Path, runs: dict[str, RunRecord]) -> str:
    """The retarget run found by its record (retarget_run.yaml, naming its summary), whatever its --out."""
    summary = run_file(runs, "retarget", str(runs["retarget"].settings.get("summary"))) if "retarget" in runs else None
    if summary is None:
        return section("retarget", "Retargeted subset", absent("retarget"))
    info = json.loads(summary.read_text())
    names = info["categories"]
    listed = ", ".join(names[:MAX_ROWS]) + (f" … and {len(names) - MAX_ROWS:,} more" if len(names) > MAX_ROWS else "")
    body = (f"<p>kept {info['n_videos']:,} of {info['n_input_rows']:,} rows ({', '.join(info['keep'])}, by "
            f"{info['by']}) in {len(names):,} categories &rarr; {html.escape(info['out'])} "
            f"(summary: {csv_link(summary, folder)})</p><p>{html.escape(listed)}</p>")
    if "compare" in info:
        c = info["compare"]
        body += f"<p>{c['n_matched']} of {c['n_reference']} {c['reference']} classes are in the subset.</p>"
    return section("retarget", "Retargeted subset", body)


def predictions_section(folder: Path, runs: dict[str, RunRecord]) -> str:
    path = run_file(runs, "predict", "predictions.csv")
    if not path:
        return section("predictions", "Predictions", absent("predict"))
    videos = labels = 0  # counted a block at a time
    for block in table_blocks(path, ["labels_eq7"]):
        videos, labels = videos + len(block), labels + int(block["labels_eq7"].str.count(";").add(1).sum())
    return section("predictions", "Predictions", f"<p>{videos:,} videos; mean labels per video (eq. 7) "
                   f"{labels / videos if videos else float('nan'):.2f}</p>"
                   + table_html(read_table(path, rows=MAX_ROWS), source=path, folder=folder, total=videos))


def skipped_section(folder: Path, records: list[RunRecord]) -> str:
    paths = sorted(path for run in records if (path := run.file(run_names(run.command)[0])).exists())
    if not paths:
        return section("skipped", "Skipped videos", "<p>no video was skipped</p>")
    skipped = pd.concat([read_table(p).assign(output=p.parent.name) for p in paths], ignore_index=True)
    counts = skipped.groupby(["output", "reason"]).size().rename("videos").reset_index()
    body = (f"<p>{len(skipped):,} skipped rows; every one, with its reason, in "
            + ", ".join(csv_link(p, folder) for p in paths) + "</p>" + table_html(counts, paged=False)
            + f"<h3>The first {min(FIRST_SKIPPED, len(skipped))}</h3>"
            + table_html(skipped.head(FIRST_SKIPPED), paged=False))
    return section("skipped", "Skipped videos", body)


@contextmanager
def damaged_run(run: RunRecord | None, folder: Path | None = None):
    """A run's table or summary that is not as avaudit wrote it (edited, truncated, another tool's) is one
    line naming its run, not a traceback; the file's content is not repeated."""
    try:
        yield
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
        where = f"the {run.command} run in {run.folder}" if run is not None else f"a skipped list under {folder}"
        raise UsageError(f"{where}: a table or summary is not as avaudit wrote it ({type(err).__name__}); "
                         f"run that command again") from None


def build_report(folder: Path, *, top_missing: int = 10) -> Path:
    """Write folder/report.html from the bias, missing-labels, quality, retarget and predict runs recorded in
    `folder` or one level below (runs.find_runs; the first of a command's runs where it ran twice)."""
    from avaudit.outputs import atomic_write_text

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder (give the --out folder of an audit, e.g. avaudit-out/)")
    records = find_runs(folder)
    if not records:
        raise UsageError(f"{folder}: no avaudit outputs here (run bias, missing-labels, quality, retarget or predict "
                         f"with --out under it, e.g. avaudit-out/)")
    runs = {}
    for run in records:
        runs.setdefault(run.command, run)
    settings = pd.DataFrame([{"output": run.folder.name, **{k: v for k, v in run.settings.items()
                                                            if k not in ("config", "outputs")}} for run in records])
    stored = any(run.settings.get("format") in ("webdataset", "parquet") for run in records)
    parts = [section("settings", "Run settings", table_html(settings.astype(str), paged=False)
                     + (STORED_NOTE if stored else ""))]
    summary_path = run_file(runs, "bias", "bias_summary.json")
    if summary_path:
        with damaged_run(runs["bias"]):
            parts += bias_sections(folder, summary_path)
    else:
        parts += [section(n, t, absent("bias")) for n, t in
                  (("table3", "Categories per layer (Table 3)"), ("categories", "Per category"),
                   ("table4", "Layer statistics (Table 4)"), ("truth", "Against annotated modalities"))]
    for command, build in (("missing-labels", lambda: missing_section(folder, runs, top_missing)),
                           ("quality", lambda: quality_section(folder, runs)),
                           ("retarget", lambda: retarget_section(folder, runs)),
                           ("predict", lambda: predictions_section(folder, runs))):
        with damaged_run(runs.get(command)):
            parts.append(build())
    with damaged_run(None, folder):
        parts.append(skipped_section(folder, records))
    style = (ASSETS / "report.css").read_text() + FIRST_PAGE_ONLY
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>avaudit report</title><style>{style}</style>"
            f"</head><body><h1>avaudit report: {html.escape(str(folder))}</h1>{''.join(parts)}"
            f"<script>\n{(ASSETS / 'report.js').read_text()}</script></body></html>")
    out = folder / "report.html"
    atomic_write_text(out, page)
    return out
