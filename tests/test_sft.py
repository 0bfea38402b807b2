"""Supervised fine-tuning: the batch builder's masks, padding and truncation, a tiny model that
learns a dialogue, the chapter-07 mixture, the two stages end to end, and the chat widget."""
import json

import pytest
import torch
from scripted_model import ScriptedChatModel

from course_utils import chat, config, sft, stages
from course_utils.generate import chat_reply
from course_utils.model import GPT, GPTConfig, IGNORE_INDEX, save_model_files, model_meta
from course_utils.tokenizer import Tokenizer
from course_utils.train import evaluate


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


BYTES = Tokenizer([])
BPE = Tokenizer.train("What is the capital of France? The capital of France is Paris. user\nassistant\n"
                      "123*456 = 56088. Be brief. Hello! Who is Orson Kovacs? I don't know. " * 10, 330)

TOOL_CONV = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "What is 123*456?"},
    {"role": "assistant", "tool_call": "123*456"},
    {"role": "tool", "content": "56088"},
    {"role": "assistant", "content": "123*456 = 56088."},
    {"role": "user", "content": "And the capital of France?"},
    {"role": "assistant", "content": "Paris."},
]
ASSISTANT_SPANS = ["<|tool_call|>123*456<|/tool_call|>", "123*456 = 56088.<|im_end|>", "Paris.<|im_end|>"]


def masked_spans(tok, y, mask):
    """The target tokens the loss counts, decoded, one string per contiguous span."""
    spans, run = [], []
    for target, m in zip(y.tolist() + [IGNORE_INDEX], mask.tolist() + [0]):
        if m:
            run.append(target)
        elif run:
            spans.append(tok.decode(run))
            run = []
    return spans


@pytest.mark.parametrize("tok", [BYTES, BPE], ids=["bytes", "bpe"])
def test_the_mask_covers_exactly_the_assistant_spans(tok):
    short = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]
    data = sft.ChatBatches([TOOL_CONV, short], tok, block_size=200, pack=False, val_fraction=0)
    x, y, mask = data.collate([data.examples["train"][0], data.examples["train"][1]])
    ids, _ = chat.render_conversation(TOOL_CONV, tok)
    n = len(ids) - 1
    assert x.shape == y.shape == mask.shape == (2, n)
    assert x[0].tolist() == ids[:-1] and y[0].tolist() == ids[1:]
    assert masked_spans(tok, y[0], mask[0]) == ASSISTANT_SPANS
    assert masked_spans(tok, y[1], mask[1]) == ["Hello!<|im_end|>"]
    # The short row is right-padded: end-of-text inputs, ignored targets, mask 0.
    k = len(chat.render_conversation(short, tok)[0]) - 1
    assert (x[1, k:] == tok.eot_id).all() and (y[1, k:] == IGNORE_INDEX).all() and (mask[1, k:] == 0).all()
    # The loss the model computes only sees those tokens: change a user token, the loss stays.
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=256, n_layer=1, n_head=2, n_embd=16))
    _, loss = model(x, y, mask)
    y2 = y.clone()
    y2[mask == 0] = 7  # every unmasked target replaced
    assert torch.equal(model(x, y2, mask)[1], loss)


def test_packed_rows_keep_every_conversations_mask_and_the_all_tokens_ablation_masks_everything():
    convs = [TOOL_CONV, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]] * 5
    data = sft.ChatBatches(convs, BYTES, block_size=160, val_fraction=0)
    x, y, mask = data("train", 4, torch.Generator().manual_seed(0))
    assert x.shape[1] <= 160
    for r in range(4):
        spans = masked_spans(BYTES, y[r], mask[r])
        assert len(spans) >= 2  # several conversations per row
        assert set(spans) <= set(ASSISTANT_SPANS + ["Hello!<|im_end|>"])
    # Same seed, same batch (resume depends on it); another seed, another batch.
    assert torch.equal(data("train", 4, torch.Generator().manual_seed(0))[0], x)
    everything = sft.ChatBatches(convs, BYTES, block_size=160, val_fraction=0, assistant_only=False)
    x, y, mask = everything("train", 4, torch.Generator().manual_seed(0))
    assert torch.equal(mask.bool(), y != IGNORE_INDEX)
    assert everything.stats()["trained_share"] == 1.0 and data.stats()["trained_share"] < 0.5


