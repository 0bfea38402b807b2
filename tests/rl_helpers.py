"""Tiny models and stand-in stages for the reward-model and RL tests (no real chain needed)."""
import pytest
import torch

from course_utils import stages
from course_utils.model import GPT, GPTConfig, model_meta, save_model_files
from course_utils.tokenizer import Tokenizer


def tiny_gpt(vocab_size=32, block_size=32, seed=0, n_embd=32, n_layer=1, n_head=2):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                         n_embd=n_embd))


def byte_tokenizer():
    """A tokenizer with no merges: one token per byte, plus the course's special tokens."""
    return Tokenizer([])


def fake_sft_tools_stage(block_size=192, seed=0):
    """Save a tiny random chat model as stage 'sft_tools' (in the test's own COURSE_HOME)."""
    tok = byte_tokenizer()
    model = tiny_gpt(tok.vocab_size, block_size, seed)
    stages.save_stage("sft_tools", {**save_model_files(model), stages.TOKENIZER_FILE: lambda p: tok.save(p)},
                      meta={**model_meta(model), "metrics": {}})
    return model, tok


@pytest.fixture(autouse=True)
def one_thread():
    """Models this small run fastest on one thread (and far faster on a busy 2-core machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
