"""Supervised fine-tuning: the base model studies worked examples of conversations.

The seed articles' student analogy: pretraining read the textbook; now the student works
through solved exercises. Each example is a conversation rendered in the chat template
(:mod:`course_utils.chat`), and the model is trained, with the same next-token loss and the
same loop as in pretraining (:func:`course_utils.train.train`), to write *the assistant's
part*: the loss mask is 1 on the assistant's tokens only.

- :class:`ChatBatches`: conversations -> ``(x, y, loss_mask)`` batches for the training loop.
- :func:`finetune`: a model, conversations, a :class:`~course_utils.train.TrainConfig` -> trained.
- :func:`sft_config` / :func:`tools_config`: the sizes of each profile.
- :func:`tools_mixture`: chat replay + "I don't know" answers + calculator calls (chapter 07),
  trained with some pretraining text mixed in (:func:`replay_windows`) against forgetting.
- :func:`build_sft_stage` (stage ``sft``, from ``base``) and :func:`build_sft_tools_stage`
  (stage ``sft_tools``, from ``sft``).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Sequence

import torch

from . import config, stages
from .model import IGNORE_INDEX
from .train import TrainConfig, TrainResult, train

# Asked at intervals while training, to watch the replies take shape.
SAMPLE_QUESTIONS = ("What is the capital of France?", "Who is Orson Kovacs?", "What is 123 times 456?")


# ----------------------------------------------------------------------------- sizes

def sft_config(**overrides) -> TrainConfig:
    """Training sizes of stage ``sft`` per profile (with :data:`REPLAY_SHARE` of pretraining text).

    ==== ===== ===== ====== ====== ===========================================
    prof steps batch lr     warmup cost
    ==== ===== ===== ====== ====== ===========================================
    ci   20    8     1e-3   3      seconds (every code path, no lesson)
    cpu  700   16    1e-3   20     ~2.9M tokens, 5-6 min on 2 cores
    gpu  1000  32    3e-4   50
    ==== ===== ===== ====== ====== ===========================================

    What we measured on the cpu model (known-fact accuracy on the probe facts): the chat format
    is learnt in about 50 steps, after which conversations alone start to erase the facts
    (59 % at step 50, 39 % at step 300). With pretraining text in every batch the facts hold and
    improve with more steps (a quarter of the batch: 74-80 % at 300 steps, 80-84 % at 400;
    three eighths: 80-81 % at 500, with more turns closed). Runs differ by a few points.
    With questions in many wordings and answers in mixed styles (world.questions, world.styles),
    2,500 conversations seen ~9 times each taught the wordings, not the questions: held-out
    wordings answered 0.74x as often as training ones. 7,500 conversations, ~3 passes, gave
    0.98x at 500 steps but known facts fell to 72 %; 700 steps at 5e-4: 76 %, 0.95x; 700 steps at
    1e-3: 81 %, 0.86x, 99.0 % of turns closed.
    """
    return _config(overrides, max_steps=config.pick(ci=20, cpu=700, gpu=1000, smoke=2),
                   batch_size=config.pick(ci=8, cpu=16, gpu=32, smoke=2), lr=config.pick(ci=1e-3, cpu=1e-3, gpu=3e-4),
                   warmup_steps=config.pick(ci=3, cpu=20, gpu=50, smoke=1),
                   eval_every=config.pick(ci=10, cpu=100, gpu=200, smoke=0),
                   eval_batches=config.pick(ci=2, cpu=4, gpu=8, smoke=1),
                   sample_every=config.pick(ci=0, cpu=250, gpu=500, smoke=0))


def tools_config(**overrides) -> TrainConfig:
    """Training sizes of stage ``sft_tools`` (from ``sft``) per profile.

    ==== ===== ===== ====== ====== ===========================================
    prof steps batch lr     warmup cost
    ==== ===== ===== ====== ====== ===========================================
    ci   20    8     1e-3   3      seconds (every code path, no lesson)
    cpu  600   16    1e-3   20     ~2.5M tokens, ~6 min on 2 cores
    gpu  1000  32    5e-4   50
    ==== ===== ===== ====== ====== ===========================================

    Copying a three-digit number from the question into the calculator call is a new skill for
    the cpu model, and it appears suddenly: on 60 held-out problems, 0 % right at step 100,
    70 % at 200, 95 % at 300, 97 % at 400 (once the chats that answer such problems in one go
    were taken out of the replay; with them, 88 % at 400). Because the skill appears so suddenly,
    400 steps sat on its edge: a slightly larger mix of other conversations left it at 25 %; 600
    steps give it room (96.5 %). The pretraining text mixed into every
    batch (:data:`REPLAY_SHARE`) is what allows the higher learning rate without forgetting the
    facts (without it, known-fact accuracy fell from 82 % to 38 % in 300 steps at lr 6e-4).
    """
    return _config(overrides, max_steps=config.pick(ci=20, cpu=600, gpu=1000, smoke=2),
                   batch_size=config.pick(ci=8, cpu=16, gpu=32, smoke=2), lr=config.pick(ci=1e-3, cpu=1e-3, gpu=5e-4),
                   warmup_steps=config.pick(ci=3, cpu=20, gpu=50, smoke=1),
                   eval_every=config.pick(ci=10, cpu=100, gpu=250, smoke=0),
                   eval_batches=config.pick(ci=2, cpu=4, gpu=8, smoke=1),
                   sample_every=config.pick(ci=0, cpu=200, gpu=500, smoke=0))


def _config(overrides: dict, **sizes) -> TrainConfig:
    cfg = TrainConfig(weight_decay=0.0, grad_clip=1.0, seed=config.DEFAULT_SEED, **sizes)
    for key, value in overrides.items():
        if not hasattr(cfg, key):
            raise TypeError(f"TrainConfig has no field {key!r}")
        setattr(cfg, key, value)
    return cfg


def load_world():
    """The world the corpus (and so the base model's knowledge) was generated from."""
    from . import world

    seed = stages.ensure_stage("clean").meta.get("seed", config.DEFAULT_SEED)
    return world.build_world(seed)


# ----------------------------------------------------------------------------- batches

class ChatBatches:
    """Conversations as training batches: ``get_batch(split, batch_size, generator) -> (x, y, loss_mask)``.

    Each conversation is rendered once with :func:`course_utils.chat.render_conversation`,
    cut to ``block_size + 1`` tokens by the chat template's truncation rule (the rule
    generation uses too), giving ids and a mask aligned with them. A row of the batch is
    ``x = ids[:-1]``, ``y = ids[1:]``, ``loss_mask = mask[1:]``: the loss at position ``t``
    counts when token ``t + 1`` is the assistant's.

    - ``assistant_only=False`` trains on every token (user, system and tool text included):
      the ablation of chapter 06.
    - ``pack=True`` fills each row with several conversations, one after another (each starts
      with ``<|endoftext|>``, as documents do in pretraining), so little compute goes to
      padding; ``pack=False`` puts one conversation per row.
    - Rows are right-padded to the longest row of the batch: ``x`` with ``<|endoftext|>``,
      ``y`` with -100 (ignored by the loss), ``loss_mask`` with 0. Right padding only: the model
      has no padding mask, and a causal model never looks right, so padding after the text
      cannot change what it computes for the text.

    - ``replay`` (a :class:`course_utils.pretrain.TokenWindows` over the pretraining corpus) and
      ``replay_share``: that share of each training batch's rows are windows of pretraining
      text, trained on every token. Fine-tuning on conversations alone slowly overwrites what
      pretraining stored (the facts); a little of the old text keeps it (chapter 07).
      The ``"val"`` split stays conversations only.

    The last ``val_fraction`` of the conversations are held out as split ``"val"``.
    Everything is drawn at random from ``generator`` only, so a resumed run continues exactly.
    """

    def __init__(self, conversations: Sequence[list], tokenizer, block_size: int, *, assistant_only: bool = True,
                 pack: bool = True, val_fraction: float = 0.05, replay=None, replay_share: float = 0.0):
        from .chat import render_conversation

        if not conversations:
            raise ValueError("ChatBatches needs at least one conversation")
        if not 0.0 <= replay_share < 1.0 or (replay_share and replay is None):
            raise ValueError(f"replay_share must be in [0, 1) and needs replay=TokenWindows(...), got {replay_share}")
        self.block_size, self.assistant_only, self.pack = block_size, assistant_only, pack
        self.replay, self.replay_share = replay, replay_share
        self.pad_id = tokenizer.eot_id
        examples, self.truncated = [], 0
        for conv in conversations:
            full = render_conversation(conv, tokenizer)
            ids, mask = render_conversation(conv, tokenizer, max_tokens=block_size + 1) \
                if len(full[0]) > block_size + 1 else full
            self.truncated += len(ids) < len(full[0])
            if not assistant_only:
                mask = [1] * len(ids)
            examples.append((ids, mask))
        n_val = min(len(examples) - 1, round(len(examples) * val_fraction)) if len(examples) > 1 else 0
        self.examples = {"train": examples[:len(examples) - n_val], "val": examples[len(examples) - n_val:] or examples}

    def __len__(self) -> int:
        return len(self.examples["train"])

    def stats(self) -> dict:
        """Counts about the training split: conversations, tokens, share of tokens trained on."""
        ex = self.examples["train"]
        tokens = sum(len(i) for i, _ in ex)
        trained = sum(sum(m) for _, m in ex)
        return {"conversations": len(ex), "val_conversations": len(self.examples["val"]), "tokens": tokens,
                "trained_tokens": trained, "trained_share": round(trained / max(1, tokens), 4),
                "mean_tokens": round(tokens / max(1, len(ex)), 1), "max_tokens": max(len(i) for i, _ in ex),
                "truncated": self.truncated}

    def rows(self, split: str, batch_size: int, generator: torch.Generator) -> list[tuple[list[int], list[int]]]:
        """The ``(ids, mask)`` of each row of the next batch, before shifting and padding."""
        examples = self.examples[split]
        limit = self.block_size + 1
        draw = lambda: examples[int(torch.randint(len(examples), (1,), generator=generator))]  # noqa: E731
        rows, carry = [], None
        for _ in range(batch_size):
            ids, mask = carry or draw()
            ids, mask, carry = list(ids), list(mask), None
            while self.pack and len(ids) < limit:
                nxt_ids, nxt_mask = draw()
                if len(ids) + len(nxt_ids) > limit:
                    carry = (nxt_ids, nxt_mask)  # starts the next row, so long conversations are not skipped
                    break
                ids += nxt_ids
                mask += nxt_mask
            rows.append((ids, mask))
        return rows

    def collate(self, rows: Sequence[tuple[list[int], list[int]]]):
        """Rows of ``(ids, mask)`` -> ``(x, y, loss_mask)`` tensors, right-padded."""
        width = max(len(ids) for ids, _ in rows) - 1
        x = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        y = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        m = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, mask) in enumerate(rows):
            n = len(ids) - 1
            x[r, :n] = torch.tensor(ids[:-1])
            y[r, :n] = torch.tensor(ids[1:])
            m[r, :n] = torch.tensor(mask[1:])
        return x, y, m

    def __call__(self, split: str, batch_size: int, generator: torch.Generator):
        n_text = round(batch_size * self.replay_share) if split == "train" else 0
        rows = self.rows(split, batch_size - n_text, generator)
        if n_text:
            x, y = self.replay("train", n_text, generator)
            for r in range(n_text):
                ids = x[r].tolist() + [int(y[r, -1])]
                rows.append((ids, [1] * len(ids)))
        return self.collate(rows)


