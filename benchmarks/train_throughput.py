"""Training throughput against decode-only throughput (its bound) on the same machine and preset.

    python benchmarks/train_throughput.py [DATA] [--preset small|paper] [--device auto|cpu|cuda]
                                          [--workers W] [--rows N] [--epochs E]

On the GPU machine:  python benchmarks/train_throughput.py --preset paper --device cuda --rows 1600

For each stage of the recipe (audio backbone, video backbone, joint), one after another:
  decode-only  the stage's inputs (the audio stage: sound without onsets; the video stage: frames;
               the joint stage: everything) decoded by avaudit's DataLoader workers over the training
               rows, no network: the most clips per second a streaming stage can train on;
  network-only the stage's SGD step on one decoded batch over and over (every core on a CPU);
  training     `avaudit.training.recipe.run_recipe` streaming (memory budget 0, so no epoch reads clips from memory),
               clips per second of its training batches (validation left out), from its history.
The bound: on a CPU decoding and the network share the cores, so a clip costs the time of both,
bound = 1 / (1 / decode-only + 1 / network-only) (pipeline.py's decode-only + model-only); on a GPU they
run side by side, bound = min(decode-only, network-only), and the script also samples the GPU's busy
share (`nvidia-smi` utilization: the share of time a kernel was running) during each stage's training
batches. --rows N repeats DATA's clips under new names (symbolic links) to N rows, for epochs long
enough to reach a steady rate; --epochs E trains E epochs per stage (default 1).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `import avaudit` sets it, before torch starts OpenMP
import torch  # noqa: E402
from avaudit_process import write_manifest
from torch.utils.data import DataLoader

from avaudit.config import load_config
from avaudit.device import autocast, default_workers, pick_device, worker_context
from avaudit.media.dataset import ClipDataset
from avaudit.media.manifests import read_manifest
from avaudit.model.fusion import FusionNet, fusion_loss
from avaudit.training.recipe import run_recipe
from avaudit.training.sources import collate_rows, inputs_on
from avaudit.training.split import split_train_val, training_labels
from avaudit.training.stages import STAGES

REPO = Path(__file__).resolve().parent.parent


class GpuBusy:
    """nvidia-smi's utilization.gpu every 100 ms, time-stamped, in a background thread."""

    def __init__(self, device: torch.device):
        self.samples: list[tuple[float, float]] = []
        self.process = None
        if device.type != "cuda" or shutil.which("nvidia-smi") is None:
            return
        index = device.index if device.index is not None else torch.cuda.current_device()
        self.process = subprocess.Popen(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
                                         "-lms", "100", "-i", str(index)], stdout=subprocess.PIPE, text=True)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            try:
                self.samples.append((time.perf_counter(), float(line.strip())))
            except ValueError:
                pass

    def share(self, spans: list[list[float]]) -> float:
        """Mean busy share over the samples taken inside any of the (start, end) spans."""
        values = [v for t, v in self.samples if any(start <= t <= end for start, end in spans)]
        return float(np.mean(values)) / 100 if values else float("nan")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait()


def repeat_rows(data: Path, rows: int, folder: Path) -> Path:
    """A `path,label` CSV of `rows` rows cycling over DATA's clips, each under a new name."""
    table = read_manifest(data).table
    return write_manifest(folder, [Path(p).resolve() for p in table["path"]], rows, labels=list(table["labels"]))


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def stage_dataset(table, config, stage) -> ClipDataset:
    """The rows as the stage decodes them: only the inputs it uses."""
    return ClipDataset(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy(),
                       config=config.model, video=stage.use_video, sound=stage.use_audio,
                       onsets=stage.use_video and stage.use_audio)


def decode_only(dataset: ClipDataset, rows: np.ndarray, *, workers: int, batch_size: int, device) -> float:
    """Clips per second of the stage's inputs decoded by `workers` DataLoader workers, no network."""
    batches = [rows[i : i + batch_size].tolist() for i in range(0, len(rows), batch_size)]
    loader = DataLoader(dataset, batch_sampler=batches, num_workers=workers, collate_fn=collate_rows,
                        pin_memory=device.type == "cuda",
                        multiprocessing_context=worker_context() if workers else None)
    started = time.perf_counter()
    done = sum(len(batch["rows"]) for batch in loader)
    return done / (time.perf_counter() - started)


