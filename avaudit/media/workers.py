"""Decoding in worker processes whose death costs one clip, never the run.

Native decoders crash: a segfault, an abort, an out-of-memory kill ends the DataLoader worker, and
torch's DataLoader then ends the whole iteration ("DataLoader worker ... killed by signal"), at the
same clip on every rerun. `decode_batches` keeps torch's DataLoader and, when a worker dies, finds
the row it was decoding (each worker notes the row it holds in shared memory), decodes that row alone
in a fresh process (a crash that recurs there is the clip's; an out-of-memory kill among several
workers may not recur, and the clip is audited), and goes on with a new DataLoader over the rows not
yet returned. A row that dies alone is `decoder crashed`, its detail naming the file and the signal
or exit code. Training can use it as inference does: in place of `DataLoader(...)`.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
import threading
import time
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, get_worker_info

from avaudit.vocab import Skip

ISOLATED_GRACE_S = 30.0  # an isolated decode may run this much past the dataset's own time limit
WORKER_EXIT_WAIT_S = 5.0  # after a batch's transfer broke, how long its worker may take to be seen dead


def decode_batches(dataset, *, batch_size: int, workers: int, collate_fn: Callable, pin_memory: bool = False,
                   context: str | None = None) -> Iterator:
    """collate_fn(items) for batches of `dataset`'s rows, every row exactly once.

    `dataset` is a ClipDataset (items carry their `index`; `crashed(index, how)` and
    `empty_item(index, reason, detail)` make the items of rows whose decoding died). At least one
    worker process decodes: `workers=0` decodes in one, so that a crash costs one clip there too.
    Rows come in order until a worker dies; after that the suspect rows come first.
    """
    workers = max(1, workers)
    slots = torch.full((workers,), -1, dtype=torch.int64).share_memory_()  # the row each worker holds
    pids = torch.zeros(workers, dtype=torch.int64).share_memory_()  # each worker's process id, once it has a row
    watched = _Watched(dataset, slots, pids)
    todo = list(range(len(dataset)))
    torch_handler = None
    batches = None
    try:
        while todo:
            sampler = _CountedBatches(todo, batch_size)
            loader = DataLoader(watched, batch_sampler=sampler, num_workers=workers, collate_fn=_WithRows(collate_fn),
                                pin_memory=pin_memory, multiprocessing_context=context)
            batches = iter(loader)  # torch sets its SIGCHLD handler with the first one
            if torch_handler is None and threading.current_thread() is threading.main_thread():
                # torch's handler raises a worker's death into whatever the main thread runs at that
                # moment (the network, a cache write). Without it the DataLoader finds the dead worker
                # itself, inside next(), after 5 s without data (MP_STATUS_CHECK_INTERVAL).
                torch_handler = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            done: set[int] = set()
            try:
                for rows, batch in batches:
                    done.update(rows)
                    yield batch
                break
            except (RuntimeError, OSError, EOFError) as err:
                death = _death(err, pids)  # a string, not `err`: its traceback would keep the dead pool alive
                if death is None:
                    raise
            held = [row for row in slots.tolist() if row >= 0]
            slots.fill_(-1)
            pids.fill_(0)  # the next pool's workers note theirs: a reaped worker's pid may be reused
            batches = None  # shuts the pool down before anything else starts a process
            # No row held: the worker died between rows, so every row handed out is a suspect.
            suspects = held or [row for row in sampler.handed() if row not in done]
            if not suspects:  # nothing to blame, and a new pool would die the same way
                raise RuntimeError(f"{death} before it was given a row")
            for row in suspects:
                yield collate_fn([decode_alone(dataset, row, context=context)])
            done.update(suspects)
            todo = [row for row in todo if row not in done]
    finally:
        batches = None
        if torch_handler is not None:
            signal.signal(signal.SIGCHLD, torch_handler)


def _death(err: BaseException, pids: torch.Tensor) -> str | None:
    """What a DataLoader error says about a worker's death, or None when it is another error.

    torch says "DataLoader worker (pid N) ..." when it saw the death itself. A worker killed while its
    batch is in transfer (the tensors' file descriptors are passed over a socket the worker serves)
    breaks the transfer first: an EOFError or ConnectionResetError in the main process, or on a GPU
    "Pin memory thread exited unexpectedly" from the thread that received it, while the worker, not
    yet reaped, still looks alive to torch. Then a worker that exits within WORKER_EXIT_WAIT_S is the
    cause: its batch is lost, and its rows are decoded again like any other dead worker's.
    """
    text = str(err)
    if isinstance(err, RuntimeError) and text.startswith("DataLoader worker (pid"):
        return text
    if isinstance(err, RuntimeError) and not text.startswith("Pin memory thread exited unexpectedly"):
        return None
    pid = _exited_worker(pids.tolist(), WORKER_EXIT_WAIT_S)
    return None if pid is None else f"DataLoader worker (pid {pid}) died while its batch was in transfer " \
                                    f"({type(err).__name__})"


def _exited_worker(pids: list[int], wait_s: float) -> int | None:
    """The first of `pids` (0: not started) to have exited, within `wait_s`; None if none has. Looked at
    with WNOWAIT, so that the DataLoader still reaps its own workers."""
    deadline = time.monotonic() + wait_s
    while True:
        for pid in filter(None, pids):
            try:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return pid
            except ChildProcessError:  # already reaped
                return pid
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.02)


def decode_alone(dataset, row: int, *, context: str | None = None):
    """dataset[row] decoded in a fresh process; the crashed (or timed-out) item if that process dies."""
    ctx = multiprocessing.get_context(context)
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_decode_and_send, args=(dataset, row, send), daemon=True)
    child.start()
    send.close()
    limit = getattr(dataset, "time_limit", 0) + ISOLATED_GRACE_S
    with receive:
        if not receive.poll(limit):  # stuck inside C code, where its own alarm cannot reach
            child.kill()
            child.join()
            return dataset.empty_item(row, Skip.decode_timeout,
                                      f"{dataset.name(row)}: decoding took over {limit:g} s")
        try:
            payload = receive.recv_bytes()
        except EOFError:  # it died before sending
            payload = None
    child.join()
    if payload is not None:
        return pickle.loads(payload)
    code = child.exitcode
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    return dataset.crashed(row, how)


def _decode_and_send(dataset, row: int, send) -> None:
    send.send_bytes(pickle.dumps(dataset[row]))
    send.close()


class _Watched(Dataset):
    """The dataset, with each worker noting in shared memory the row it is decoding (-1 between rows)
    and its process id."""

    def __init__(self, dataset, slots: torch.Tensor, pids: torch.Tensor):
        self.dataset, self.slots, self.pids = dataset, slots, pids

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, row: int):
        slot = get_worker_info().id
        self.pids[slot] = os.getpid()
        self.slots[slot] = row
        item = self.dataset[row]
        self.slots[slot] = -1
        return item


class _CountedBatches:
    """Batches of `rows` in order, remembering how many it has handed to the DataLoader."""

    def __init__(self, rows: list[int], batch_size: int):
        self.rows, self.batch_size, self.n_handed = rows, batch_size, 0

    def __iter__(self):
        for start in range(0, len(self.rows), self.batch_size):
            batch = self.rows[start : start + self.batch_size]
            self.n_handed = start + len(batch)
            yield batch

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def handed(self) -> list[int]:
        return self.rows[: self.n_handed]


class _WithRows:
    """collate_fn that also returns the rows it collated (a class: forkserver workers pickle it)."""

    def __init__(self, collate_fn: Callable):
        self.collate_fn = collate_fn

    def __call__(self, items):
        return [item.index for item in items], self.collate_fn(items)
