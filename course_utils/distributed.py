"""Data parallelism: the one training loop, run by several processes at once.

Every process holds a whole copy of the model. Each optimizer step, every process takes its
own rows of the batch, computes gradients on them, and then the processes *average* their
gradients (an all-reduce), so every copy takes the same step and they stay identical. Two
processes with half the batch each therefore train exactly like one process with the whole
batch: it is gradient accumulation, spread over processes instead of over time.

:func:`course_utils.train.train` does this by itself whenever a process group is running
(``torchrun`` starts one per process):

- rank-aware data sharding: every process draws the same global batch from the same seeded
  generator and keeps its own rows (:func:`my_rows`), so the shards never overlap and the
  global batch is the one a single process would have drawn;
- averaged gradients: the model is wrapped in ``DistributedDataParallel`` (:func:`wrap`),
  which all-reduces the gradients during the backward pass;
- one voice: only rank 0 shows progress, evaluates, samples and saves (:func:`is_main`).

Without a process group every helper here is a no-op and the loop is the single-process one.

The module is also the worker ``torchrun -m course_utils.distributed --job '{...}'`` runs
(:func:`run_job`), the entry point for ``torch.multiprocessing`` (:func:`spawn_entry`), and the
launcher a notebook calls (:func:`launch`): it starts torchrun, streams its log back, and
when a process dies it says which rank failed and why instead of hanging. A worker must live
in a module: processes started by torchrun or by ``spawn`` cannot import a notebook's code.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

RESULT_FILE = "result.json"
WEIGHTS_FILE = "model.safetensors"


# ----------------------------------------------------------------------------- inside the loop

def active() -> bool:
    """Is this process one of several in a running process group?"""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def is_main() -> bool:
    """Rank 0, or the only process: the one that logs, evaluates and saves."""
    return rank() == 0


def my_rows(batch):
    """This process's share of a global batch: rows ``rank * B/W`` to ``(rank + 1) * B/W`` of
    every tensor (the batch is the first dimension of each). Unchanged without a process group."""
    if not active():
        return batch
    if isinstance(batch, torch.Tensor):
        rows, world = batch.size(0), world_size()
        if rows % world:
            raise ValueError(f"A global batch of {rows} rows cannot be split evenly over {world} processes.")
        share = rows // world
        return batch[rank() * share:(rank() + 1) * share]
    if isinstance(batch, (tuple, list)):
        return type(batch)(my_rows(b) for b in batch)
    if isinstance(batch, dict):
        return {k: my_rows(v) for k, v in batch.items()}
    return batch


def wrap(model: nn.Module) -> nn.Module:
    """``DistributedDataParallel``: it copies rank 0's weights to every process once, then
    all-reduces (averages) the gradients during every backward pass, in buckets, starting
    while the backward pass is still computing the earlier layers' gradients."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model)


def sync_gradients(synced: nn.Module, now: bool):
    """Around a micro-batch's forward and backward: average the gradients across processes
    only when ``now`` (the last micro-batch of a step); before that, accumulate locally."""
    if now or not active():
        return contextlib.nullcontext()
    return synced.no_sync()


def _comm_device() -> str:
    # gloo (the CPU backend the course uses) sends CPU tensors; nccl sends only GPU tensors.
    return "cuda" if dist.get_backend() == "nccl" else "cpu"


def mean(value: float) -> float:
    """The mean of a number over all processes (e.g. each one's loss on its own rows)."""
    if not active():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device())
    dist.all_reduce(t)
    return float(t) / world_size()


def any_of(flag: bool) -> bool:
    """True on every process if it is true on any: decisions to stop must be unanimous, or the
    processes still training would wait forever for the one that stopped."""
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=_comm_device())
    dist.all_reduce(t)
    return bool(t.item() > 0)


# ----------------------------------------------------------------------------- the worker

