"""Device-agnostic code: nothing that meets the model's tensors is made on a fixed device.

This machine has no GPU, so two checks stand in for one:

- a grep-level one: in the code that meets model tensors (sampling and the tool loop, the
  model's masks and RoPE tables, the reward model with its frozen prior, PPO's rollout and
  losses), every tensor factory (``torch.zeros``, ``torch.arange``, ...) names a ``device=``,
  or is listed in HOST_SIDE with the reason it may be made on the CPU;
- runs on the ``meta`` device: a model moved there computes shapes without data, and any CPU
  tensor that meets one of its tensors raises ("Tensor on device cpu is not on the expected
  device meta"), as it would on a GPU.
"""
from __future__ import annotations

import ast
import importlib
import inspect

import pytest
import torch

from course_utils.generate import Decoder, filter_logits, sample_next
from course_utils.model import GPT, GPTConfig
from course_utils.reward import RewardModel, pack, reward_loss
from course_utils.rl import (PolicyWithValue, action_mask, dpo_loss_fn, gae, kl_estimate, masked_whiten,
                             ppo_policy_loss, ppo_value_loss, response_logprobs, token_logprobs)

META = torch.device("meta")
FACTORIES = {"tensor", "as_tensor", "zeros", "ones", "full", "empty", "arange", "linspace", "eye", "rand", "randn",
             "randint", "randperm", "Generator"}

# Module -> the functions and classes (by qualified name) where a tensor meets the model's;
# None: the whole module.
SCOPES = {
    "course_utils.generate": None,
    "course_utils.model": None,
    "course_utils.reward": ("transformer_hidden", "RewardModel", "reward_loss", "stored_likelihood"),
    "course_utils.rl": ("token_logprobs", "action_mask", "policy_logits", "response_logprobs", "sequence_logprob",
                        "masked_mean", "masked_whiten", "kl_estimate", "PolicyWithValue", "gae", "ppo_policy_loss",
                        "ppo_value_loss", "rollout", "ppo_update", "reward_model_scorer", "dpo_loss", "dpo_loss_fn"),
}
# (module, function, factory) -> why it may be made without a device.
HOST_SIDE = {
    ("course_utils.model", "RMSNorm.__init__", "ones"): "a Parameter: model.to(device) moves it",
    ("course_utils.model", "RotaryEmbedding.__init__", "arange"): "the RoPE tables are buffers: model.to(device) "
                                                                  "moves them (checked on meta below)",
    ("course_utils.reward", "RewardModel.__init__", "tensor"): "a Parameter: model.to(device) moves it",
    ("course_utils.rl", "rollout", "tensor"): "'ended', bookkeeping made from token lists; moved to the device "
                                              "where it meets the scores",
    ("course_utils.rl", "ppo_update", "randperm"): "the minibatch order, drawn from the CPU generator that orders "
                                                   "all data; moved to the device before indexing",
}


def factories_without_device(source: str, module: str, scope=None) -> set[tuple[str, str, str]]:
    """(module, qualified function name, factory) of every ``torch.<factory>(...)`` call without
    a ``device=`` keyword, in the functions and classes of ``scope`` (None: everywhere)."""
    found = set()

    def visit(node, names):
        for child in ast.iter_child_nodes(node):
            inner = names + [child.name] if isinstance(child, (ast.FunctionDef, ast.ClassDef)) else names
            if (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                    and isinstance(child.func.value, ast.Name) and child.func.value.id == "torch"
                    and child.func.attr in FACTORIES and not any(k.arg == "device" for k in child.keywords)
                    and (scope is None or (names and names[0] in scope))):
                found.add((module, ".".join(names), child.func.attr))
            visit(child, inner)

    visit(ast.parse(source), [])
    return found


def test_the_grep_check_finds_a_tensor_made_without_a_device():
    source = ("import torch\nclass Model:\n    def forward(self, x):\n        mask = torch.ones(3)\n"
              "        ok = torch.zeros(3, device=x.device)\n        return x\ndef other():\n    return torch.arange(4)\n")
    assert factories_without_device(source, "m") == {("m", "Model.forward", "ones"), ("m", "other", "arange")}
    assert factories_without_device(source, "m", scope=("other",)) == {("m", "other", "arange")}


