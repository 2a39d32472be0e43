"""One self-contained HTML page from the outputs of the audits found in a folder.

It stays small at any audit size: a table embeds at most MAX_ROWS rows (sortable, filterable, shown a page
at a time) and links its full CSV beside the outputs; skipped videos are counts by reason plus the first
rows. Pictures are embedded; flagged clips (the top missing-label candidates, each category's examples)
play in `<video controls>` from their own files, by a path relative to the report (file:// where none
exists), so the page never reaches for a network.
"""
from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import yaml

from avaudit.errors import UsageError
from avaudit.outputs import read_csv
from avaudit.vocab import AV_LAYERS, CATEGORY_ASSIGNMENTS, LAYERS

SECTIONS = ("settings", "table3", "categories", "table4", "truth", "missing", "retarget", "predictions", "skipped")
MAX_ROWS = 1000  # rows of one table embedded in the page; its CSV holds them all
PAGE_ROWS = 25  # rows of a table shown at a time
FIRST_SKIPPED = 20  # skipped rows listed under the counts by reason
EXAMPLES = 2  # clips of each category to watch: its videos surest at the category's layer
TEXT_COLUMNS = ("video_id", "path", "label", "candidate", "category", "filename", "labels_eq7", "vote", "detail")

SCRIPT = """
const clean = t => t.toLowerCase();
document.querySelectorAll('table.paged').forEach(table => {
  const body = table.tBodies[0], size = +table.dataset.page;
  let page = 0, query = '';
  const bar = document.createElement('div');
  bar.className = 'pager';
  bar.innerHTML = '<input type="search" placeholder="filter rows"> <button>&lsaquo; previous</button> '
    + '<span></span> <button>next &rsaquo;</button>';
  table.before(bar);
  const [filter, previous, label, next] = bar.querySelectorAll('input, button, span');
  const matching = () => [...body.rows].filter(r => !query || clean(r.textContent).includes(query));
  const render = () => {
    const rows = matching(), pages = Math.max(1, Math.ceil(rows.length / size));
    page = Math.max(0, Math.min(page, pages - 1));
    const shown = new Set(rows.slice(page * size, (page + 1) * size));
    for (const r of body.rows) r.style.display = shown.has(r) ? '' : 'none';
    label.textContent = `page ${page + 1} of ${pages} (${rows.length} rows)`;
    table.classList.add('ready');
  };
  filter.addEventListener('input', () => { query = clean(filter.value); page = 0; render(); });
  previous.addEventListener('click', () => { page -= 1; render(); });
  next.addEventListener('click', () => { page += 1; render(); });
  table.querySelectorAll('th').forEach((th, column) => th.addEventListener('click', () => {
    const up = th.dataset.up !== '1';
    th.dataset.up = up ? '1' : '0';
    const value = r => { const t = r.cells[column].textContent, n = Number(t); return t === '' || isNaN(n) ? t : n; };
    const rows = [...body.rows].sort((a, b) => {
      const x = value(a), y = value(b);
      if (typeof x !== typeof y) return (typeof x === 'number' ? -1 : 1) * (up ? 1 : -1);
      return (x > y ? 1 : x < y ? -1 : 0) * (up ? 1 : -1);
    });
    rows.forEach(r => body.appendChild(r));
    page = 0;
    render();
  }));
  render();
});
document.addEventListener('click', event => {  // a clip link becomes its player, playing
  const link = event.target.closest('a.clip');
  if (!link) return;
  event.preventDefault();
  const video = document.createElement('video');
  Object.assign(video, {controls: true, src: link.getAttribute('href'), title: link.title});
  link.replaceWith(video);
  video.play().catch(() => {});  // a click lets it play with sound; else its controls do
});
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.videos = document.querySelectorAll('video[controls]').length;
});
"""
STYLE = f"""body{{font-family:sans-serif;margin:2em;max-width:1200px}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px;vertical-align:top}}th{{background:#eee;cursor:pointer}}
section{{margin-bottom:2em}}.muted{{color:#666}}.pager{{margin:.4em 0}}video{{width:128px;height:72px;margin:1px}}
.clips{{white-space:nowrap}}
table.paged:not(.ready) tbody tr:nth-child(n+{PAGE_ROWS + 1}){{display:none}}"""


