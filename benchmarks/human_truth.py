"""The paper's Table 3 rows beside what people say of the same datasets' categories: data only, no video.

    python benchmarks/human_truth.py [--vggsounder CSV] [--vggsound-list test.csv] [--avvp-audio TSV --avvp-visual TSV]

For each dataset, how many categories are audio-visual, visual or audio:
- the paper's Table 3 (read from the paper's text, /work/shared/paper/event_specific_fusion_layers.txt),
  its three audio-visual layers (continuous + instant + onset) summed;
- VGGSounder (people's A / V / AV per (video, label) of VGGSound's test videos): each class's majority
  over its label rows, from --vggsounder or the installed `vggsounder` package's CSV
  (`vggsounder+background-music.csv`, every test video); with --vggsound-list (VGGSound's own
  `data/test.csv`), also over the rows that are a video's original VGGSound label;
- AVVP (LLP's test videos, audio and visual events annotated apart): each class's majority over its
  (video, label) pairs, heard and seen -> audiovisual (avaudit/audits/truth.py).
Ties go to audiovisual, then audio, then visual (as `bias --truth` breaks them). Prints a markdown table.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from avaudit.audits.truth import TRUTHS, modality_truth
from avaudit.errors import AvauditError
from avaudit.events import read_events
from avaudit.truthfiles import read_truth

REPO = Path(__file__).resolve().parent.parent
AVVP = REPO / "tests" / "data" / "manifests"  # unchanged copies of the release's evaluation files
# Table 3 of the paper: continuous, instant, onset, visual, audio, total
PAPER = {"VGGSound": (62, 39, 68, 41, 99, 309), "LLP": (4, 5, 6, 3, 7, 25)}


def majorities(truth: pd.DataFrame) -> dict:
    """Categories by their most common truth over their rows: {audiovisual, visual, audio, total: n}."""
    counts = pd.crosstab(truth["label"], truth["truth"]).reindex(columns=list(TRUTHS), fill_value=0)
    chosen = counts.idxmax(axis=1)  # the first of TRUTHS on a tie
    return {**{name: int((chosen == name).sum()) for name in ("audiovisual", "visual", "audio")},
            "total": len(counts), "rows": int(len(truth)),
            "ties": int((counts.eq(counts.max(axis=1), axis=0).sum(axis=1) > 1).sum())}


def original_labels(path: Path) -> pd.DataFrame:
    """VGGSound's own test list (`{ytid}_{start:06d}.mp4,label`, no header): filename, label."""
    table = pd.read_csv(path, header=None, names=["file", "label"], dtype=str, keep_default_na=False)
    return pd.DataFrame({"filename": table["file"].str.strip().str.removesuffix(".mp4"),
                         "label": table["label"].str.strip()})


def people_rows(vggsounder: str, vggsound_list: Path | None, avvp_audio: Path, avvp_visual: Path) -> dict:
    """(source, counts) rows of people's majorities, by dataset."""
    people = read_truth([vggsounder])
    name = Path(people.about["people"]).name
    counts = majorities(people.table)
    vggsound = [(f"people: VGGSounder, majority over {counts['rows']:,} label rows of {name}", counts)]
    if vggsound_list is not None:
        kept = people.table.merge(original_labels(vggsound_list), on=["filename", "label"])
        counts = majorities(kept)
        vggsound.append((f"people: VGGSounder, majority over the {counts['rows']:,} rows of {name} that are a video's "
                         f"VGGSound label ({vggsound_list.name})", counts))
    truth = modality_truth(read_events(avvp_audio), read_events(avvp_visual))
    counts = majorities(truth.assign(label=truth["key"]))
    return {"VGGSound": vggsound,
            "LLP": [(f"people: AVVP, majority over {counts['rows']:,} annotated (video, label) pairs", counts)]}


def rows(vggsounder: str, vggsound_list: Path | None, avvp_audio: Path, avvp_visual: Path) -> list[tuple]:
    people = people_rows(vggsounder, vggsound_list, avvp_audio, avvp_visual)
    out = []
    for dataset, (continuous, instant, onset, visual, audio, total) in PAPER.items():
        out.append((dataset, f"paper, Table 3 (model's layers; {continuous} + {instant} + {onset} audio-visual)",
                    continuous + instant + onset, visual, audio, total, ""))
        out += [(dataset, source, c["audiovisual"], c["visual"], c["audio"], c["total"], c["ties"])
                for source, c in people[dataset]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vggsounder", default="vggsounder", help="VGGSounder CSV [default: the installed package's]")
    parser.add_argument("--vggsound-list", type=Path, help="VGGSound's data/test.csv: also count each video's "
                        "original label alone")
    parser.add_argument("--avvp-audio", type=Path, default=AVVP / "AVVP_eval_audio.csv")
    parser.add_argument("--avvp-visual", type=Path, default=AVVP / "AVVP_eval_visual.csv")
    args = parser.parse_args()
    try:
        table = list(rows(args.vggsounder, args.vggsound_list, args.avvp_audio, args.avvp_visual))
    except AvauditError as error:  # no vggsounder package, a malformed file: its one line, not a traceback
        raise SystemExit(f"human_truth.py: {error}") from None
    print("| dataset | source | audio-visual | visual | audio | categories | ties |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in table:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


if __name__ == "__main__":
    main()
