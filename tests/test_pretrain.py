"""Pretraining data, evaluation, and stage 'base' built end to end on a tiny corpus (ci profile)."""
import json
import math

import pytest
import torch

from course_utils import evals, pretrain, stages
from course_utils.model import GPT, GPTConfig, model_from_stage
from course_utils.tokenizer import Tokenizer

@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy machine two threads
    spinning for each small op can be many times slower than one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


COUNTRIES = [("France", "Paris"), ("Italy", "Rome"), ("Japan", "Tokyo"), ("Spain", "Madrid"),
             ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Chile", "Santiago")]


def tiny_corpus(n_docs):
    docs = []
    for k in range(n_docs):
        country, capital = COUNTRIES[k % len(COUNTRIES)]
        docs.append(f"The capital of {country} is {capital}. {capital} is a large city in {country}. "
                    f"Many people visit {capital} every year.")
    return docs


@pytest.fixture
def tiny_world(monkeypatch):
    """A tokenizer stage and a clean corpus small enough to pretrain on in seconds."""
    train_docs, val_docs = tiny_corpus(64), tiny_corpus(16)
    tok = Tokenizer.train(train_docs, 300)
    stages.save_stage("tokenizer", {stages.TOKENIZER_FILE: lambda p: tok.save(p)})
    monkeypatch.setattr(pretrain, "load_clean_corpus", lambda split="train": train_docs if split == "train" else val_docs)
    probes = [(f"The capital of {c} is", a) for c, a in COUNTRIES]
    monkeypatch.setattr(pretrain, "load_probes", lambda: probes)
    return tok


def test_tokenize_docs_ends_each_document_with_eot(tiny_world):
    tok = tiny_world
    ids = pretrain.tokenize_docs(tok, ["ab", "cd"])
    assert ids.tolist() == tok.encode("ab") + [tok.eot_id] + tok.encode("cd") + [tok.eot_id]


def test_windows_are_shifted_by_one_and_follow_the_generator():
    stream = torch.arange(1000, dtype=torch.int16)
    data = pretrain.TokenWindows(stream, stream[:100], block_size=8)
    x, y = data("train", 4, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:]) and torch.equal(y[:, -1], x[:, -1] + 1)
    x2, _ = data("train", 4, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)
    with pytest.raises(ValueError, match="too small"):
        pretrain.TokenWindows(stream, stream[:5], block_size=8)


def test_heldout_loss_bits_per_byte_formula(tiny_world):
    tok = tiny_world
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16))
    ids = pretrain.tokenize_docs(tok, tiny_corpus(4))
    held = pretrain.heldout_loss(model, tok, ids)
    assert held["tokens"] == (len(ids) - 1) // 16 * 16
    assert held["bits_per_byte"] == pytest.approx(held["loss"] * held["tokens"] / held["bytes"] / math.log(2))
    assert held["loss"] == pytest.approx(math.log(tok.vocab_size), rel=0.1)  # untrained: a uniform guess


def test_cloze_recall_counts_whole_word_answers():
    assert evals.starts_with_answer(" Paris. It is", "Paris")
    assert evals.starts_with_answer("  paris", "Paris")
    assert not evals.starts_with_answer(" Romania", "Rome") and not evals.starts_with_answer(" Roman", "Rom")
    assert evals.starts_with_answer("巴黎。", "巴黎") and evals.starts_with_answer("北京是", "北京")


def test_build_base_stage_end_to_end(tiny_world):
    run = pretrain.build_base_stage(progress=False, verbose=False)
    cfg = pretrain.pretrain_config()
    assert len(run.result.history) == cfg.max_steps
    assert run.result.history[-1]["train_loss"] < run.result.history[0]["train_loss"]
    stage = stages.load_stage("base")
    assert {"model.safetensors", "tokenizer.json", "metrics.json", "history.json"} <= set(stage.meta["files"])
    metrics = json.loads(stage.path("metrics.json").read_text())
    for key in ("val_loss", "bits_per_byte", "cloze_top1", "cloze_n"):
        assert key in metrics and key in stage.metrics
    assert metrics["cloze_n"] == len(COUNTRIES) and 0 <= metrics["cloze_top1"] <= 1
    assert stage.metrics["val_loss"] < math.log(tiny_world.vocab_size)
    # the stage stands alone: its own tokenizer and a model that loads with the same weights
    model = model_from_stage(stage, device="cpu")
    assert stage.tokenizer().vocab_size == tiny_world.vocab_size == model.config.vocab_size
    for (name, a), b in zip(run.model.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a.cpu(), b), name
    history = pretrain.load_history(stage)
    assert len(history["history"]) == cfg.max_steps and history["samples"]