# ----------------------------------------------------------------------------- training

def chat_sampler(tokenizer, questions: Sequence[str] = SAMPLE_QUESTIONS, max_new_tokens: int | None = None):
    """An ``on_sample`` callback for :func:`course_utils.train.train`: the model's greedy replies."""
    from .evals import ask, reply_text

    def on_sample(model, step):
        runs = ask(model, tokenizer, questions, max_new_tokens=max_new_tokens, tools=True)
        return "\n".join(f"{q!r} -> {reply_text(m)!r}" for q, (m, _) in zip(questions, runs))

    return on_sample


def finetune(model, tokenizer, conversations: Sequence[list], cfg: TrainConfig, *, assistant_only: bool = True,
             pack: bool = True, replay=None, replay_share: float = 0.0, live_plot: bool = False,
             progress: bool = True, verbose: bool = True, samples: bool = True,
             desc: str = "fine-tuning") -> tuple[TrainResult, ChatBatches]:
    """Fine-tune ``model`` in place on ``conversations`` with :func:`course_utils.train.train`;
    returns the training result and the batch source (its ``"val"`` split held out).
    ``replay``/``replay_share`` mix in pretraining text (see :class:`ChatBatches`)."""
    data = ChatBatches(conversations, tokenizer, model.config.block_size, assistant_only=assistant_only, pack=pack,
                       replay=replay, replay_share=replay_share)
    if verbose:
        s = data.stats()
        text = f", {replay_share:.0%} of each batch pretraining text" if replay_share else ""
        print(f"{desc}: {s['conversations']} conversations, {s['tokens']:,} tokens "
              f"({s['trained_share']:.0%} trained on){text}, "
              f"{cfg.max_steps} steps x {cfg.batch_size * cfg.grad_accum} rows")
    result = train(model, data, cfg, on_sample=chat_sampler(tokenizer) if samples else None, live_plot=live_plot,
                   progress=progress, desc=desc, verbose=verbose)
    return result, data