def test_tensors_that_meet_the_model_are_made_on_its_device():
    found = set()
    for module, scope in SCOPES.items():
        found |= factories_without_device(inspect.getsource(importlib.import_module(module)), module, scope)
    unexplained = sorted(found - set(HOST_SIDE))
    assert not unexplained, ("A tensor made without device= where it meets model tensors breaks on a GPU. "
                             f"Pass device=..., or add it to HOST_SIDE with the reason: {unexplained}")
    assert not set(HOST_SIDE) - found, f"HOST_SIDE lists calls that are gone: {sorted(set(HOST_SIDE) - found)}"


# ----------------------------------------------------------------------------- meta device

def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=300, block_size=32, n_layer=2, n_head=2, n_embd=32))


def test_meta_catches_a_cpu_tensor_meeting_a_model_tensor():
    with pytest.raises(RuntimeError, match="device"):
        torch.ones(2, device=META) + torch.ones(2)


def test_the_model_trains_and_decodes_on_another_device():
    model = tiny_gpt().to(META)
    assert model.blocks[0].attn.rope.cos.device == META  # RoPE tables move with the model
    x = torch.randint(0, 300, (2, 16)).to(META)
    logits, loss = model(x, targets=x, loss_mask=torch.ones(2, 16, device=META))
    loss.backward()
    assert logits.device == loss.device == model.tok_emb.weight.grad.device == META
    _, _, attentions = model(x, return_attention=True)  # the explicit causal mask
    assert attentions[0].shape == (2, 2, 16, 16) and attentions[0].device == META
    for use_cache in (True, False):
        decoder = Decoder(model, use_cache=use_cache)
        decoder.feed([[1, 2, 3], [4, 5, 6]])
        decoder.feed([[7, 8], [9, 10]])  # several tokens after a cache: the offset causal mask
        logits = decoder.feed([[11], [12]])
        assert logits.shape == (2, 300) and logits.device == META
    for kw in ({"temperature": 0.0}, {"temperature": 1.0, "top_k": 5}, {"temperature": 0.8, "top_p": 0.9}):
        assert sample_next(logits, **kw).device == META
    assert filter_logits(logits, top_k=3, top_p=0.5).device == META


def _preference_batch():
    ids, mask, lengths = pack([[1, 2, 3], [4, 5]] * 2, [[6, 7], [8, 9, 10], [11], [12, 13]], pad_id=0, block_size=32)
    return {"ids": ids.to(META), "mask": mask.to(META), "lengths": lengths.to(META)}  # as train() moves a batch


def test_the_reward_model_and_its_frozen_prior_run_on_another_device():
    model = RewardModel(tiny_gpt(), prior=tiny_gpt()).to(META)
    assert all(p.device == META and not p.requires_grad for p in model.prior.parameters())
    batch = _preference_batch()
    loss = reward_loss(model, batch)
    loss.backward()
    assert loss.device == model.head.weight.grad.device == model.likelihood_weight.grad.device == META
    assert model.answer_likelihood(batch["ids"], batch["mask"]).device == META


def test_ppo_and_dpo_pieces_run_on_another_device():
    policy = PolicyWithValue(tiny_gpt()).to(META)
    batch = _preference_batch()
    ids, mask = batch["ids"], action_mask(batch["mask"])
    logits, values = policy(ids)
    logp = token_logprobs(logits, ids) * mask
    ref_logp = response_logprobs(tiny_gpt().to(META), ids, batch["mask"])
    rewards = -0.1 * (logp - ref_logp) * mask
    advantages, returns = gae(rewards.detach(), values[:, :-1].detach(), mask)
    advantages = masked_whiten(advantages, mask)
    pg_loss, clipfrac = ppo_policy_loss(logp, logp.detach(), advantages, mask)
    vf_loss = ppo_value_loss(values[:, :-1], values[:, :-1].detach(), returns, mask)
    (pg_loss + vf_loss).backward()
    assert clipfrac.device == kl_estimate(logp, ref_logp, mask).device == META
    assert policy.value_head.weight.grad.device == META
    batch["ref_logp"] = torch.zeros(2, 2, device=META)  # attached per pair, moved with the batch
    dpo = dpo_loss_fn(beta=0.1, nll_weight=1.0)(policy.gpt, batch)
    dpo.backward()
    assert dpo.device == META