@dataclass
class Job:
    """What a worker trains: the same recipe on every process (JSON-able, to cross process lines).

    ``batch_size`` is per process (the global batch is ``batch_size x processes x grad_accum``).
    ``data`` is ``"corpus"`` (the pretraining corpus, with the course's tokenizer) or
    ``"random"`` (a seeded random token stream: no stages needed, for tests).
    ``fail_rank`` / ``fail_step``: that rank raises an error at that step (to see a failure reported).
    """

    model: dict  # GPTConfig fields
    out_dir: str
    steps: int = 10
    batch_size: int = 8
    grad_accum: int = 1
    lr: float = 3e-3
    warmup_steps: int = 2
    seed: int = 1337
    data: str = "corpus"
    allreduce_repeats: int = 20  # all-reduces of a model-sized buffer timed after training
    dtype: str = "float32"  # "float64" shows that what differs between runs is float32 rounding
    threads: int | None = None  # torch threads for this job (None: leave the process's setting)
    fail_rank: int | None = None
    fail_step: int | None = None

    def train_config(self):
        from .pretrain import pretrain_config

        return pretrain_config(max_steps=self.steps, batch_size=self.batch_size, grad_accum=self.grad_accum,
                               lr=self.lr, warmup_steps=self.warmup_steps, seed=self.seed, eval_every=0,
                               eval_batches=0, sample_every=0, num_threads=self.threads)


class WorkerFailed(RuntimeError):
    """A process of a distributed run died; the message names its rank and its error."""


def job_data(job: Job, block_size: int):
    """The batch source a job trains on (the same on every process)."""
    from .pretrain import TokenWindows, prepare_data

    if job.data == "random":
        gen = torch.Generator().manual_seed(job.seed)
        ids = torch.randint(0, job.model["vocab_size"], (20_000,), generator=gen)
        return TokenWindows(ids[2_000:], ids[:2_000], block_size)
    from .stages import ensure_stage

    data, _ = prepare_data(ensure_stage("tokenizer").tokenizer(), block_size)
    return data


class _FailAt:
    """Wraps a batch source so that one rank raises at one step: a worker dying on purpose."""

    def __init__(self, get_batch, fail_step: int):
        self.get_batch, self.fail_step, self.calls = get_batch, fail_step, 0

    def __call__(self, split, batch_size, generator):
        if split == "train":
            self.calls += 1
            if self.calls > self.fail_step:
                raise RuntimeError(f"rank {rank()} stops at step {self.fail_step + 1} on purpose (fail_rank)")
        return self.get_batch(split, batch_size, generator)


def run_job(job: Job) -> dict:
    """Train ``job`` with :func:`course_utils.train.train` in this process (one of the group, or
    alone). Rank 0 writes ``result.json`` (loss history, speed, all-reduce timing) and the final
    weights into ``job.out_dir``, and returns the result."""
    from safetensors.torch import save_model

    from .model import GPT, GPTConfig
    from .train import train

    shape = GPTConfig.from_dict(job.model)
    data = job_data(job, shape.block_size)
    if job.fail_rank is not None and rank() == job.fail_rank:
        data = _FailAt(data, job.fail_step or 0)
    torch.manual_seed(job.seed)  # the same initial weights as a single-process run
    model = GPT(shape).to(getattr(torch, job.dtype))
    threads_before = torch.get_num_threads()
    try:
        result = train(model, data, job.train_config(), progress=False, verbose=False, desc=f"rank {rank()}")
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(threads_before)  # the job's setting ends with the job
    timing = allreduce_seconds(model, repeats=job.allreduce_repeats)
    out = {"world_size": world_size(), "threads": threads, "tokens_per_s": steady_speed(result.history),
           "history": result.history, "final": result.final, **timing}
    if is_main():
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        save_model(model, str(out_dir / WEIGHTS_FILE))
        tmp = out_dir / f".{RESULT_FILE}.tmp"
        tmp.write_text(json.dumps(out), encoding="utf-8")
        os.replace(tmp, out_dir / RESULT_FILE)
        for h in result.history:
            print(f"step {h['step']:>4}  loss {h['train_loss']:.4f}", flush=True)
        print(f"{world_size()} process(es) x {threads} thread(s): {out['tokens_per_s']:,.0f} tokens/s", flush=True)
        if active():
            print(f"one all-reduce of all the gradients ({timing['allreduce_bytes'] / 1e6:.2f} MB): "
                  f"{timing['allreduce_seconds'] * 1e3:.2f} ms", flush=True)
    return out


