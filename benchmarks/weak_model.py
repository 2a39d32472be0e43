"""Issue 18's planted check: do the decisions hold with a weaker model, on a seed and a preset they were
not tuned on, and is a label missing from a whole class found?

    python benchmarks/weak_model.py OUT [--epochs 2 4] [--seed 23] [--train-seed 24]   # about 12 min here
    python benchmarks/weak_model.py OUT --reuse          # after a rule change: the audits again, from the cache
    python benchmarks/weak_model.py OUT --reuse --held-out-seed 31   # the same models on another seed's set
    python benchmarks/weak_model.py OUT --reuse --people-groups   # missing-labels given the planted groups

Makes two planted sets with `avaudit make-samples` (seeds used nowhere else): a training set and a held-out
set to audit, both with `--co-occur 2` (every clip of `visual_red_square` and `visual_cyan_diamond` also
sounds the tone of `audio_tone200` / `audio_tone1450`, unlabelled, as if annotators left that label off the
whole class; `--train-co-occur 0` trains on a set without it). For each `--epochs E` it trains a model with
`avaudit train --epochs E` under the `--preset` written to OUT/PRESET.yaml (`tiny`, narrower than `small`,
which the defaults were chosen with; `wide`, larger frames and other widths; `deep`, smaller frames, two
blocks in the first video stage; `slim`, two in the third; `narrow`, 28-pixel crops and half the widths;
`tall`, two blocks in the last; `stout`, uncropped 36-pixel frames and wider layers; `broad`, two blocks in
the middle stages; or `lean`, 30-pixel crops and other widths again; `mid`, 36-pixel crops of 40-pixel frames
and a 48-wide embedding; `keen`, 34-pixel crops of 38-pixel frames and a 36-wide embedding; `brisk`, 38-pixel
crops of 42-pixel frames and a 40-wide embedding). It runs `avaudit bias` and `avaudit missing-labels` on the
held-out set with each of them and with the shipped model (`small`, trained on seed 0 without co-occurrence,
validation vote 0.98), one CLI process each, and scores them against the planted truth: categories given the
wrong group (and which), left `unclear`, event types named right or wrong; missing-label candidates' precision
and recall against missing_truth.csv, and per co-occurring class on how many of its clips its missing label is
a candidate (or set apart in confusions.csv).

Everything stays in OUT: the sets, the models (model-eE/), the logit cache (cache/), the audits
(audit-<model>/) and the table (scores.csv). `--reuse` re-runs only the audits, with the code on
PYTHONPATH and every logit from the cache, and prints the table again: after a rule change a re-score
takes about a minute.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml

from avaudit.options import DEFAULT_MODEL as SHIPPED
from avaudit.planted import co_occurring

REPO = Path(__file__).resolve().parent.parent
PRESETS = {  # `small` changed: presets the decisions were not chosen on
    "tiny": {"model": {"resize": [32, 32], "crop": 32, "audio_widths": [8, 8, 8, 16, 16, 32, 32], "embed_dim": 32,
                       "video_stem_width": 8, "video_widths": [8, 8, 16, 32], "video_blocks": [1, 1, 1, 1]}},
    "wide": {"model": {"resize": [48, 48], "crop": 44, "audio_widths": [16, 16, 16, 32, 32, 48, 48],
                       "embed_dim": 48, "video_stem_width": 16, "video_widths": [16, 16, 32, 48],
                       "video_blocks": [1, 1, 1, 1]}},
    "deep": {"model": {"resize": [36, 36], "crop": 32, "audio_widths": [8, 16, 16, 24, 24, 48, 48], "embed_dim": 24,
                       "video_stem_width": 12, "video_widths": [12, 12, 24, 24], "video_blocks": [2, 1, 1, 1]}},
    "slim": {"model": {"resize": [44, 44], "crop": 40, "audio_widths": [8, 8, 16, 16, 32, 32, 32], "embed_dim": 32,
                       "video_stem_width": 8, "video_widths": [8, 16, 16, 32], "video_blocks": [1, 1, 2, 1]}},
    "narrow": {"model": {"resize": [32, 32], "crop": 28, "audio_widths": [8, 8, 8, 16, 16, 16, 32], "embed_dim": 16,
                         "video_stem_width": 8, "video_widths": [8, 8, 16, 16], "video_blocks": [1, 2, 1, 1]}},
    "tall": {"model": {"resize": [40, 40], "crop": 36, "audio_widths": [8, 16, 16, 16, 32, 32, 32], "embed_dim": 32,
                       "video_stem_width": 8, "video_widths": [8, 8, 24, 32], "video_blocks": [1, 1, 1, 2]}},
    "stout": {"model": {"resize": [36, 36], "crop": 36, "audio_widths": [12, 12, 24, 24, 24, 48, 48], "embed_dim": 40,
                        "video_stem_width": 12, "video_widths": [12, 24, 24, 40], "video_blocks": [1, 1, 1, 1]}},
    "broad": {"model": {"resize": [40, 40], "crop": 32, "audio_widths": [16, 16, 16, 24, 24, 32, 32], "embed_dim": 24,
                        "video_stem_width": 16, "video_widths": [16, 16, 24, 24], "video_blocks": [1, 2, 2, 1]}},
    "lean": {"model": {"resize": [34, 34], "crop": 30, "audio_widths": [8, 12, 12, 24, 24, 40, 40], "embed_dim": 28,
                       "video_stem_width": 10, "video_widths": [10, 20, 20, 28], "video_blocks": [1, 1, 1, 1]}},
    "mid": {"model": {"resize": [40, 40], "crop": 36, "audio_widths": [8, 8, 16, 24, 32, 32, 48], "embed_dim": 48,
                      "video_stem_width": 8, "video_widths": [8, 16, 24, 48], "video_blocks": [1, 1, 1, 1]}},
    "keen": {"model": {"resize": [38, 38], "crop": 34, "audio_widths": [12, 16, 16, 32, 32, 40, 40], "embed_dim": 36,
                       "video_stem_width": 12, "video_widths": [12, 16, 28, 36], "video_blocks": [1, 1, 1, 1]}},
    "brisk": {"model": {"resize": [42, 42], "crop": 38, "audio_widths": [8, 16, 16, 24, 32, 40, 40], "embed_dim": 40,
                        "video_stem_width": 10, "video_widths": [10, 16, 24, 40], "video_blocks": [1, 1, 1, 1]}},
}


def avaudit(*args: str, env: dict) -> str:
    """Output of one `python -m avaudit ARGS` (exit 1, "found something", counts as done)."""
    done = subprocess.run([sys.executable, "-m", "avaudit", *args], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"avaudit {' '.join(args)} exited {done.returncode}:\n"
                         f"{done.stdout[-3000:]}{done.stderr[-3000:]}")
    return done.stdout


def write_preset(out: Path, name: str) -> Path:
    preset = yaml.safe_load((REPO / "avaudit/presets/small.yaml").read_text())
    for section, fields in PRESETS[name].items():
        preset[section].update(fields)
    path = out / f"{name}.yaml"
    path.write_text(f"# benchmarks/weak_model.py: the small preset changed ({name})\n"
                    + yaml.safe_dump(preset, sort_keys=False))
    return path


def prepare(out: Path, settings: dict, env: dict) -> None:
    """The two planted sets, the preset and one trained model per --epochs (what --reuse keeps)."""
    out.mkdir(parents=True, exist_ok=True)
    s = settings
    for name, seed, clips, two_event, co_occur in (
            ("train", s["train_seed"], s["train_clips"], 1, s["train_co_occur"]),
            ("heldout", s["seed"], s["heldout_clips"], s["two_event"], s["co_occur"])):
        avaudit("make-samples", str(out / name), "--seed", str(seed), "--clips", str(clips), "--two-event",
                str(two_event), "--co-occur", str(co_occur), env=env)
    preset = write_preset(out, s.get("preset", "tiny"))
    for epochs in s["epochs"]:
        started = time.perf_counter()
        avaudit("train", str(out / "train"), "--preset", str(preset), "--epochs", str(epochs), "--seed", "0",
                "--out", str(out / f"model-e{epochs}" / "model.pt"), "--device", "cpu", env=env)
        print(f"trained {epochs} epoch(s) per stage in {time.perf_counter() - started:.0f} s", flush=True)
    (out / "settings.json").write_text(json.dumps(settings, indent=1))


def models(out: Path, settings: dict) -> dict[str, Path]:
    """Name -> checkpoint of every model scored: the ones trained here, then the shipped one."""
    trained = {f"{settings.get('preset', 'tiny')} {e} ep": out / f"model-e{e}" / "model.pt" for e in settings["epochs"]}
    return {**trained, "shipped": SHIPPED}


def held_out(out: Path, settings: dict, seed: int | None, env: dict) -> tuple[Path, str]:
    """The set to audit and its audits' folder suffix: OUT/heldout, or with `seed` (--held-out-seed) a set
    made like it with that seed, OUT/heldout-SEED (made once), so rules are tuned on one seed and scored
    on another with the same models."""
    if seed is None or seed == settings["seed"]:
        return out / "heldout", ""
    folder = out / f"heldout-{seed}"
    if not (folder / "truth.csv").exists():
        avaudit("make-samples", str(folder), "--seed", str(seed), "--clips", str(settings["heldout_clips"]),
                "--two-event", str(settings["two_event"]), "--co-occur", str(settings["co_occur"]), env=env)
    return folder, f"-seed{seed}"


def audit(out: Path, name: str, model: Path, env: dict, heldout: Path, suffix: str = "",
          people_groups: bool = False) -> Path:
    """`bias` and `missing-labels` of the held-out set with `model` (with `people_groups`, missing-labels
    `--groups` the set's truth.csv, standing for people's modality labels); their folder."""
    where = out / f"audit-{name.replace(' ', '-')}{suffix}"
    for command in ("bias", "missing-labels"):
        groups = ["--groups", str(heldout / "truth.csv")] if people_groups and command == "missing-labels" else []
        avaudit(command, str(heldout), "--model", str(model), "--device", "cpu", "--out",
                str(where / command), *groups, env=env)
    return where


def group_scores(where: Path, heldout: Path) -> dict:
    truth = pd.read_csv(heldout / "truth.csv")
    categories = pd.read_csv(where / "bias" / "bias_categories.csv").merge(truth, on="category")
    named = categories[categories["group_x"] != "unclear"]
    wrong = named[named["group_x"] != named["group_y"]]
    audiovisual = named[named["group_y"] == "audiovisual"]
    typed = audiovisual[audiovisual["layer"].isin(["continuous", "instant", "onset"])]
    return {"groups right": int((named["group_x"] == named["group_y"]).sum()), "groups wrong": len(wrong),
            "unclear": len(categories) - len(named),
            "wrong": "; ".join(f"{r.category} as {r.group_x}" for r in wrong.itertuples()) or "-",
            "types right": int((typed["layer"] == typed["modality"]).sum()),
            "types wrong": int((typed["layer"] != typed["modality"]).sum())}


def candidate_scores(where: Path, heldout: Path, co_occurring: list[str]) -> dict:
    truth = pd.read_csv(heldout / "missing_truth.csv")
    truth["video_id"] = truth["path"].str.replace(r"\.mp4$", "", regex=True)
    planted = set(zip(truth["video_id"], truth["missing_label"]))
    found = pd.read_csv(where / "missing-labels" / "missing_labels.csv")
    pairs = set(zip(found["video_id"], found["candidate"]))
    right = pairs & planted
    set_apart_file = where / "missing-labels" / "confusions.csv"  # rules that set nothing apart may not write it
    apart = pd.read_csv(set_apart_file) if set_apart_file.exists() else pd.DataFrame(columns=["label", "candidate"])
    scores = {"candidates": len(pairs), "precision": len(right) / len(pairs) if pairs else float("nan"),
              "recall": len(right) / len(planted)}
    for label in co_occurring:
        ours = truth[truth["label"] == label]
        missing = ours["missing_label"].iloc[0]
        hits = sum((v, missing) in right for v in ours["video_id"])
        set_apart = ((apart["label"] == label) & (apart["candidate"] == missing)).any()
        scores[f"{label} lacks {missing}"] = f"{hits}/{len(ours)}" + (" (set apart)" if set_apart else "")
    return scores


def validation(model: Path) -> dict:
    """The checkpoint's own validation accuracies (its training run's split)."""
    import torch

    final = torch.load(model, map_location="cpu", weights_only=True)["metrics"]["final"]["val"]
    return {f"val {layer}": round(final[layer], 3) for layer in ("vote", "visual", "audio")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--reuse", action="store_true", help="keep OUT's sets and models; audit and score again")
    parser.add_argument("--epochs", type=int, nargs="+", default=[2, 4], help="epochs per stage, one model each")
    parser.add_argument("--seed", type=int, default=23, help="the held-out set's seed")
    parser.add_argument("--held-out-seed", type=int, default=None,
                        help="with --reuse: audit a set made like the held-out one with this seed instead")
    parser.add_argument("--train-seed", type=int, default=24)
    parser.add_argument("--train-clips", type=int, default=12, help="clips per category to train on")
    parser.add_argument("--heldout-clips", type=int, default=6)
    parser.add_argument("--two-event", type=int, default=3, help="two-event clips per audio category, held out")
    parser.add_argument("--co-occur", type=int, default=2, help="co-occurring classes in the held-out set")
    parser.add_argument("--train-co-occur", type=int, default=None, help="in the training set [default: --co-occur]")
    parser.add_argument("--preset", choices=list(PRESETS), default="tiny", help="the trained models' preset")
    parser.add_argument("--people-groups", action="store_true", help="missing-labels --groups the held-out set's "
                        "truth.csv: the categories' groups as people would give them (VGGSounder's modalities)")
    args = parser.parse_args()
    env = {**os.environ, "AVAUDIT_CACHE_DIR": str(args.out / "cache"), "OMP_WAIT_POLICY": "PASSIVE"}
    if args.reuse:
        settings = json.loads((args.out / "settings.json").read_text())
    else:
        if args.out.exists() and any(args.out.iterdir()):
            raise SystemExit(f"{args.out} is not empty: give a new folder, or --reuse it")
        settings = {"seed": args.seed, "train_seed": args.train_seed, "train_clips": args.train_clips,
                    "heldout_clips": args.heldout_clips, "two_event": args.two_event, "co_occur": args.co_occur,
                    "train_co_occur": args.co_occur if args.train_co_occur is None else args.train_co_occur,
                    "epochs": args.epochs, "preset": args.preset}
        prepare(args.out, settings, env)
    heldout, suffix = held_out(args.out, settings, args.held_out_seed, env)
    suffix += "-people-groups" if args.people_groups else ""
    seed = settings["seed"] if args.held_out_seed is None else args.held_out_seed
    print(f"held-out set: seed {seed}, {settings['heldout_clips']} clips per category, "
          f"{settings['co_occur']} co-occurring class(es); trained on seed {settings['train_seed']} "
          f"({settings['train_clips']} per category, co-occurrence {settings['train_co_occur']}), "
          f"preset {settings.get('preset', 'tiny')}")
    co_occurring_classes = sorted(co_occurring(settings["co_occur"]))
    rows, wrong = [], {}
    for name, model in models(args.out, settings).items():
        started = time.perf_counter()
        where = audit(args.out, name, model, env, heldout, suffix, args.people_groups)
        groups = group_scores(where, heldout)
        wrong[name] = groups.pop("wrong")
        rows.append({"model": name, **validation(model), **groups,
                     **candidate_scores(where, heldout, co_occurring_classes),
                     "audit s": round(time.perf_counter() - started, 1)})
    table = pd.DataFrame(rows).set_index("model").T
    table.to_csv(args.out / f"scores{suffix}.csv")
    print(table.to_string(float_format=lambda x: f"{x:.3f}"))
    for name, categories in wrong.items():
        print(f"wrong groups, {name}: {categories}")


if __name__ == "__main__":
    main()
