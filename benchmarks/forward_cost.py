"""Forward cost per clip of the `small` and `paper` presets, side by side, on this machine's CPU.

    python benchmarks/forward_cost.py [--repeats 3]

Times the network alone (decoded inputs already in memory), batch 1, no gradient, every core.
"""
from __future__ import annotations

import argparse
import time

import torch

from avaudit.config import load_config
from avaudit.model.fusion import FusionNet


def seconds_per_clip(preset: str, repeats: int) -> tuple[float, int]:
    config = load_config(preset).model
    model = FusionNet(config, n_classes=16).eval()
    frames = torch.randint(0, 255, (1, config.steps, config.crop, config.crop, 3), dtype=torch.uint8)
    audio, onsets = torch.randn(1, config.n_samples), torch.zeros(1, config.steps, dtype=torch.bool)
    with torch.no_grad():
        model(frames, audio, onsets)  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            model(frames, audio, onsets)
    return (time.perf_counter() - started) / repeats, sum(p.numel() for p in model.parameters())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    results = {preset: seconds_per_clip(preset, args.repeats) for preset in ("small", "paper")}
    for preset, (seconds, params) in results.items():
        print(f"{preset:6s} {seconds:8.3f} s/clip  {params:>11,d} parameters")
    print(f"paper / small = {results['paper'][0] / results['small'][0]:.1f}x")


if __name__ == "__main__":
    main()