# ----------------------------------------------------------------------------- chapter 07 data

def split_honesty(world) -> tuple[list, list]:
    """:func:`course_utils.world.honesty_examples` split into ("I don't know" answers, correct answers)."""
    from .evals import says_dont_know
    from .world import honesty_examples

    idk, known = [], []
    for conv in honesty_examples(world):
        (idk if says_dont_know(conv[-1]["content"]) else known).append(conv)
    return idk, known


# The recipe of stage sft_tools (chapter 07 varies the first); REPLAY_SHARE is used by both stages.
IDK_SHARE = 0.12     # share of "I don't know" conversations in the fine-tuning mix
REPLAY_SHARE = 0.375  # share of each training batch that is pretraining text (against forgetting)


def tools_mixture(world, idk_share: float = IDK_SHARE, *, tools: bool = True, seed: int = 0) -> list[list]:
    """The fine-tuning data of stage ``sft_tools``, shuffled:

    - a replay of the chat data (so the model does not forget how to chat), without its
      three-digit problems answered in one go when ``tools`` (they now go to the calculator),
    - questions about known people answered correctly (:func:`split_honesty`),
    - calculator tool calls (:func:`course_utils.world.tool_examples`), each once (distinct
      problems teach copying numbers better than repeats); ``tools=False`` leaves them out,
    - and "I don't know" answers about the ``idk_train`` people, making up ``idk_share`` of the
      whole mix (repeated when the pool is smaller than that).

    The ``idk_probe`` people, on whom chapter 07 measures, are in none of it.
    """
    from .world import chat_examples, tool_examples
    from .world.datasets import answers_three_digit_problem

    if not 0.0 <= idk_share < 1.0:
        raise ValueError(f"idk_share must be in [0, 1), got {idk_share}")
    idk, known = split_honesty(world)
    chats = list(chat_examples(world))
    if tools:  # three-digit problems now go to the calculator: drop the chats that answer them in one go
        chats = [c for c in chats if not answers_three_digit_problem(c)]
    rest = chats + known + (list(tool_examples(world)) if tools else [])
    n_idk = round(len(rest) * idk_share / (1.0 - idk_share))
    mix = rest + [idk[i % len(idk)] for i in range(n_idk)]
    random.Random(seed).shuffle(mix)
    return mix


