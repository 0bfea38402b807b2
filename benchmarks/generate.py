"""Sampling speed of the course's decoding against the straightforward loop, printed as JSON.

The reference is the loop the course used before: the model's own ``forward`` with the KV cache
for every token, ``torch.multinomial`` for the draw, finished rows fed until the whole batch is
done, one batch per prompt length, on torch's default number of threads. The course's path is
:func:`course_utils.generate.generate` / :func:`generate_batch`. Both run the same weights (the
active profile's model shape, default ``cpu``), alternating round by round in one process; each
figure is the median over rounds of new tokens per second, and every ratio comes with its spread
(lowest and highest ratio of a single round), because other programs share the cores.

- ``single``: one stream, 256 new tokens after a one-token prompt.
- ``batch_<n>``: n prompts of one length, 64 new tokens each (the engine alone).
- ``mixed_<n>``: n prompts of 4 to 11 tokens (the reference runs one batch per length).

``vs_reference`` is the ratio against the reference on one thread, like the course's path: the
engine's gain alone. ``vs_reference_default_threads`` is against the reference on torch's default
number of threads, what a learner got before, for the two workloads with targets (on a busy
machine that reference is very slow: its threads wait for each other). Greedy tokens of both
paths are compared as well (``greedy_identical``): they must be equal.

    .venv/bin/python benchmarks/generate.py [--rounds 3] [--vocab 2048]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import torch

from course_utils import config
from course_utils.generate import eval_mode, generate, generate_batch
from course_utils.model import GPT, default_config


# ----------------------------------------------------------------------------- the reference


@torch.no_grad()
def reference_rows(model, prompts, max_new_tokens, temperature, generator):
    """Equal-length prompts: forward with the cache each step, multinomial, every row fed to the end."""
    out = [[] for _ in prompts]
    cache = model.new_kv_cache()
    logits = model(torch.tensor(prompts), kv_cache=cache)[0][:, -1]
    for step in range(max_new_tokens):
        if temperature == 0:
            nxt = logits.argmax(-1)
        else:
            probs = torch.softmax(logits / temperature, -1)
            nxt = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        for row, token in zip(out, nxt.tolist()):
            row.append(token)
        if step == max_new_tokens - 1:
            break
        if cache.pos + 1 > model.config.block_size:  # full: re-read the last block_size tokens
            cache.reset()
            ids = torch.tensor([p + o for p, o in zip(prompts, out)])[:, -model.config.block_size:]
            logits = model(ids, kv_cache=cache)[0][:, -1]
        else:
            logits = model(nxt[:, None], kv_cache=cache)[0][:, -1]
    return out


def reference_batch(model, prompts, max_new_tokens, temperature=1.0, generator=None):
    """One batch per prompt length, as the course's generate_batch did."""
    out = [None] * len(prompts)
    by_length = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    with eval_mode(model):
        for rows in by_length.values():
            for i, o in zip(rows, reference_rows(model, [prompts[i] for i in rows], max_new_tokens, temperature,
                                                 generator)):
                out[i] = o
    return out


# ----------------------------------------------------------------------------- the measurements


def workloads(vocab: int, block: int):
    g = torch.Generator().manual_seed(0)
    rand = lambda n: torch.randint(1, vocab, (n,), generator=g).tolist()  # noqa: E731
    yield "single", [[0]], min(256, block)
    for n in (8, 32, 128):
        yield f"batch_{n}", [rand(8) for _ in range(n)], 64
    for n in (32, 128):
        yield f"mixed_{n}", [rand(4 + i % 8) for i in range(n)], 64


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--vocab", type=int, default=2048)
    args = ap.parse_args()

    torch.manual_seed(0)
    model = GPT(default_config(args.vocab)).eval()
    default_threads = torch.get_num_threads()

    def course(prompts, n_new, temperature, seed):
        gen = torch.Generator().manual_seed(seed)
        if len(prompts) == 1:
            return [generate(model, prompts[0], n_new, temperature=temperature, generator=gen)]
        return generate_batch(model, prompts, n_new, temperature=temperature, generator=gen)

    def reference(threads):
        def run(prompts, n_new, temperature, seed):
            torch.set_num_threads(threads)
            try:
                return reference_batch(model, prompts, n_new, temperature, torch.Generator().manual_seed(seed))
            finally:
                torch.set_num_threads(default_threads)
        return run

    paths = {"course": course, "reference": reference(1), "reference_default_threads": reference(default_threads)}
    loads = list(workloads(model.config.vocab_size, model.config.block_size))
    targets = {"single": 3.0, "batch_128": 2.0}
    greedy_identical = {name: course(p, n, 0.0, 0) == paths["reference"](p, n, 0.0, 0) for name, p, n in loads}

    rates = {(w, p): [] for w, _, _ in loads for p in paths}
    for r in range(args.rounds + 1):  # round 0 warms up and is not counted
        order = list(paths)[r % 3:] + list(paths)[:r % 3]  # each path goes first in turn
        for name, prompts, n_new in loads:
            for p in order:
                if p == "reference_default_threads" and (name not in targets or r == 0):
                    continue
                t0 = time.perf_counter()
                out = paths[p](prompts, n_new, 1.0, r)
                if r:
                    rates[(name, p)].append(sum(map(len, out)) / (time.perf_counter() - t0))

    def ratio(name, ref):
        per_round = [c / b for c, b in zip(rates[(name, "course")], rates[(name, ref)])]
        median = statistics.median(rates[(name, "course")]) / statistics.median(rates[(name, ref)])
        return {"median": round(median, 2), "low": round(min(per_round), 2), "high": round(max(per_round), 2)}

    cfg = model.config
    result = {
        "profile": config.profile(),
        "torch": torch.__version__,
        "threads_default": default_threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "rounds": args.rounds,
        "shape": {"vocab": cfg.vocab_size, "block": cfg.block_size, "n_layer": cfg.n_layer, "n_embd": cfg.n_embd},
        "new_tokens_per_s": {name: {p: round(statistics.median(v)) for p in paths if (v := rates[(name, p)])}
                             for name, _, _ in loads},
        "vs_reference": {name: ratio(name, "reference") for name, _, _ in loads},
        "vs_reference_default_threads": {name: ratio(name, "reference_default_threads") for name in targets},
        "greedy_identical": greedy_identical,
        "targets_vs_reference_default_threads": targets,
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