def find(folder: Path, name: str) -> Path | None:
    """`name` in the folder or one level below (avaudit-out/<command>/name)."""
    for path in (folder / name, *sorted(folder.glob(f"*/{name}"))):
        if path.exists():
            return path
    return None


def read_table(path: Path) -> pd.DataFrame:
    """An output CSV with names kept as text (a category called `1984` or `NA` is a name), and the other
    columns as numbers wherever every non-empty value is one (an empty `confusion` is a missing number)."""
    table = read_csv(path, dtype={c: str for c in TEXT_COLUMNS})
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


def player(path: str, folder: Path) -> str:
    """The clip itself, played from its file; preload none, so a long page loads no video until asked."""
    source = html.escape(href(path, folder))
    return f'<video controls preload="none" src="{source}" title="{html.escape(path)}"></video>'


def clip_link(path: str, folder: Path) -> str:
    """A link to the clip that a click turns into its player, playing: a page of a thousand players would
    cost Chromium seconds to lay out, even with nothing loaded."""
    return f'<a class="clip" href="{html.escape(href(path, folder))}" title="{html.escape(path)}">&#9654; clip</a> '


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
    import decord

    from avaudit.plots import frame_strip

    try:
        reader = decord.VideoReader(path, width=64, height=64)
        index = np.linspace(0, len(reader) - 1, n).astype(int).tolist()
        return frame_strip(reader.get_batch(index).asnumpy())
    except Exception:  # noqa: BLE001 - a report must not fail over one vanished clip
        return None


def section(name: str, title: str, body: str) -> str:
    return f'<section id="{name}"><h2>{html.escape(title)}</h2>{body}</section>'


def absent(what: str) -> str:
    return f'<p class="muted">no {what} run found</p>'


def category_examples(videos: pd.DataFrame, categories: pd.DataFrame) -> pd.Series:
    """Each category's EXAMPLES videos surest of their label at the category's layer (the best audio-visual
    layer when its type is unclear, the best layer when redundant): category -> list of paths."""
    conf = videos[[f"conf_{name}" for name in LAYERS]].to_numpy(float)
    layer = videos["label"].map(dict(zip(categories["category"], categories["layer"]))).to_numpy()
    column = pd.Series(layer).map({name: i for i, name in enumerate(LAYERS)}).fillna(-1).to_numpy(int)
    best_av = conf[:, : len(AV_LAYERS)].max(axis=1) if len(conf) else np.zeros(0)
    score = np.where(column >= 0, conf[np.arange(len(conf)), column], np.where(layer == "audiovisual", best_av,
                                                                                conf.max(axis=1, initial=0)))
    ranked = videos.assign(score=score).sort_values(["label", "score"], ascending=[True, False], kind="mergesort")
    return ranked.groupby("label", sort=False).head(EXAMPLES).groupby("label", sort=False)["path"].agg(list)


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
    videos = read_table(summary_path.parent / "bias_videos.csv")
    examples = category_examples(videos, categories)
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
    truth = find(summary_path.parent, "bias_truth_categories.csv")
    body = '<p class="muted">no bias run with --truth (or --truth-audio/--truth-visual) found</p>'
    if "truth" in summary and truth:
        t = summary["truth"]
        body = "".join(f"<p>{level}: the audit's group agrees with the annotated modality for {t[level]['n_agree']:,} "
                       f"of {t[level]['n_scored']:,}" + (f", Cohen's kappa {t[level]['kappa']:.2f}"
                       if t[level].get("kappa") is not None else "") + "</p>" for level in ("videos", "categories"))
        body += table_html(read_table(truth), source=truth, folder=folder) + (
            f'<p class="muted">per video: {csv_link(summary_path.parent / "bias_truth.csv", folder)}</p>')
    parts.append(section("truth", "Against annotated modalities", body))
    return parts


def missing_section(folder: Path, top: int) -> str:
    path = find(folder, "missing_labels.csv")
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