def steady_speed(history: list[dict]) -> float:
    """Tokens per second after the first step (which also pays for one-off set-up: memory,
    kernels, DDP's buckets), so that runs started in different ways compare fairly."""
    if len(history) < 2:
        return history[-1]["tokens"] / max(history[-1]["seconds"], 1e-9) if history else 0.0
    first, last = history[0], history[-1]
    return (last["tokens"] - first["tokens"]) / max(last["seconds"] - first["seconds"], 1e-9)


def allreduce_seconds(model: nn.Module, repeats: int = 20) -> dict:
    """What averaging the gradients costs: the time of one all-reduce of a buffer as large as all
    the trainable parameters (what DDP sends each step, in a few buckets), median of ``repeats``."""
    numel = sum(p.numel() for p in model.parameters() if p.requires_grad)
    buffer = torch.zeros(numel)  # float32, whatever the model's type: the figure is for float32 training
    times = []
    for _ in range(repeats if active() else 0):
        dist.barrier()
        start = time.perf_counter()
        dist.all_reduce(buffer)
        times.append(time.perf_counter() - start)
    times.sort()
    return {"allreduce_bytes": numel * 4, "allreduce_seconds": times[len(times) // 2] if times else 0.0}


def spawn_entry(local_rank: int, world: int, init_file: str, job: dict) -> None:
    """For ``torch.multiprocessing.spawn(spawn_entry, args=(world, init_file, job), nprocs=world)``:
    join a process group through a shared file (no network ports), one thread, run the job."""
    torch.set_num_threads(1)  # spawn does not set OMP_NUM_THREADS the way torchrun does
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=local_rank, world_size=world,
                            timeout=timedelta(seconds=120))
    try:
        run_job(Job(**job))
        _settle()
    finally:
        dist.destroy_process_group()


def _settle() -> None:
    """Before leaving the group: free what the run left behind now (DDP's wrapper holds reference
    cycles, which only the garbage collector frees) and wait until every process is done. Without
    this, a worker now and then aborted at exit after finishing its work ("terminate called without
    an active exception": 2 runs in about 35 here; none in 60 with it)."""
    gc.collect()
    dist.barrier()


def main(argv: list[str] | None = None) -> None:
    """``torchrun ... -m course_utils.distributed --job '<json>'``: torchrun sets RANK, WORLD_SIZE,
    MASTER_ADDR and MASTER_PORT for each process; ``init_process_group`` reads them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True, help="the Job as JSON")
    job = Job(**json.loads(parser.parse_args(argv).job))
    # gloo is the CPU backend (nccl is for GPUs). A collective that waits longer than the timeout
    # fails instead of hanging, e.g. when another process is stuck.
    dist.init_process_group("gloo", timeout=timedelta(seconds=120))
    try:
        run_job(job)
        _settle()
    finally:
        dist.destroy_process_group()


def weight_difference(dir_a: str | Path, dir_b: str | Path, above: float = 1e-5) -> dict:
    """How far apart the weights two jobs saved are: the largest absolute difference, and how
    many of the numbers differ by more than ``above``."""
    from safetensors.torch import load_file

    a, b = load_file(str(Path(dir_a) / WEIGHTS_FILE)), load_file(str(Path(dir_b) / WEIGHTS_FILE))
    if a.keys() != b.keys():
        raise ValueError(f"The two models have different tensors: {sorted(a.keys() ^ b.keys())[:5]}")
    diffs = [(a[k].double() - b[k].double()).abs() for k in sorted(a)]
    return {"max": max(float(d.max()) for d in diffs), "above": sum(int((d > above).sum()) for d in diffs),
            "numbers": sum(d.numel() for d in diffs)}


# ----------------------------------------------------------------------------- the launcher

def torchrun_command(job: Job, nproc: int = 2) -> list[str]:
    """The command :func:`launch` runs: ``torchrun --standalone --nproc_per_node N -m course_utils.distributed``
    (``python -m torch.distributed.run`` is torchrun, with this very interpreter)."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "course_utils.distributed", "--job", json.dumps(asdict(job))]


_NOISE = re.compile(r"^(W\d{4} |\*{5,})|OMP_NUM_THREADS environment variable|^\s*$")


def launch(job: Job, nproc: int = 2, *, threads: int = 1, timeout_s: float = 600, echo: bool = True) -> dict:
    """Run ``job`` on ``nproc`` processes under torchrun, print their log as it comes, and return
    rank 0's result. ``threads`` per process (``OMP_NUM_THREADS``): processes x threads should not
    exceed the cores. Raises :class:`WorkerFailed` naming the rank that died and its error, or
    after ``timeout_s`` seconds (the whole group is stopped either way: nothing is left hanging)."""
    out_dir = Path(job.out_dir)
    (out_dir / RESULT_FILE).unlink(missing_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    # A session of its own, so that a timeout can stop torchrun *and* every worker it started.
    proc = subprocess.Popen(torchrun_command(job, nproc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, start_new_session=True)
    lines: list[str] = []
    deadline = time.monotonic() + timeout_s
    try:
        for line in _lines_until(proc, deadline):
            lines.append(line)
            if echo and not _NOISE.search(line):
                print(line, flush=True)
    except TimeoutError:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise WorkerFailed(f"The distributed run did not finish within {timeout_s:g} s and was stopped. "
                           f"Last lines:\n" + "\n".join(lines[-10:])) from None
    if proc.wait() != 0:
        raise WorkerFailed(failure_summary(lines, proc.returncode))
    return json.loads((out_dir / RESULT_FILE).read_text(encoding="utf-8"))


def _lines_until(proc: subprocess.Popen, deadline: float):
    """The process's output line by line; TimeoutError once ``deadline`` passes."""
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if sel.select(timeout=min(left, 1.0)):
                line = proc.stdout.readline()
                if not line:
                    return
                yield line.rstrip("\n")
            elif proc.poll() is not None:
                rest = proc.stdout.read()
                yield from (l for l in rest.splitlines())
                return


def failure_summary(lines: list[str], returncode: int) -> str:
    """Which rank failed first and why, from torchrun's log: its "Root Cause" names the rank,
    and that rank's traceback (lines prefixed ``[rankN]:``) ends with the error."""
    text = "\n".join(lines)
    root = text.split("Root Cause", 1)[-1] if "Root Cause" in text else text
    found = re.search(r"rank\s*:\s*(\d+)", root)
    failed = int(found.group(1)) if found else None
    why = None
    if failed is not None:
        own = [l.split(":", 1)[1].strip() for l in lines if l.startswith(f"[rank{failed}]:")]
        errors = [l for l in own if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt)\b", l)]
        why = errors[-1] if errors else None
        exitcode = re.search(r"exitcode\s*:\s*(-?\d+)", root)
        code = exitcode.group(1) if exitcode else "?"
        if why is None:  # killed by a signal, or a crash below Python: show what it wrote last
            why = "no Python error; its last lines:\n" + "\n".join(own[-8:] or lines[-15:])
        return f"rank {failed} failed (exit code {code}): {why}. The other processes were stopped."
    return f"torchrun exited with code {returncode}; last lines:\n" + "\n".join(lines[-15:])


if __name__ == "__main__":
    from torch.distributed.elastic.multiprocessing.errors import record

    record(main)()
