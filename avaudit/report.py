"""One self-contained HTML page from the outputs of the audits found in a folder (images embedded)."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from avaudit.errors import UsageError
from avaudit.vocab import ASSIGNMENTS

SECTIONS = ("settings", "table3", "categories", "table4", "missing", "retarget", "predictions", "skipped")

SCRIPT = """
document.querySelectorAll('table.sortable th').forEach((th, column) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = [...body.rows], up = th.dataset.up !== '1';
  th.dataset.up = up ? '1' : '0';
  const value = r => { const t = r.cells[column].textContent; const n = parseFloat(t); return isNaN(n) ? t : n; };
  rows.sort((a, b) => (value(a) > value(b) ? 1 : value(a) < value(b) ? -1 : 0) * (up ? 1 : -1));
  rows.forEach(r => body.appendChild(r));
}));
const search = document.getElementById('search');
if (search) search.addEventListener('input', () => document.querySelectorAll('#categories tbody tr').forEach(
  r => { r.style.display = r.textContent.toLowerCase().includes(search.value.toLowerCase()) ? '' : 'none'; }));
window.addEventListener('load', () => {
  const images = [...document.images];
  document.body.dataset.imagesTotal = images.length;
  document.body.dataset.imagesLoaded = images.filter(i => i.complete && i.naturalWidth > 0).length;
});
"""
STYLE = """body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 6px}th{background:#eee;cursor:pointer}section{margin-bottom:2em}
.muted{color:#666}"""


def find(folder: Path, name: str) -> Path | None:
    """`name` in the folder or one level below (avaudit-out/<command>/name)."""
    for path in (folder / name, *sorted(folder.glob(f"*/{name}"))):
        if path.exists():
            return path
    return None


def image(data: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def table_html(frame: pd.DataFrame, *, table_id: str = "", sortable: bool = True) -> str:
    return frame.to_html(index=False, table_id=table_id or None, classes="sortable" if sortable else None,
                         float_format=lambda v: f"{v:.3f}", escape=True, border=0)


def thumbnails(path: str, n: int = 5) -> bytes | None:
    """A strip of n frames of a clip, or None when it cannot be decoded any more."""
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


def build_report(folder: Path, *, top_missing: int = 10) -> Path:
    """Write folder/report.html from the bias, missing-labels, retarget and predict outputs found."""
    from avaudit.outputs import atomic_write_text
    from avaudit.plots import layer_bars

    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder}: no such folder (give the --out folder of an audit, e.g. avaudit-out/)")
    parts = []
    runs = [(p.parent.name, yaml.safe_load(p.read_text())) for p in sorted(folder.glob("*/run.yaml"))]
    runs += [(folder.name, yaml.safe_load((folder / "run.yaml").read_text()))] if (folder / "run.yaml").exists() else []
    if not runs and not find(folder, "bias_summary.json"):
        raise UsageError(f"{folder}: no avaudit outputs here (run bias, missing-labels, retarget or predict "
                         f"with --out under it, e.g. avaudit-out/)")
    settings = pd.DataFrame([{"output": name, **{k: v for k, v in run.items() if k != "config"}} for name, run in runs])
    parts.append(section("settings", "Run settings", table_html(settings, sortable=False) if len(settings) else
                         '<p class="muted">no run.yaml found</p>'))

    summary_path = find(folder, "bias_summary.json")
    if summary_path:
        summary = json.loads(summary_path.read_text())
        counts = {n: summary["categories_per_layer"][n] for n in ASSIGNMENTS if n in summary["categories_per_layer"]}
        parts.append(section("table3", "Categories per layer (Table 3)", image(
            layer_bars(counts, title=f"rule {summary['rule']}, {summary['confidence']} confidence"), "Table 3")
            + table_html(pd.DataFrame([counts]), sortable=False)))
        categories = pd.read_csv(summary_path.parent / "bias_categories.csv", keep_default_na=False)
        parts.append(section("categories", "Per category", '<input id="search" placeholder="search categories">'
                             + table_html(categories, table_id="categories")))
        stats = summary["layer_statistics"]
        rows = [{"layer": k, "uniquely correct videos": v} for k, v in stats["uniquely_correct"].items()]
        rows.append({"layer": "(instant or onset) and not continuous",
                     "uniquely correct videos": stats["instant_or_onset_not_continuous"]})
        parts.append(section("table4", "Layer statistics (Table 4)", table_html(pd.DataFrame(rows), sortable=False)))
    else:
        parts += [section(n, t, '<p class="muted">no bias run found</p>') for n, t in
                  (("table3", "Categories per layer (Table 3)"), ("categories", "Per category"),
                   ("table4", "Layer statistics (Table 4)"))]

    missing_path = find(folder, "missing_labels.csv")
    body = '<p class="muted">no missing-labels run found</p>'
    if missing_path:
        missing = pd.read_csv(missing_path, keep_default_na=False)
        rows = []
        for row in missing.head(top_missing).itertuples(index=False):
            strip = thumbnails(row.path)
            rows.append(f"<tr><td>{html.escape(row.video_id)}</td><td>{html.escape(row.label)}</td>"
                        f"<td>{html.escape(row.candidate)}</td><td>{html.escape(row.layer)}</td>"
                        f"<td>{row.confidence:.3f}</td><td>{image(strip, row.video_id) if strip else ''}</td></tr>")
        body = (f"<p>{len(missing)} candidates in {missing['video_id'].nunique()} videos; the top {len(rows)}:</p>"
                "<table><thead><tr><th>video</th><th>label</th><th>candidate</th><th>layer</th><th>confidence</th>"
                f"<th>frames</th></tr></thead><tbody>{''.join(rows)}</tbody></table>")
    parts.append(section("missing", "Missing-label candidates", body))

    subsets = sorted(folder.glob("**/subset*.json"))
    body = '<p class="muted">no retarget run found</p>'
    if subsets:
        info = json.loads(subsets[-1].read_text())
        body = (f"<p>kept {info['n_videos']} of {info['n_input_rows']} rows ({', '.join(info['keep'])}, by "
                f"{info['by']}) in {len(info['categories'])} categories &rarr; {html.escape(info['out'])}</p>"
                f"<p>{html.escape(', '.join(info['categories']))}</p>")
        if "compare" in info:
            c = info["compare"]
            body += f"<p>{c['n_matched']} of {c['n_reference']} {c['reference']} classes are in the subset.</p>"
    parts.append(section("retarget", "Retargeted subset", body))

    predictions = find(folder, "predictions.csv")
    body = '<p class="muted">no predict run found</p>'
    if predictions:
        table = pd.read_csv(predictions, keep_default_na=False)
        body = (f"<p>{len(table)} videos; mean labels per video (eq. 7) "
                f"{table['labels_eq7'].str.count(';').add(1).mean():.2f}</p>")
    parts.append(section("predictions", "Predictions", body))

    skipped = [pd.read_csv(p, keep_default_na=False).assign(output=p.parent.name)
               for p in folder.glob("**/skipped.csv")]
    body = (table_html(pd.concat(skipped, ignore_index=True)) if skipped else "<p>no video was skipped</p>")
    parts.append(section("skipped", "Skipped videos", body))

    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>avaudit report</title><style>{STYLE}</style>"
            f"</head><body><h1>avaudit report: {html.escape(str(folder))}</h1>{''.join(parts)}"
            f"<script>{SCRIPT}</script></body></html>")
    out = folder / "report.html"
    atomic_write_text(out, page)
    return out
