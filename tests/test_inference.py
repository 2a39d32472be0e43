"""Inference glue: how the network shares the CPU cores with the decoding workers."""
import pytest
import torch

from avaudit.device import CoreShare, default_workers


@pytest.fixture
def four_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(4)
    yield
    torch.set_num_threads(before)


def test_the_network_takes_the_share_of_cores_its_work_calls_for(four_threads):
    share = CoreShare(device=torch.device("cpu"), workers=4)
    share.update(decode_s=3.0, model_s=1.0)  # decoding is 3/4 of the work: one core of four
    assert torch.get_num_threads() == 1
    share.update(decode_s=0.0, model_s=6.0)  # now 7/10: three of four
    assert torch.get_num_threads() == 3
    share.update(decode_s=0.0, model_s=1000.0)  # nearly all: every core
    assert torch.get_num_threads() == 4
    share.update(decode_s=10_000.0, model_s=0.0)  # at least one thread
    assert torch.get_num_threads() == 1
    share.restore()
    assert torch.get_num_threads() == 4


@pytest.mark.parametrize("device, workers", [("cpu", 0), ("meta", 4)])
def test_without_workers_or_off_the_cpu_threads_are_left_alone(four_threads, device, workers):
    share = CoreShare(device=torch.device(device), workers=workers)
    share.update(decode_s=3.0, model_s=1.0)
    share.restore()
    assert torch.get_num_threads() == 4


def test_workers_are_shared_among_the_ranks_on_a_machine(monkeypatch):
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: set(range(16)))
    assert default_workers() == 16
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")
    assert default_workers() == 4
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "32")
    assert default_workers() == 1