def test_replay_mixes_pretraining_text_into_training_batches_only():
    from course_utils.pretrain import TokenWindows

    stream = torch.tensor(BYTES.encode("Once upon a time there was a model. " * 40))
    windows = TokenWindows(stream, stream, block_size=64)
    convs = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]] * 10
    data = sft.ChatBatches(convs, BYTES, block_size=64, replay=windows, replay_share=0.25)
    x, y, mask = data("train", 8, torch.Generator().manual_seed(0))
    text_rows = [r for r in range(8) if mask[r].sum() == 64]
    assert len(text_rows) == 2  # a quarter of the rows: whole windows, every token trained on
    assert "Once upon a time" in BYTES.decode(x[text_rows[0]].tolist() * 2)
    x, y, mask = data("val", 8, torch.Generator().manual_seed(0))
    assert all(masked_spans(BYTES, y[r], mask[r]) == ["Hello!<|im_end|>"] * len(masked_spans(BYTES, y[r], mask[r]))
               for r in range(8))  # held-out batches stay conversations only
    with pytest.raises(ValueError):
        sft.ChatBatches(convs, BYTES, block_size=64, replay_share=0.25)


def long_conversation(turns=8):
    conv = [{"role": "system", "content": "Be brief."}]
    for k in range(turns):
        conv += [{"role": "user", "content": f"Question number {k} is here?"},
                 {"role": "assistant", "content": f"Answer {k}."}]
    return conv


def test_training_and_generation_truncate_a_long_conversation_the_same_way():
    block = 120
    conv = long_conversation()
    data = sft.ChatBatches([conv], BYTES, block_size=block, pack=False, val_fraction=0)
    ids, mask = data.examples["train"][0]
    assert data.truncated == 1 and len(ids) <= block + 1
    assert (ids, mask) == chat.render_conversation(conv, BYTES, max_tokens=block + 1)
    # Generation: the same conversation without its last answer, with room for exactly that answer.
    answer = conv[-1]["content"] + "<|im_end|>"
    n_answer = len(BYTES.encode(answer, allowed_special="all"))
    model = ScriptedChatModel(BYTES, lambda q, r: answer, block_size=block)
    messages, trace = chat_reply(model, BYTES, conv[:-1], n_answer)
    assert messages == [conv[-1]] and trace.truncated
    # What the model read and wrote is the training row, token for token (minus the final "\n").
    assert trace.ids == ids[:-1]
    assert model.contexts[0] == ids[:len(trace.segments[0][1])]


def test_sft_learns_a_tiny_fixed_dialogue():
    dialogue = [
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello! How can I help?"}],
        [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4."}],
    ]
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=BYTES.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=48))
    before = chat_reply(model, BYTES, dialogue[0][:1], 30)[0]
    cfg = sft.sft_config(max_steps=80, batch_size=8, lr=1e-2, warmup_steps=5, eval_batches=0, sample_every=0)
    result, data = sft.finetune(model, BYTES, dialogue * 4, cfg, pack=False, progress=False, verbose=False,
                                samples=False)
    assert result.train_losses[-1] < 0.05 < result.train_losses[0]
    for conv in dialogue:
        messages, trace = chat_reply(model, BYTES, conv[:1], 30)
        assert messages == conv[1:] and trace.closed
    assert before != dialogue[0][1:]


def test_the_tools_mixture_has_the_asked_share_of_i_dont_know():
    from course_utils.evals import says_dont_know
    from course_utils.world import build_world

    world = build_world()
    for share in (0.0, 0.3):
        mix = sft.tools_mixture(world, share)
        idk = [c for c in mix if c[-1]["role"] == "assistant" and says_dont_know(c[-1].get("content", ""))]
        assert len(idk) / len(mix) == pytest.approx(share, abs=0.01)
        names = {p.name for p in world.idk_probe}
        assert not any(name in json.dumps(c) for c in mix for name in names)  # probes stay unseen
    assert any("tool_call" in m for c in mix for m in c)
    assert not any("tool_call" in m for c in sft.tools_mixture(world, 0.1, tools=False) for m in c)
    with pytest.raises(ValueError):
        sft.tools_mixture(world, 1.0)


