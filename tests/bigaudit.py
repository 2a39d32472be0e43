"""A synthetic output folder of a large audit, as `bias`, `missing-labels`, `predict` and `retarget` leave it.

    write_big_audit(out, n_videos=200_000, n_skipped=200_798)

Every table has a row per video (or per candidate) in the columns the commands write; category names
include numbers (`1984`, `007`) as real datasets' do. The clips' paths do not exist: a report must not
need them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from avaudit.vocab import CATEGORY_ASSIGNMENTS, GROUP_OF, LAYERS, SKIPPED_COLUMNS, Skip


def write_big_audit(out: Path, *, n_videos: int = 200_000, n_skipped: int = 200_798, n_categories: int = 400,
                    seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    names = np.array(["1984", "007", *[f"category {i:03d}" for i in range(n_categories - 2)]])
    label = names[rng.integers(0, n_categories, n_videos)]
    ids = np.array([f"{lab}/clip_{i:07d}" for i, lab in enumerate(label)])
    paths = np.array([f"/data/{v}.mp4" for v in ids])
    conf = rng.random((n_videos, len(LAYERS)))
    layer = np.asarray(LAYERS)[conf.argmax(axis=1)]
    bias = out / "bias"
    bias.mkdir(parents=True)
    videos = pd.DataFrame({"video_id": ids, "path": paths, "label": label, "layer": layer,
                           "group": pd.Series(layer).map(GROUP_OF).to_numpy()})
    for i, name in enumerate(LAYERS):
        videos[f"conf_{name}"] = conf[:, i]
    videos.to_csv(bias / "bias_videos.csv", index=False)
    chosen = np.asarray(CATEGORY_ASSIGNMENTS)[rng.integers(0, len(CATEGORY_ASSIGNMENTS), n_categories)]
    categories = pd.DataFrame({"category": names, "layer": chosen, "group": pd.Series(chosen).map(GROUP_OF),
                               "n_videos": pd.Series(label).value_counts().reindex(names, fill_value=0).to_numpy()})
    for name in (*LAYERS, "redundant"):
        categories[f"votes_{name}"] = rng.integers(0, 500, n_categories)
    categories["type_margin"] = rng.random(n_categories) / 100
    categories.to_csv(bias / "bias_categories.csv", index=False)
    counts = categories["layer"].value_counts()
    summary = {"rule": "sufficiency", "fraction": 0.9, "type_margin": 0.003, "confidence": "raw",
               "categories_per_layer": {n: int(counts.get(n, 0)) for n in CATEGORY_ASSIGNMENTS},
               "total": n_categories, "n_videos": n_videos, "n_rows": n_videos + n_skipped, "n_skipped": n_skipped,
               "layer_statistics": {"uniquely_correct": {"continuous": 10, "instant": 20, "onset": 30},
                                    "instant_or_onset_not_continuous": 40, "n_videos": n_videos}}
    (bias / "bias_summary.json").write_text(json.dumps(summary))
    reasons = np.asarray([str(s) for s in Skip])[rng.integers(0, len(Skip), n_skipped)]
    skipped_ids = np.array([f"gone/clip_{i:07d}" for i in range(n_skipped)])
    pd.DataFrame({"video_id": skipped_ids, "path": [f"/data/{v}.mp4" for v in skipped_ids], "reason": reasons,
                  "detail": "synthetic"}, columns=list(SKIPPED_COLUMNS)).to_csv(bias / "bias_skipped.csv", index=False)
    settings = {"data": "/data", "model": "models/default.pt", "n_rows": n_videos + n_skipped, "n_skipped": n_skipped}
    (bias / "bias_run.yaml").write_text(yaml.safe_dump({"command": "bias", **settings}))

    missing = out / "missing-labels"
    missing.mkdir()
    pd.DataFrame({"video_id": ids, "path": paths, "label": label, "candidate": names[rng.integers(0, n_categories, n_videos)],
                  "layer": layer, "confidence": np.sort(rng.random(n_videos))[::-1],
                  "confusion": rng.random(n_videos) / 10}).to_csv(missing / "missing_labels.csv", index=False)
    pd.DataFrame({"label": names, "candidate": np.roll(names, 1), "layer": "audio", "n_videos": 5,
                  "median_confusion": 0.5, "max_confidence": 0.6}).to_csv(missing / "confusions.csv", index=False)
    (missing / "missing_labels_run.yaml").write_text(yaml.safe_dump({"command": "missing-labels", **settings}))

    predict = out / "predict"
    predict.mkdir()
    predictions = pd.DataFrame({"video_id": ids, "path": paths, "label": label, "vote": label,
                                "labels_eq7": label})
    for i, name in enumerate(LAYERS):
        predictions[f"conf_{name}"] = conf[:, i]
    predictions.to_csv(predict / "predictions.csv", index=False)
    (predict / "predict_run.yaml").write_text(yaml.safe_dump({"command": "predict", **settings}))

    retarget = out / "retarget"
    retarget.mkdir()
    kept = sorted(categories.loc[categories["group"] == "audiovisual", "category"])
    (retarget / "subset.csv.json").write_text(json.dumps({
        "out": str(retarget / "subset.csv"), "format": "folder", "keep": ["audiovisual"], "by": "category",
        "n_videos": int(np.isin(label, kept).sum()), "n_input_rows": n_videos + n_skipped, "categories": kept}))
    return out