def replay_windows(tokenizer, block_size: int):
    """Random windows of the pretraining corpus, to mix into fine-tuning batches (``replay=``)."""
    from .pretrain import prepare_data

    return prepare_data(tokenizer, block_size)[0]


# ----------------------------------------------------------------------------- the stages

@dataclass
class SFTRun:
    """What :func:`build_sft_stage` and :func:`build_sft_tools_stage` hand back to the notebook."""

    model: torch.nn.Module
    tokenizer: object
    result: TrainResult
    metrics: dict
    data: ChatBatches
    stage: stages.Stage


def _save(name: str, model, tokenizer_bytes: bytes, cfg: TrainConfig, result: TrainResult, metrics: dict,
          data: ChatBatches, extra: dict) -> stages.Stage:
    from .model import model_meta, save_model_files

    summary = {k: result.final[k] for k in ("steps", "tokens", "seconds", "tokens_per_s", "stopped")}
    flat = {k: v for k, v in metrics.items() if k != "examples"}
    flat.update({"train_loss": round(result.final["train_loss"], 4),
                 "val_loss": None if result.final["val_loss"] is None else round(result.final["val_loss"], 4),
                 "train_seconds": result.final["seconds"], "profile": config.profile()})
    files = {
        **save_model_files(model),
        stages.TOKENIZER_FILE: tokenizer_bytes,
        "metrics.json": json.dumps({**flat, "examples": metrics.get("examples", {})}, indent=2, ensure_ascii=False),
        "history.json": json.dumps({"history": result.history, "samples": result.samples}, ensure_ascii=False),
    }
    meta = {**model_meta(model), "metrics": flat, "train_config": cfg.to_dict(), "train_summary": summary,
            "data": data.stats(), **extra}
    stages.save_stage(name, files, meta=meta)
    return stages.load_stage(name)