def network_only(config, stage, batch: dict, labels: np.ndarray, *, n_classes: int, device, steps: int) -> float:
    """Clips per second of the stage's SGD step on one decoded batch, repeated. The learning rate is 0:
    the same arithmetic as training, without the weights drifting (fitting one batch over and over
    drives activations towards the denormal numbers CPUs are slow at)."""
    torch.manual_seed(0)
    model = FusionNet(config.model, n_classes).to(device).train()
    if device.type == "cuda":
        model.video_net.to(memory_format=torch.channels_last_3d)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
    inputs = inputs_on(batch, config.model, device, stage)
    labels = torch.as_tensor(labels[batch["rows"]], device=device)

    def step():
        with autocast(device):
            logits = model(*inputs, use_video=stage.use_video, use_audio=stage.use_audio)
        loss = fusion_loss(logits.float(), labels, stage.layers)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocator, cuDNN's algorithm search
    synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return steps * len(batch["rows"]) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=REPO / "sample_videos")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=None, help="decoding workers [default: avaudit's]")
    parser.add_argument("--rows", type=int, default=None, help="repeat DATA's clips to this many rows")
    parser.add_argument("--epochs", type=int, default=1, help="epochs per stage in the training run")
    parser.add_argument("--steps", type=int, default=None, help="network-only steps [default: one epoch's]")
    args = parser.parse_args()

    device = pick_device(args.device)
    workers = default_workers() if args.workers is None else args.workers
    scratch = tempfile.TemporaryDirectory()
    data = repeat_rows(args.data, args.rows, Path(scratch.name) / "rows") if args.rows else args.data
    config = load_config(args.preset, {"train.epochs": [args.epochs] * 3, "train.memory_budget": 0,
                                       "train.num_workers": workers, "train.checkpoint_minutes": 0})
    table = read_manifest(data).table
    t = config.train
    labels_text = training_labels(table["labels"], seed=t.seed)
    train_idx, _ = split_train_val(table.assign(label=labels_text), fraction=t.val_fraction, seed=t.seed)
    n_classes = labels_text.nunique()
    labels = labels_text.map({c: i for i, c in enumerate(sorted(labels_text.unique()))}).to_numpy()
    print(f"{len(table)} rows ({len(train_idx)} trained on) from {args.data}, preset {config.preset}, device "
          f"{device}{' ' + torch.cuda.get_device_name(device) if device.type == 'cuda' else ''}, batch "
          f"{t.batch_size}, {workers} decoding workers, {torch.get_num_threads()} torch threads, torch "
          f"{torch.__version__}")

    if device.type == "cuda":
        torch.cuda.init()  # as in training: CUDA up before the workers start (forkserver)
    rates = {}
    for stage in STAGES:
        dataset = stage_dataset(table, config, stage)
        decode = decode_only(dataset, train_idx, workers=workers, batch_size=t.batch_size, device=device)
        batch = collate_rows([dataset[int(i)] for i in train_idx[: t.batch_size]])
        steps = args.steps or max(3, len(train_idx) // t.batch_size)
        network = network_only(config, stage, batch, labels, n_classes=n_classes, device=device, steps=steps)
        rates[stage.name] = {"decode": decode, "network": network}
        print(f"  measured {stage.name}: decode-only {decode:.1f} clips/s, network-only {network:.1f} clips/s",
              flush=True)

    busy = GpuBusy(device)
    windows: dict[tuple[str, int], list[float]] = {}  # (stage, epoch) -> [first batch, last batch]

    def on_event(kind, info):
        if kind == "batch":
            window = windows.setdefault((info["stage"], info["epoch"]), [time.perf_counter(), 0.0])
            window[1] = time.perf_counter()

    started = time.perf_counter()
    run_recipe(table, config=config, out=Path(scratch.name) / "model.pt", device=args.device, on_event=on_event)
    whole = time.perf_counter() - started
    busy.stop()
    history = torch.load(Path(scratch.name) / "model.pt", weights_only=True)["metrics"]["history"]

    print(f"\nper stage, clips per second ({args.epochs} epoch(s) each; training streams, memory budget 0):")
    print(f"{'stage':6s} {'decode-only':>12s} {'network-only':>13s} {'bound':>7s} {'training':>9s} "
          f"{'train/decode':>13s} {'train/bound':>12s}" + (f" {'GPU busy':>9s}" if device.type == "cuda" else ""))
    for stage in STAGES:
        rows = [h for h in history if h["stage"] == stage.name]
        rate = float(np.mean([h["clips_per_second"] for h in rows])) if rows else float("nan")
        r = rates[stage.name]
        bound = (min(r["decode"], r["network"]) if device.type == "cuda"
                 else 1 / (1 / r["decode"] + 1 / r["network"]))
        line = (f"{stage.name:6s} {r['decode']:12.1f} {r['network']:13.1f} {bound:7.1f} {rate:9.1f} "
                f"{rate / r['decode']:13.2f} {rate / bound:12.2f}")
        if device.type == "cuda":
            spans = [span for (name, _), span in windows.items() if name == stage.name]
            line += f" {busy.share(spans):9.0%}"
        print(line)
    print(f"whole training run (start-up, {len(STAGES)} stages, validation, final evaluation): {whole:.1f} s")
    scratch.cleanup()


if __name__ == "__main__":
    main()
