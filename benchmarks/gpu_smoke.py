"""The gpu profile on a CPU: the smoke run's figures, and the GPU memory each stage needs, as JSON.

**Smoke run** (``COURSE_PROFILE=gpu COURSE_SMOKE=1``, the run tests/test_gpu_profile.py makes):
every stage of the chain built by its registered builder at the gpu profile's shapes, with one
or two steps each and a few evaluation probes (see course_utils/config.py), in a temporary
COURSE_HOME. Each stage is built in a fresh process, so its figures are its own: wall seconds,
parameters, and peak resident memory on the CPU (``ru_maxrss``, Python and torch included).

**GPU memory of the real gpu run**, per stage, in GiB at fp32 (no autocast): one training step
at the profile's batch and sequence length, measured on fake tensors (shapes without data, so
it takes a second) by PyTorch's MemTracker, which counts every tensor alive at the step's peak:
the trained model's weights, gradients and AdamW's two moments (4 + 4 + 8 = 16 bytes per
parameter), the activations kept for the backward pass and the temporaries. The step is the
course model's next-token loss (``train.lm_loss``) on ``rows`` sequences of ``tokens`` tokens:
for pretraining and SFT, the batch at the full context (SFT packs its rows); for the reward
model and DPO, both answers of each comparison (2 x batch rows) at the longest comparison of
the data; for PPO, the batch of sampled answers at the longest prompt plus the answer budget.
Frozen models held beside it (the reward model's prior, PPO's reference and reward model, DPO's
reference) add 4 bytes per parameter. ``decode_gib``: the largest batch the stage decodes at
once (``generate_batch`` runs all prompts of one length together: the chat evaluations, the
reward stage's sampled answers, the RL judge), its KV cache for prompt + new tokens and the
logits of reading its prompts. Not included: the CUDA context (about 0.3-0.5 GB) and allocator
slack.

    .venv/bin/python benchmarks/gpu_smoke.py [--threads 1] [--full-data] [--keep DIR]

``--full-data`` also builds the full gpu clean corpus and tokenizer (no smoke cut: minutes, and
a few GB of memory). One thread by default: on a busy 2-core machine a second thread made
decoding up to 50x slower (threads spin-wait for each other on tiny tensors).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

CHAIN = ("clean", "tokenizer", "base", "sft", "sft_tools", "reward", "rlhf", "dpo", "reasoning")
GIB = 2 ** 30


@contextlib.contextmanager
def environment(**values):
    """Set environment variables (None: unset) for the block."""
    before = {k: os.environ.get(k) for k in values}
    for k, v in values.items():
        os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)
    try:
        yield
    finally:
        for k, v in before.items():
            os.environ.pop(k, None) if v is None else os.environ.__setitem__(k, v)


# ----------------------------------------------------------------------------- one stage, in a child

def build_stage(name: str, threads: int) -> dict:
    """Build one stage (its parents are on disk) and return its figures."""
    import torch

    from course_utils import stages

    torch.set_num_threads(threads)
    start = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the builders' reports; stdout is for the JSON
        stage = stages.ensure_stage(name)
    row = {"stage": name, "seconds": round(time.perf_counter() - start, 1),
           "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}
    if "n_params" in stage.meta:
        row["params"] = stage.meta["n_params"]
    if name == "clean":
        row["train_documents"] = stage.meta["metrics"]["train_documents"]
    if name == "tokenizer":
        row.update(vocab_size=stage.meta["tokenizer"]["vocab_size"], train_mb=stage.meta["metrics"]["train_mb"],
                   train_seconds=stage.meta["metrics"]["train_seconds"])
    return row


def run_chain(home: str, names, *, smoke: bool, threads: int) -> list[dict]:
    env = {**os.environ, "COURSE_PROFILE": "gpu", "COURSE_HOME": home, "TQDM_DISABLE": "1"}
    env.pop("COURSE_SMOKE", None)
    if smoke:
        env["COURSE_SMOKE"] = "1"
    rows = []
    for name in names:
        out = subprocess.run([sys.executable, __file__, "--stage", name, "--threads", str(threads)], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    return rows


# ----------------------------------------------------------------------------- GPU memory, on fake tensors

def step_peak(vocab_size: int, rows: int, tokens: int) -> dict:
    """Peak memory of one steady-state training step of the gpu model (AdamW moments already
    allocated) on ``rows`` x ``tokens``, from MemTracker on fake tensors: bytes by kind."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from course_utils.model import GPT, default_config
    from course_utils.train import TrainConfig, lm_loss, make_optimizer

    with FakeTensorMode():
        model = GPT(default_config(vocab_size))
        optimizer = make_optimizer(model, TrainConfig())

        def step(b, t):
            x = torch.randint(0, vocab_size, (b, t))
            lm_loss(model, (x, x)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        step(1, 8)  # creates the AdamW moments, as after the first step of a run
        tracker = MemTracker()
        tracker.track_external(model, optimizer)
        with tracker:
            step(rows, tokens)
        peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
    kinds = {str(k).split(".")[-1].lower(): v for k, v in peak.items() if k != "Total"}
    return {"total": peak["Total"], "weights_grads_adam": kinds["param"] + kinds["grad"] + kinds["opt"],
            "activations": kinds["act"] + kinds["temp"]}


def _largest_group(lengths: list[int], copies: int) -> tuple[int, int]:
    """(rows, prompt tokens) of the largest batch generate_batch decodes at once, at most: it
    runs up to MAX_BATCH_ROWS rows together (each prompt ``copies`` times), left-padded to the
    longest prompt among them."""
    from course_utils.generate import MAX_BATCH_ROWS

    return min(len(lengths) * copies, MAX_BATCH_ROWS), max(lengths)


def data_shapes(home: str) -> dict:
    """Token counts of the gpu world's data under the smoke run's 8,192-token tokenizer: the longest
    comparison, the longest RL prompt, and the largest batches the decoding steps run."""
    from course_utils import stages, world
    from course_utils.chat import render_for_completion
    from course_utils.generate import MAX_BATCH_ROWS
    from course_utils.grpo import grpo_config
    from course_utils.reward import SAMPLED_ANSWERS_PER_PROMPT, encode_prompt, encode_response, split_prompts
    from course_utils.rl import eval_settings

    with environment(COURSE_PROFILE="gpu", COURSE_HOME=home, COURSE_SMOKE="1"):
        tokenizer = stages.load_stage("tokenizer").tokenizer()
    with environment(COURSE_PROFILE="gpu", COURSE_SMOKE=None):
        w = world.build_world()
        samples = eval_settings()["samples"]
        pairs = world.preference_pairs(w)
        prompts = world.preference_prompts(w)
        questions = [q for q, _ in world.qa_probes(w) + world.idk_probes(w) + world.tool_probes(w)]
        problems = [t.question for d in world.DIFFICULTIES for lang in ("en", "zh")
                    for t in world.verifiable_tasks(w, d, language=lang)]
        grpo_rows = grpo_config().prompts_per_step * grpo_config().group_size
    longest_pair = max(len(encode_prompt(tokenizer, p.prompt)) + max(len(encode_response(tokenizer, p.chosen)),
                                                                       len(encode_response(tokenizer, p.rejected)))
                       for p in pairs)
    lengths = {p.prompt_id: len(encode_prompt(tokenizer, p.prompt)) for p in prompts}
    val = [lengths[p.prompt_id] for p in split_prompts(prompts)["val"]]
    chat = [len(render_for_completion([{"role": "user", "content": q}], tokenizer)) for q in questions]
    word_problems = [len(render_for_completion([{"role": "user", "content": q}], tokenizer)) for q in problems]
    return {"longest_comparison": longest_pair, "longest_rl_prompt": max(lengths.values()),
            "longest_word_problem": max(word_problems),
            "decode": {"chat_eval": _largest_group(chat, 1),
                       "grpo_groups": (min(grpo_rows, MAX_BATCH_ROWS), max(word_problems)),
                       "reward_sampling": _largest_group(list(lengths.values()), SAMPLED_ANSWERS_PER_PROMPT),
                       "rl_eval": _largest_group(val, samples)}}


def gpu_memory(home: str) -> list[dict]:
    from course_utils import config
    from course_utils.evals import chat_max_new_tokens
    from course_utils.generate import MAX_TOOL_CALLS
    from course_utils.grpo import grpo_config
    from course_utils.model import GPT, default_config
    from course_utils.pretrain import pretrain_config
    from course_utils.reward import reward_config
    from course_utils.rl import dpo_config, ppo_config
    from course_utils.sft import sft_config, tools_config
    from course_utils.tokenizer import course_vocab_size

    with environment(COURSE_PROFILE="gpu", COURSE_SMOKE=None):
        vocab = course_vocab_size()
        shape = default_config(vocab)
        params = GPT(shape).num_params()
        data = data_shapes(home)
        block, ppo, grpo = shape.block_size, ppo_config(), grpo_config()
        pair_tokens = min(block, data["longest_comparison"])
        # stage: (rows, tokens per row, frozen models held beside the trained one, decoding, new tokens)
        plan = {
            "base": (pretrain_config().batch_size, block, 0, None, 0),
            "sft": (sft_config().batch_size, block, 0, "chat_eval", chat_max_new_tokens()),
            "sft_tools": (tools_config().batch_size, block, 0, "chat_eval", chat_max_new_tokens()),
            "reward": (2 * reward_config().batch_size, pair_tokens, 1, "reward_sampling", ppo.max_new_tokens),
            "rlhf": (ppo.prompts_per_step * ppo.samples_per_prompt,
                     min(block, data["longest_rl_prompt"] + ppo.max_new_tokens), 3, "rl_eval", ppo.max_new_tokens),
            "dpo": (2 * dpo_config().batch_size, pair_tokens, 1, "rl_eval", ppo.max_new_tokens),
            # GRPO: every answer of a step in one pass (prompt, what the model wrote, calculator results);
            # no frozen model (no KL penalty by default). A calculator result is a few tokens.
            "reasoning": (grpo.prompts_per_step * grpo.group_size,
                          min(block, data["longest_word_problem"] + grpo.max_new_tokens + MAX_TOOL_CALLS * 8), 0,
                          "grpo_groups", grpo.max_new_tokens),
        }
        kv_per_token = shape.n_layer * 2 * shape.n_embd * 4  # keys and values, fp32
        out = []
        for name, (rows, tokens, frozen, decoding, new_tokens) in plan.items():
            peak = step_peak(vocab, rows, tokens)
            frozen_bytes = frozen * params * 4
            row = {"stage": name, "profile": config.profile(), "rows": rows, "tokens": tokens,
                   "trained_params": params, "frozen_models": frozen,
                   "weights_grads_adam_gib": round(peak["weights_grads_adam"] / GIB, 2),
                   "activations_gib": round(peak["activations"] / GIB, 2),
                   "frozen_weights_gib": round(frozen_bytes / GIB, 2),
                   "training_step_gib": round((peak["total"] + frozen_bytes) / GIB, 2)}
            if decoding:
                # The largest decoding batch: its KV cache, and the logits of reading its prompts.
                decode_rows, prompt = data["decode"][decoding]
                row.update(decode_rows=decode_rows, decode_prompt_tokens=prompt, decode_gib=round(
                    decode_rows * (kv_per_token * (prompt + new_tokens) + prompt * vocab * 4) / GIB, 2))
            out.append(row)
        return out


# ----------------------------------------------------------------------------- main

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", help=argparse.SUPPRESS)  # internal: build one stage in this process
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--full-data", action="store_true", help="also build the full gpu clean corpus and tokenizer")
    parser.add_argument("--keep", help="build in this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    if args.stage:
        print(json.dumps(build_stage(args.stage, args.threads)))
        return
    with contextlib.ExitStack() as stack:
        home = args.keep or stack.enter_context(tempfile.TemporaryDirectory(prefix="gpu-smoke-"))
        start = time.perf_counter()
        smoke = run_chain(home, CHAIN, smoke=True, threads=args.threads)
        report = {"profile": "gpu", "smoke_run": smoke, "smoke_run_seconds": round(time.perf_counter() - start, 1),
                  "threads": args.threads, "gpu_memory_gib": gpu_memory(home)}
        if args.full_data:
            report["full_data"] = run_chain(os.path.join(home, "full"), ("clean", "tokenizer"), smoke=False,
                                            threads=args.threads)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