def retarget_section(folder: Path) -> str:
    subsets = sorted(folder.glob("**/subset*.json"))
    if not subsets:
        return section("retarget", "Retargeted subset", absent("retarget"))
    info = json.loads(subsets[-1].read_text())
    names = info["categories"]
    listed = ", ".join(names[:MAX_ROWS]) + (f" … and {len(names) - MAX_ROWS:,} more" if len(names) > MAX_ROWS else "")
    body = (f"<p>kept {info['n_videos']:,} of {info['n_input_rows']:,} rows ({', '.join(info['keep'])}, by "
            f"{info['by']}) in {len(names):,} categories &rarr; {html.escape(info['out'])} "
            f"(summary: {csv_link(subsets[-1], folder)})</p><p>{html.escape(listed)}</p>")
    if "compare" in info:
        c = info["compare"]
        body += f"<p>{c['n_matched']} of {c['n_reference']} {c['reference']} classes are in the subset.</p>"
    return section("retarget", "Retargeted subset", body)


def predictions_section(folder: Path) -> str:
    path = find(folder, "predictions.csv")
    if not path:
        return section("predictions", "Predictions", absent("predict"))
    table = read_table(path)
    return section("predictions", "Predictions", f"<p>{len(table):,} videos; mean labels per video (eq. 7) "
                   f"{table['labels_eq7'].str.count(';').add(1).mean():.2f}</p>"
                   + table_html(table, source=path, folder=folder))


def skipped_section(folder: Path) -> str:
    paths = sorted([*folder.glob("**/*_skipped.csv"), *folder.glob("**/*.skipped.csv")])
    if not paths:
        return section("skipped", "Skipped videos", "<p>no video was skipped</p>")
    skipped = pd.concat([read_table(p).assign(output=p.parent.name) for p in paths], ignore_index=True)
    counts = skipped.groupby(["output", "reason"]).size().rename("videos").reset_index()
    body = (f"<p>{len(skipped):,} skipped rows; every one, with its reason, in "
            + ", ".join(csv_link(p, folder) for p in paths) + "</p>" + table_html(counts, paged=False)
            + f"<h3>The first {min(FIRST_SKIPPED, len(skipped))}</h3>"
            + table_html(skipped.head(FIRST_SKIPPED), paged=False))
    return section("skipped", "Skipped videos", body)


def read_record(path: Path) -> dict:
    """A run's <command>_run.yaml (safe_load), or a UsageError naming it when it is not one."""
    try:
        record = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("command"), str):
        raise UsageError(f"{path}: not the record of an avaudit run (a mapping with its command); "
                         f"rerun that command or remove the file")
    return record


def build_report(folder: Path, *, top_missing: int = 10) -> Path:
    """Write folder/report.html from the bias, missing-labels, retarget and predict outputs found."""
    from avaudit.outputs import atomic_write_text

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder (give the --out folder of an audit, e.g. avaudit-out/)")
    runs = [(p.parent.name, read_record(p)) for p in (*sorted(folder.glob("*/*_run.yaml")),
                                                     *sorted(folder.glob("*_run.yaml")))]
    summary_path = find(folder, "bias_summary.json")
    if not runs and not summary_path:
        raise UsageError(f"{folder}: no avaudit outputs here (run bias, missing-labels, retarget or predict "
                         f"with --out under it, e.g. avaudit-out/)")
    settings = pd.DataFrame([{"output": name, **{k: v for k, v in run.items() if k not in ("config", "outputs")}}
                             for name, run in runs])
    parts = [section("settings", "Run settings", table_html(settings.astype(str), paged=False) if len(settings) else
                     '<p class="muted">no run record (&lt;command&gt;_run.yaml) found</p>')]
    if summary_path:
        parts += bias_sections(folder, summary_path)
    else:
        parts += [section(n, t, absent("bias")) for n, t in
                  (("table3", "Categories per layer (Table 3)"), ("categories", "Per category"),
                   ("table4", "Layer statistics (Table 4)"), ("truth", "Against annotated modalities"))]
    parts += [missing_section(folder, top_missing), retarget_section(folder), predictions_section(folder),
              skipped_section(folder)]
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>avaudit report</title><style>{STYLE}</style>"
            f"</head><body><h1>avaudit report: {html.escape(str(folder))}</h1>{''.join(parts)}"
            f"<script>{SCRIPT}</script></body></html>")
    out = folder / "report.html"
    atomic_write_text(out, page)
    return out