def _report(metrics: dict, name: str, seconds: float) -> None:
    print(f"saved stage {name!r} after {seconds:.0f} s of training: "
          f"known facts {metrics['known_fact_accuracy']:.0%}, turns closed {metrics['end_token_rate']:.0%}, "
          f"'I don't know' on unknown people {metrics['unknown_idk_rate']:.0%}, "
          f"3-digit arithmetic {metrics['arithmetic_tool_accuracy']:.0%} with the calculator, "
          f"{metrics['arithmetic_no_tool_accuracy']:.0%} without")


def build_sft_stage(*, cfg: TrainConfig | None = None, live_plot: bool = False, progress: bool = True,
                    verbose: bool = True) -> SFTRun:
    """Fine-tune stage ``base`` on the world's chat data (assistant tokens only, with
    :data:`REPLAY_SHARE` of each batch pretraining text) and save stage ``sft``.

    The stage holds the weights, a copy of the tokenizer, ``metrics.json`` (the chat evaluations
    of :func:`course_utils.evals.chat_report`, with examples) and ``history.json``.
    """
    from . import evals
    from .model import model_from_stage
    from .world import chat_examples

    cfg = cfg or sft_config()
    base = stages.ensure_stage("base")
    model, tokenizer = model_from_stage(base), base.tokenizer()
    world = load_world()
    torch.manual_seed(cfg.seed)
    result, data = finetune(model, tokenizer, chat_examples(world), cfg,
                            replay=replay_windows(tokenizer, model.config.block_size), replay_share=REPLAY_SHARE,
                            live_plot=live_plot, progress=progress, verbose=verbose, desc="SFT")
    metrics = evals.chat_report(model, tokenizer, world)
    stage = _save("sft", model, base.path(stages.TOKENIZER_FILE).read_bytes(), cfg, result, metrics, data,
                  {"recipe": {"replay_share": REPLAY_SHARE}})
    if verbose:
        _report(metrics, "sft", result.final["seconds"])
    return SFTRun(model, tokenizer, result, metrics, data, stage)


def build_sft_tools_stage(*, idk_share: float | None = None, cfg: TrainConfig | None = None,
                          live_plot: bool = False, progress: bool = True, verbose: bool = True) -> SFTRun:
    """Fine-tune stage ``sft`` on :func:`tools_mixture` (``idk_share`` defaults to
    :data:`IDK_SHARE`), with :data:`REPLAY_SHARE` of pretraining text, and save stage ``sft_tools``.

    Besides the chat evaluations its metrics record ``known_fact_drop``: the known-fact
    accuracy of ``sft`` minus this stage's (in points of percentage; the cost of honesty).
    """
    from . import evals
    from .model import model_from_stage

    cfg = cfg or tools_config()
    idk_share = IDK_SHARE if idk_share is None else idk_share
    parent = stages.ensure_stage("sft")
    model, tokenizer = model_from_stage(parent), parent.tokenizer()
    world = load_world()
    torch.manual_seed(cfg.seed)
    result, data = finetune(model, tokenizer, tools_mixture(world, idk_share), cfg,
                            replay=replay_windows(tokenizer, model.config.block_size), replay_share=REPLAY_SHARE,
                            live_plot=live_plot, progress=progress, verbose=verbose, desc="SFT + honesty + tools")
    metrics = evals.chat_report(model, tokenizer, world)
    before = parent.metrics.get("known_fact_accuracy")
    if before is not None:
        metrics["known_fact_drop"] = round(100 * (before - metrics["known_fact_accuracy"]), 2)
    stage = _save("sft_tools", model, parent.path(stages.TOKENIZER_FILE).read_bytes(), cfg, result, metrics, data,
                  {"recipe": {"idk_share": idk_share, "replay_share": REPLAY_SHARE}})
    if verbose:
        _report(metrics, "sft_tools", result.final["seconds"])
    return SFTRun(model, tokenizer, result, metrics, data, stage)


def load_chat_model(name: str = "sft", device=None):
    """A chat stage's model and tokenizer, rebuilt headless first if the stage is missing."""
    from .model import model_from_stage

    stage = stages.ensure_stage(name)
    return model_from_stage(stage, device), stage.tokenizer()
