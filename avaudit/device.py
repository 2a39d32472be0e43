"""Where the work runs: the device, bf16 autocast, the torchrun group, and the CPU cores.

Shared by training, inference and the audits; imports no other avaudit module.
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist

from avaudit.errors import ParameterError

CPU_AUTOCAST = "AVAUDIT_CPU_AUTOCAST"  # set to 1: bf16 autocast on the CPU too (the tests run the GPU's path)


def autocast(device: torch.device):
    """bf16 autocast on GPU; full precision on CPU, where bf16 convs are slower, unless the
    environment sets AVAUDIT_CPU_AUTOCAST=1: then the CPU runs the GPU's bf16 path, so that its
    dtype and shape errors show without a GPU (an environment variable reaches every layer that
    runs the network, and torchrun's and the CLI's processes, without a parameter through each)."""
    forced = os.environ.get(CPU_AUTOCAST) == "1"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda" or forced)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ParameterError("device", "cuda: no CUDA device is available")
    if name == "cuda" and dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device(name)


def init_distributed(device_name: str) -> tuple[int, int]:
    """(rank, world size); joins the torchrun group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        use_nccl = device_name != "cpu" and torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group("nccl" if use_nccl else "gloo")
    return (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)


def default_workers() -> int:
    """Decoding worker processes: one per core this process may use, shared among the torchrun
    ranks on this machine. Decoding is most of an audit's CPU work (benchmarks/pipeline.py)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))


class CoreShare:
    """The network's CPU threads, sized to its share of the run's CPU work.

    On a CPU the decoding workers and the network share the cores. Giving the network every core
    while the workers decode oversubscribes them, and threads that wait on each other waste the
    time; so the network gets the share of the cores that its share of the CPU seconds so far
    calls for (at least one thread): one of two cores for `small`, where decoding is three
    quarters of the work, every core for `paper`, where the network is nearly all of it.
    benchmarks/pipeline.py measures the gain. Off on a GPU and without workers.
    """

    def __init__(self, *, device: torch.device, workers: int):
        self.active = device.type == "cpu" and workers > 0
        self.every = torch.get_num_threads()
        self.decode_s = self.model_s = 0.0

    def update(self, decode_s: float, model_s: float) -> None:
        """Add one batch's decoding and network CPU seconds, and set the threads for the next."""
        if not self.active:
            return
        self.decode_s += decode_s
        self.model_s += model_s
        share = self.model_s / max(self.decode_s + self.model_s, 1e-9)
        threads = min(self.every, max(1, round(self.every * share)))
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)

    def restore(self) -> None:
        if self.active:
            torch.set_num_threads(self.every)


def worker_context():
    """Forked DataLoader workers crash once CUDA is initialised in the parent; use forkserver then."""
    return "forkserver" if torch.cuda.is_initialized() else None
