"""What `bias` holds per row while it decides, and what `retarget` and a run leave behind (issue 22: ten million rows
under 4 GB; at 10M rows `bias` peaked at 5.2 GB, ~310 bytes a row over the cache lookup). Each figure is traced at
100,000-200,000 rows (tracemalloc: numpy's and Python's memory), or, for Arrow's, measured in a process of its own."""
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from avaudit.vocab import ASSIGNMENTS

N = 200_000


def traced_peak(work):
    """(what `work()` returns, its traced peak in bytes over what was held before it)."""
    tracemalloc.start()
    result = work()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, peak


def crosstab_modality(categories, layers, confidence, names):
    """category_modality as it was: a crosstab of the votes and a pivot table of the summed confidences."""
    frame = pd.DataFrame({"category": categories, "layer": layers, "confidence": confidence})
    votes = pd.crosstab(frame["category"], frame["layer"]).reindex(columns=list(names), fill_value=0)
    mass = frame.pivot_table(index="category", columns="layer", values="confidence", aggfunc="sum",
                             fill_value=0.0).reindex(index=votes.index, columns=list(names), fill_value=0.0)
    count = votes.to_numpy()
    key = np.where(count == count.max(axis=1, keepdims=True), mass.to_numpy() + 1.0, 0.0)
    result = pd.DataFrame({"category": votes.index.astype(str), "layer": np.asarray(names)[key.argmax(axis=1)],
                           "n_videos": count.sum(axis=1)})
    for name in names:
        result[f"votes_{name}"] = votes[name].to_numpy()
    return result


def coded_world(seed: int, n: int, n_categories: int = 16):
    """Each video's category and layer as pandas categoricals (as bias_audit hands them on), and its weight."""
    rng = np.random.default_rng(seed)
    names = np.array([f"class number {i}" for i in range(n_categories)], object)
    label = pd.Series(pd.Categorical.from_codes(rng.integers(0, n_categories, n), np.sort(names)))
    layer = pd.Series(pd.Categorical.from_codes(rng.integers(0, len(ASSIGNMENTS), n).astype(np.int8),
                                                list(dict.fromkeys((*ASSIGNMENTS, "audiovisual", "unclear")))))
    return label, layer, rng.uniform(0, 1, n).astype(np.float32)


def test_category_votes_are_counted_by_code_not_by_a_crosstab():
    from avaudit.audits.decisions import category_modality

    label, layer, weight = coded_world(0, N)
    table, peak = traced_peak(lambda: category_modality(label, layer, weight, names=ASSIGNMENTS))
    assert peak < 30 * N  # before: pandas' crosstab and pivot table of every video, ~100 bytes a row
    pd.testing.assert_frame_equal(table.astype({"category": str}), crosstab_modality(label, layer, weight, ASSIGNMENTS))


@pytest.mark.parametrize("categorical", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ties_between_layers_go_where_a_pivot_tables_sums_sent_them(categorical, dtype):
    """The summed confidences break ties bit for bit as pandas' grouped sums did, in their float type (float32 sums
    are widened to float64 where a pivot table of categoricals was reindexed to a name without a vote): sums a few
    float32 steps apart, on small categories where tied votes are common."""
    from avaudit.audits.decisions import category_modality

    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 30))
        categories = np.array([f"c{i}" for i in rng.integers(0, 4, n)], object)
        layers = np.asarray(ASSIGNMENTS, object)[rng.integers(0, int(rng.integers(1, 7)), n)]
        weight = (rng.choice([0.5, 0.25, 1 / 3], n) + rng.integers(-2, 3, n) * 1e-8).astype(dtype)
        if categorical:
            categories = pd.Series(pd.Categorical(categories, categories=sorted(set(categories))))
            layers = pd.Series(pd.Categorical(layers, categories=[*ASSIGNMENTS, "unclear"]))
        table = category_modality(categories, layers, weight, names=ASSIGNMENTS)
        pd.testing.assert_frame_equal(table.astype({"category": str}),
                                      crosstab_modality(categories, layers, weight, ASSIGNMENTS))


