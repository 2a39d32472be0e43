"""What each phase of an audit command holds, traced: where the memory per row of a cached re-audit goes.

    python benchmarks/audit_phases.py [N] [--command bias|predict|missing-labels]   (default 100,000 rows, bias)

Builds ten_million.py's N-row Kinetics CSV and its cached run (synthetic logits, the shipped model, media
stood in for), then runs the command under tracemalloc with each phase wrapped: the phase's traced peak over
what was traced when it began, and what it leaves. Traced: numpy arrays and Python objects; not traced: Arrow's
own memory (the manifest's columns). A phase inside another resets the outer one's peak, so read the innermost.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import ten_million  # noqa: E402  (beside this file)

PHASES = {"avaudit.inference.logits": ("infer_logits",),
          "avaudit.inference.pipeline": ("check_writes", "apply_label_policy", "decoded_rows", "labelled_rows",
                                         "window_columns"),
          "avaudit.flags": ("measure_flags",), "avaudit.audits.reduce": ("bias_inputs", "predict_columns"),
          "avaudit.audits.bias": ("bias_audit",), "avaudit.groupfiles": ("category_groups",),
          "avaudit.audits.missing_labels": ("candidates_of", "eq7_candidates", "label_medians", "layer_evidence"),
          "avaudit.commands": ("write_run",)}


def traced(module, name: str) -> None:
    """Wrap module.name to print its traced peak and what it leaves, in MiB."""
    work = getattr(module, name)

    @functools.wraps(work)
    def phase(*args, **kwargs):
        began = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        result = work(*args, **kwargs)
        now, peak = tracemalloc.get_traced_memory()
        print(f"{name:26s} peak {(peak - began) / 2**20:8.1f} MiB over its start, leaves {(now - began) / 2**20:8.1f}",
              flush=True)
        return result

    setattr(module, name, phase)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rows", type=int, nargs="?", default=100_000)
    parser.add_argument("--command", choices=("bias", "predict", "missing-labels"), default="bias")
    args = parser.parse_args()
    os.environ["AVAUDIT_SIGNALS"] = "0"  # the synthetic cache has no quality signals (ten_million.py)
    import importlib

    from avaudit import commands
    from avaudit.inference import logits
    from avaudit.inference.cache import model_fingerprint
    from avaudit.media.manifests import read_manifest

    tmp = Path(tempfile.mkdtemp(dir=os.environ.get("TMPDIR")))
    cache_dir, data, empty = tmp / "cache", tmp / "kinetics.csv", tmp / "media"
    empty.mkdir()
    subprocess.run([sys.executable, "-c", "import sys; from avaudit.inference.logits import checkpoint_info; "
                    "checkpoint_info(sys.argv[1], sys.argv[2])", str(ten_million.MODEL), str(cache_dir)], check=True)
    fields = logits.checkpoint_info(ten_million.MODEL, cache_dir)
    fields["classes"] = classes = ten_million.label_names(fields["classes"])
    (cache_dir / model_fingerprint(ten_million.MODEL) / "checkpoint.json").write_text(json.dumps(fields))
    ten_million.write_manifest(data, args.rows, classes)
    manifest_memo, keys_memo = {}, {}
    ten_million.stand_ins(manifest_memo, keys_memo)
    manifest_memo["manifest"] = manifest = read_manifest(data, root=empty)
    table = manifest.table
    keys = logits.clip_key_bytes(table["path"], table["start"].to_numpy(), table["end"].to_numpy())
    keys_memo["keys"] = keys
    labels = table["labels"].map({c: i for i, c in enumerate(classes)}).to_numpy()
    ten_million.fill_cache(cache_dir, keys, labels, len(classes))
    for module, names in PHASES.items():
        for name in names:
            traced(importlib.import_module(module), name)
    tracemalloc.start()
    getattr(commands, args.command.replace("-", "_"))(data, out=tmp / "out", root=empty, model=ten_million.MODEL,
                                                      cache_dir=cache_dir, device="cpu")
    print(f"{args.rows:,} rows, {args.command}: traced peak {tracemalloc.get_traced_memory()[1] / 2**20:.1f} MiB; "
          f"outputs in {tmp}", flush=True)


if __name__ == "__main__":
    main()
