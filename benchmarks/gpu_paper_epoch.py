"""One epoch per stage of the `paper` preset on a GPU, timed, plus a check that Conv3d runs on cuDNN.

    python benchmarks/gpu_paper_epoch.py sample_videos/ OUT_DIR

Prints seconds per clip for each training stage (the decoded clips are in memory, so these are
network times), inference clips per second under bf16, and the cuDNN kernels seen.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from avaudit.config import load_config
from avaudit.media.manifests import read_manifest
from avaudit.model.fusion import FusionNet
from avaudit.training.recipe import run_recipe


def cudnn_check(config) -> None:
    model = FusionNet(config.model, 16).cuda().eval()
    model.video_net.to(memory_format=torch.channels_last_3d)
    frames = torch.randint(0, 255, (8, 100, 112, 112, 3), dtype=torch.uint8, device="cuda")
    audio, onsets = torch.randn(8, 160000, device="cuda"), torch.zeros(8, 100, dtype=torch.bool, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        for _ in range(3):
            model(frames, audio, onsets)
        torch.cuda.synchronize()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA,
                                                torch.profiler.ProfilerActivity.CPU]) as prof:
            model(frames, audio, onsets)
            torch.cuda.synchronize()
        started = time.perf_counter()
        for _ in range(5):
            model(frames, audio, onsets)
        torch.cuda.synchronize()
    per_clip = (time.perf_counter() - started) / 40
    names = {e.key for e in prof.key_averages()}
    print(f"cudnn enabled={torch.backends.cudnn.enabled} version={torch.backends.cudnn.version()}; "
          f"aten::cudnn_convolution seen: {'aten::cudnn_convolution' in names}; "
          f"slow_conv3d seen: {any('slow_conv3d' in n for n in names)}")
    print(f"paper inference, bf16, batch 8: {per_clip * 1000:.1f} ms/clip = {1 / per_clip:.0f} clips/s")


def main() -> None:
    data, out = Path(sys.argv[1]), Path(sys.argv[2])
    print(torch.__version__, torch.cuda.get_device_name())
    config = load_config("paper", {"train.epochs": [1, 1, 1], "train.num_workers": 12})
    cudnn_check(config)
    started = time.perf_counter()
    result = run_recipe(read_manifest(data).table, config=config, out=out / "paper.pt", device="cuda")
    print(f"whole run (decode + 3 epochs + eval): {time.perf_counter() - started:.1f} s for "
          f"{result['n_train']} training clips")
    history = torch.load(out / "paper.pt", weights_only=True)["metrics"]["history"]
    for record in history:
        print(f"stage {record['stage']:5s}: {record['seconds'] / result['n_train']:.4f} s/clip "
              f"({record['clips_per_second']:.1f} clips/s), val vote {record['val_vote']:.2f}")


if __name__ == "__main__":
    main()
