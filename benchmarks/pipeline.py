"""End-to-end `bias` throughput against a sequential loop and against the run's bound, in one run.

    python benchmarks/pipeline.py [DATA] [--model M | --preset P] [--workers W] [--batch-size B] [--device D]
        [--decoder pyav|decord] [--against decord ...] [--end-to-end-only]

--preset paper times an untrained `paper` network (the speed of a trained one, without training it):
on a GPU, `python benchmarks/pipeline.py --preset paper --device cuda` gives the `paper` audit
throughput beside that machine's decode-only throughput.

Four timings over the same videos and model, one after another in this process (the last three
in --rounds rounds, each keeping its best, as timeit does):
  sequential   decode one clip (frames, sound, onsets), run the model on it, next;
  decode-only  avaudit's DataLoader (W workers) with no model;
  model-only   the model over as many clips, the inputs decoded beforehand, every core;
  end-to-end   avaudit.bias on DATA with an empty cache: manifest, checkpoint, decoding
               workers, model, decisions and output files (the CLI minus interpreter start-up).
The bound is decode-only + model-only where both share the CPU, max(decode-only, model-only) on a
GPU. bound / end-to-end is the figure we steer by (1.0: no time lost to the glue between them).

--decoder picks the frame decoder of all four (avaudit's default, PyAV, unless told). --against DECODER
also times end-to-end with that decoder, in the same rounds, the decoders taking turns (the shared
machine's speed drifts), and prints each one's time over --decoder's; --end-to-end-only leaves the
other three timings out (a side-by-side of decoders within a few minutes).
"""
from __future__ import annotations

import argparse
import functools
import math
import resource
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from avaudit import commands
from avaudit.config import load_config
from avaudit.device import autocast, default_workers, pick_device
from avaudit.media.dataset import ClipDataset, collate
from avaudit.media.manifests import read_manifest
from avaudit.model.checkpoint import load_network, save_checkpoint
from avaudit.model.fusion import FusionNet
from avaudit.options import DEFAULT_MODEL
from avaudit.vocab import Decoder

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the DataLoader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(function) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one call."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    function()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def untrained(preset: str, classes: list[str], path: Path) -> Path:
    """A checkpoint of a freshly initialised network of `preset`: its speed is a trained one's."""
    config = load_config(preset)
    torch.manual_seed(0)
    state = FusionNet(config.model, len(classes)).state_dict()
    save_checkpoint(path, config=config, classes=classes, model_state=state, recipe={}, metrics={})
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=REPO / "sample_videos")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--preset", help="time an untrained network of this preset instead of --model")
    parser.add_argument("--workers", type=int, default=None, help="decoding workers [default: avaudit's]")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the last three; each keeps its best")
    parser.add_argument("--decoder", default=str(Decoder.pyav), choices=[str(d) for d in Decoder])
    parser.add_argument("--against", nargs="*", default=[], choices=[str(d) for d in Decoder],
                        help="also time end-to-end with these decoders, side by side")
    parser.add_argument("--end-to-end-only", action="store_true", help="time only end-to-end")
    args = parser.parse_args()

    device = pick_device(args.device)
    workers = default_workers() if args.workers is None else args.workers
    table = read_manifest(args.data).table
    scratch = tempfile.TemporaryDirectory()
    if args.preset:
        args.model = untrained(args.preset, sorted(set(table["labels"])), Path(scratch.name) / "untrained.pt")
    model, _, config, _ = load_network(args.model, device=device)
    dataset = ClipDataset(table["path"].to_numpy(), table["start"].to_numpy(), table["end"].to_numpy(),
                          config=config.model, decoder=args.decoder)
    n, bs = len(dataset), args.batch_size

    def run(frames, audio, onsets):
        with torch.no_grad(), autocast(device):
            out = model(frames.to(device, non_blocking=True), audio.to(device, non_blocking=True),
                        onsets.to(device, non_blocking=True)).float().cpu()
        return out

    def sequential():
        for i in range(n):
            item = dataset[i]
            assert not item.reason, item.detail
            run(item.frames[None], item.audio[None], item.onsets[None])

    def decode_only():
        loader = DataLoader(dataset, batch_size=bs, num_workers=workers, collate_fn=collate,
                            pin_memory=device.type == "cuda")
        assert sum(len(batch["index"]) for batch in loader) == n

    first = collate([dataset[i] for i in range(bs)])

    def model_only():
        for _ in range(math.ceil(n / bs)):
            run(first["frames"], first["audio"], first["onsets"])
        synchronize(device)

    def end_to_end(decoder: str = args.decoder):
        with tempfile.TemporaryDirectory() as tmp:
            result = commands.bias(args.data, model=args.model, out=Path(tmp) / "out", decoder=decoder,
                                   cache_dir=Path(tmp) / "cache", device=args.device, batch_size=bs, workers=workers)
            assert result.n_cached == 0 and len(result.skipped) == 0

    run(first["frames"], first["audio"], first["onsets"])  # warm-up: allocator, cudnn, numba (above)
    timings = [("end-to-end", end_to_end)] + [(f"end-to-end {d}", functools.partial(end_to_end, d))
                                                for d in args.against]
    if not args.end_to_end_only:
        timings = [("decode-only", decode_only), ("model-only", model_only), *timings]
    measured = {} if args.end_to_end_only else {"sequential": timed(sequential)}
    for round_ in range(args.rounds):  # the best of each: a shared machine's noise only ever adds time
        for name, function in timings[round_ % len(timings):] + timings[: round_ % len(timings)]:  # taking turns
            measured[name] = min(measured.get(name, (math.inf, 0.0)), timed(function))
    seconds = {name: wall for name, (wall, _) in measured.items()}
    print(f"{n} videos from {args.data}, preset {config.preset}, device {device}, batch {bs}, {workers} "
          f"decoding workers, {torch.get_num_threads()} torch threads, decoder {args.decoder}, best of {args.rounds} "
          "rounds")
    for name, (s, cpu) in measured.items():
        print(f"{name:18s} {s:7.1f} s  {n / s:7.2f} videos/s  (CPU {cpu:6.1f} s)")
    for decoder in args.against:
        wall, cpu = measured[f"end-to-end {decoder}"]
        print(f"end-to-end {args.decoder} / {decoder} = {seconds['end-to-end'] / wall:.3f} (wall), "
              f"{measured['end-to-end'][1] / cpu:.3f} (CPU)")
    if not args.end_to_end_only:
        shared_cpu = device.type == "cpu"
        bound = (seconds["decode-only"] + seconds["model-only"] if shared_cpu
                 else max(seconds["decode-only"], seconds["model-only"]))
        print(f"{'bound':18s} {bound:7.1f} s  {n / bound:7.2f} videos/s  "
              f"({'decode-only + model-only' if shared_cpu else 'max(decode-only, model-only)'})")
        print(f"bound / end-to-end = {bound / seconds['end-to-end']:.2f}")
        print(f"end-to-end / sequential = {seconds['sequential'] / seconds['end-to-end']:.2f}x")
    scratch.cleanup()


if __name__ == "__main__":
    main()