def test_event_type_leads_are_grouped_by_category_code():
    from avaudit.audits.bias import event_type_margin
    from avaudit.vocab import AV_LAYERS

    label, _, _ = coded_world(2, N)
    true_conf = np.random.default_rng(3).uniform(0, 1, (N, 5)).astype(np.float32)
    names = list(label.cat.categories)
    categories = pd.DataFrame({"category": names, "layer": np.resize(["instant", "audio", "onset", "continuous"],
                                                                     len(names))})
    lead, peak = traced_peak(lambda: event_type_margin(label, true_conf, categories))
    assert peak < 60 * N  # before: a Python string of every video's label and its float64 confidences, ~130 a row
    own = categories.set_index("category")["layer"].map({name: i for i, name in enumerate(AV_LAYERS)})
    expected = []
    for name, layer in own.items():
        av = true_conf[(label == name).to_numpy(), :3].astype(float)
        if np.isnan(layer):
            expected.append(np.nan)
            continue
        others = np.delete(av, int(layer), axis=1).max(axis=1)
        expected.append(np.median(av[:, int(layer)] - others))
    np.testing.assert_array_equal(lead, expected)


def test_each_videos_call_and_margin_are_made_a_block_at_a_time():
    from avaudit.audits.bias import ROWS_AT_ONCE, assign_videos, video_calls, video_margin

    scores = np.random.default_rng(4).normal(size=(N, 5))
    (choice, margin), peak = traced_peak(lambda: video_calls(scores, rule="sufficiency", fraction=0.5))
    assert peak < 9 * N + 80 * ROWS_AT_ONCE  # codes and margins, and a block's work; before: ~130 bytes a row
    assert np.asarray(ASSIGNMENTS)[choice].tolist() == assign_videos(scores, rule="sufficiency", fraction=0.5).tolist()
    np.testing.assert_array_equal(margin, video_margin(scores, rule="sufficiency", fraction=0.5))


def test_shifted_margins_in_place_are_the_evidences_own_and_the_same():
    from avaudit.audits.bias import shifted_margins
    from avaudit.audits.reduce import video_scores

    codes = np.random.default_rng(5).integers(0, 16, 20_000)
    _, evidence = video_scores(np.random.default_rng(6).dirichlet(np.ones(16), (20_000, 5)), codes, rule="sufficiency")
    copied = shifted_margins(evidence, codes, fraction=0.5)
    shifted = shifted_margins(evidence, codes, fraction=0.5, in_place=True)
    assert shifted[0] is evidence.margins  # before: a copy of them, 40 bytes a row
    for mine, theirs in zip(shifted, copied):
        np.testing.assert_array_equal(mine, theirs)


def test_redrawn_means_take_float32_scores_a_column_at_a_time():
    from avaudit.audits.uncertainty import redraw

    rng = np.random.default_rng(7)
    codes, scores = rng.integers(0, 16, N), rng.normal(size=(N, 3)).astype(np.float32)
    drawn, peak = traced_peak(lambda: redraw(codes, scores, 16, 50, 0))
    assert peak < 32 * N  # before: the scores in float64, their means per row and their centred copy, ~70 a row
    for mine, theirs in zip(drawn, redraw(codes, scores.astype(float), 16, 50, 0)):
        np.testing.assert_array_equal(mine, theirs)


def test_the_bias_rule_holds_under_a_hundred_bytes_a_row_over_its_inputs():
    from test_audit_memory import reduced_world

    from avaudit.audits.bias import bias_audit

    n = 100_000
    videos, classes, reduced = reduced_world(3, n)
    (per_video, categories, _), peak = traced_peak(lambda: bias_audit(
        videos, None, classes, rule="sufficiency", fraction=0.5, min_support=0.5, false_call_rate=0.05,
        reduced=reduced))
    assert peak < 100 * n  # before: ~175 bytes a row (crosstab, names a row, the margins' copy, float64 copies)
    assert len(per_video) == n and len(categories) == len(classes)