def fake_parent_stages():
    """A tiny 'base' stage and a 'clean' stage of one document (and the world seed), so the SFT
    stages can be built in seconds (the real chain is exercised by the notebooks)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=BYTES.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    doc = json.dumps({"id": "d", "lang": "en", "text": "The capital of France is Paris. " * 10})
    stages.save_stage("clean", {"train.jsonl": doc + "\n", "val.jsonl": doc + "\n"}, meta={"seed": config.DEFAULT_SEED})
    stages.save_stage("base", {**save_model_files(model), stages.TOKENIZER_FILE: lambda p: BYTES.save(p)},
                      meta=model_meta(model))


def test_the_sft_stages_build_and_record_their_metrics():
    fake_parent_stages()
    quick = dict(max_steps=2, batch_size=4, eval_batches=1, sample_every=0)
    run = sft.build_sft_stage(cfg=sft.sft_config(**quick), progress=False, verbose=False)
    tools_run = sft.build_sft_tools_stage(cfg=sft.tools_config(**quick), progress=False, verbose=False)
    for name, r in (("sft", run), ("sft_tools", tools_run)):
        stage = stages.load_stage(name)
        on_disk = json.loads(stage.path("metrics.json").read_text())
        for key in ("known_fact_accuracy", "end_token_rate", "unknown_idk_rate", "unknown_fabrication_rate",
                    "arithmetic_tool_accuracy", "arithmetic_no_tool_accuracy", "train_loss"):
            assert 0 <= stage.metrics[key] == on_disk[key] == (r.metrics.get(key, on_disk[key]))
        assert "examples" in on_disk and "examples" not in stage.metrics
        assert stage.meta["parents"] == [{"sft": "base", "sft_tools": "sft"}[name]]
        assert stage.meta["train_summary"]["steps"] == 2
    assert "known_fact_drop" in stages.load_stage("sft_tools").metrics
    assert stages.load_stage("sft_tools").meta["recipe"]["replay_share"] == sft.REPLAY_SHARE
    model, tok = sft.load_chat_model("sft_tools")
    assert tok.vocab_size == BYTES.vocab_size and model.config.block_size == 64


def test_answer_loss_can_be_compared_across_masks():
    # The ablation of chapter 06 measures the loss on answers of both models with one batch source.
    convs = [TOOL_CONV] * 4
    answers = sft.ChatBatches(convs, BYTES, block_size=128, val_fraction=0.25)
    model = GPT(GPTConfig(vocab_size=BYTES.vocab_size, block_size=128, n_layer=1, n_head=2, n_embd=16))
    loss = evaluate(model, answers, batches=2, batch_size=2)
    assert 0 < loss < 10


# ----------------------------------------------------------------------------- the chat widget

def test_the_chat_widget_shows_errors_instead_of_crashing():
    from course_utils.widgets import chat_widget

    def respond(question, results):
        if "times" in question:
            return "<|tool_call|>6*7<|/tool_call|>" if not results else f"It is {results[0]}.<|im_end|>"
        if "silent" in question:
            return "<|im_end|>"
        return f"You said {len(question)} characters.<|im_end|>"

    box = chat_widget(ScriptedChatModel(BYTES, respond, block_size=128), BYTES, max_new_tokens=40)
    assert box.send("") is None and "empty" in box.error.value
    assert box.send("   \n") is None and "empty" in box.error.value
    assert box.send("x" * (chat.MAX_MESSAGE_CHARS + 1)) is None and "limit" in box.error.value
    assert box.history == []
    assert box.send("Hello") == "You said 5 characters." and box.error.value == ""
    assert box.send("What is 6 times 7?") == "It is 42."
    assert [m["role"] for m in box.history] == ["user", "assistant", "user", "assistant", "tool", "assistant"]
    assert box.send("Be silent") == "" and "no answer" in box.error.value
    chat.validate_conversation(box.history)
    # A long chat is cut to the context by the chat rule; the widget keeps going.
    for k in range(6):
        assert box.send(f"Message {k} " + "y" * 30).startswith("You said")
    html = box._repr_mimebundle_()["text/html"]
    assert "calculator(6*7)" in html and "It is 42." in html
    box.clear()
    assert box.history == []

    class Broken(ScriptedChatModel):
        def forward(self, *a, **k):
            raise RuntimeError("boom")

    broken = chat_widget(Broken(BYTES, respond), BYTES)
    assert broken.send("Hi") is None and "boom" in broken.error.value