def test_an_outputs_check_against_listed_videos_makes_no_string_a_row(tmp_path):
    from avaudit.outputs import check_writes

    out = tmp_path / "bias_videos.csv"
    out.write_text("x\n")  # an output that exists: is it a listed video?
    media = pd.Series([f"/data/kinetics/train/video_{i:011d}.mp4" for i in range(N)], dtype="str")
    _, peak = traced_peak(lambda: check_writes([out], data=tmp_path / "k.csv", media=media))
    assert peak < 8 * N  # its masks; before: a dict of every listed video's name and path, ~200 bytes a row


# In a process of its own: Arrow's default pool's peak is the process's (pandas' text filters allocate there).
RETARGET = """
import sys
from pathlib import Path
import numpy as np, pandas as pd, pyarrow as pa
from avaudit.commands import write_retarget
from avaudit.media import manifests
from avaudit.runs import RetargetSummary
manifests.Finder.find = lambda self, places, exts: (places[0][0] + "/" + places[0][1] + exts[0], "")
csv, out = Path(sys.argv[1]), Path(sys.argv[2])
manifest = manifests.read_manifest(csv, root=csv.parent)
held = pa.default_memory_pool().bytes_allocated()
kept = manifest.table["video_id"].to_numpy()[:10]
summary = RetargetSummary(str(out / "subset.csv"), str(out), "kinetics", ["audio"], "category", 10, 10, [], None, [], 0)
write_retarget(manifest, kept, summary, {}, [out / "subset.csv", out / "subset.csv.json", out / "retarget_run.yaml"])
print(pa.default_memory_pool().max_memory() - held, len((out / "subset.csv").read_text().splitlines()))
"""


def test_a_retargets_subset_filters_the_manifests_row_numbers_not_its_text(tmp_path):
    from test_read_memory import kinetics_csv

    n = 100_000
    csv = kinetics_csv(tmp_path / "k.csv", n)
    (tmp_path / "out").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    done = subprocess.run([sys.executable, "-c", RETARGET, str(csv), str(tmp_path / "out")], capture_output=True,
                          text=True, env=env, check=True)
    peak, lines = map(int, done.stdout.split())
    assert peak < 10 * n  # before: the table's text columns filtered, ~90 bytes a row of Arrow's memory
    assert lines == 11  # the header and the ten records kept


WRITTEN = """
import sys
from pathlib import Path
import numpy as np, pandas as pd
from avaudit.media.listing import give_back_freed
from avaudit.runs import AuditRun, write_run

def resident() -> int:
    return int(dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines())["VmRSS"].split()[0])

n = 300_000
table = pd.DataFrame({"video_id": pd.Series([f"y{i:010d}" for i in range(n)], dtype="str"),
                      "path": pd.Series([f"/data/kinetics/train/video_{i:011d}.mp4" for i in range(n)], dtype="str"),
                      "conf": np.random.default_rng(0).uniform(0, 1, n)})
write_run(AuditRun(Path(sys.argv[1]) / "first", {"predictions.csv": table[:100]}), {"command": "predict"})
give_back_freed()  # the first write's one-time costs (pyarrow's regular expressions and threads: ~1.6 MB) paid
before = resident()
write_run(AuditRun(Path(sys.argv[1]) / "run", {"predictions.csv": table}), {"command": "predict"})
print(resident() - before)
"""


def test_a_written_run_gives_back_what_writing_freed(tmp_path):
    """Each command of a process starts from what the one before held (a 10M run held 730 MB more after `retarget`
    than before it): glibc keeps what a run's writing freed unless it is given back."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    done = subprocess.run([sys.executable, "-c", WRITTEN, str(tmp_path)], capture_output=True, text=True, env=env,
                          check=True)
    assert int(done.stdout) < 6_000  # KiB; before: ~9 MB kept of a 300,000-row table's writing
