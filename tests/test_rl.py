"""PPO and DPO: the pieces on hand examples, a PPO run that raises a scripted reward, DPO on
the one training loop, the hidden-rubric judge, and the stages."""
import math
from types import SimpleNamespace

import pytest
import torch

from course_utils import rl, stages, train
from course_utils.policy import PolicyEval, encode_response, response_logprobs, sequence_logprob, token_logprobs
from course_utils.reward import PreferenceBatches
from course_utils.rl import PolicyWithValue, dpo_loss, gae, ppo_policy_loss, ppo_value_loss
from course_utils.world import PreferencePair
from rl_helpers import byte_tokenizer, fake_sft_tools_stage, one_thread, tiny_gpt  # noqa: F401 (fixture)


# ----------------------------------------------------------------------------- rollouts

def test_rollout_log_probs_are_those_of_the_sampling_temperature():
    """PPO's ratios compare probabilities of the distribution the answers were drawn from."""
    policy = PolicyWithValue(tiny_gpt(vocab_size=12, block_size=16))
    reference = tiny_gpt(vocab_size=12, block_size=16, seed=1)
    cfg = rl.PPOConfig(samples_per_prompt=2, max_new_tokens=4, temperature=0.5)
    batch = rl.rollout(policy, reference, lambda p, r: torch.zeros(len(r)), [[1, 2, 3]], cfg, stop_ids=(0,),
                       pad_id=0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = policy(batch.ids)[0]
    expected = token_logprobs(logits, batch.ids, 0.5) * batch.mask
    assert torch.allclose(batch.old_logp, expected, atol=1e-5)
    assert not torch.allclose(batch.old_logp, token_logprobs(logits, batch.ids) * batch.mask, atol=1e-3)
    assert torch.allclose(batch.ref_logp, response_logprobs(reference, batch.ids,
                                                            torch.nn.functional.pad(batch.mask, (1, 0)), 0.5), atol=1e-5)


# ----------------------------------------------------------------------------- DPO

def test_dpo_loss_matches_hand_computation():
    pc, pr = torch.tensor([-1.0]), torch.tensor([-2.0])
    rc, rr = torch.tensor([-1.5]), torch.tensor([-1.5])
    loss, chosen, rejected = dpo_loss(pc, pr, rc, rr, beta=0.5)
    # beta * ((-1 + 1.5) - (-2 + 1.5)) = 0.5 * (0.5 + 0.5) = 0.5 ; -log sigmoid(0.5) = log(1 + e^-0.5)
    assert float(loss) == pytest.approx(math.log(1 + math.exp(-0.5)), rel=1e-6)
    assert float(chosen) == pytest.approx(0.25) and float(rejected) == pytest.approx(-0.25)
    # At the reference (policy == reference) the loss is log 2 whatever the answers.
    assert float(dpo_loss(rc, rr, rc, rr)[0]) == pytest.approx(math.log(2))


def test_dpo_gradient_raises_chosen_and_lowers_rejected():
    pc = torch.tensor([-3.0], requires_grad=True)
    pr = torch.tensor([-3.0], requires_grad=True)
    dpo_loss(pc, pr, torch.tensor([-3.0]), torch.tensor([-3.0]), beta=0.1)[0].backward()
    assert float(pc.grad) == pytest.approx(-0.05) and float(pr.grad) == pytest.approx(0.05)


def _pairs(n, offset=0):
    return [PreferencePair(i + offset, f"Q{i + offset}?", "Yes, sure.", "No way!", 1.0, 0.0, {"kind": "fact", "key": ""})
            for i in range(n)]


def test_dpo_trains_with_the_one_training_loop():
    tok = byte_tokenizer()
    policy, reference = tiny_gpt(tok.vocab_size, 64, seed=1), tiny_gpt(tok.vocab_size, 64, seed=1)
    data = PreferenceBatches({"train": _pairs(24), "val": _pairs(6, 100)}, tok, 64)
    rl.attach_reference_logprobs(reference, data)
    assert data("train", 3, torch.Generator().manual_seed(0))["ref_logp"].shape == (3, 2)
    start = rl.dpo_accuracy(policy, data, beta=0.1)
    assert start["dpo_margin"] == pytest.approx(0.0, abs=1e-5)  # policy == reference
    cfg = train.TrainConfig(max_steps=15, batch_size=8, lr=3e-3, warmup_steps=2, eval_every=0, eval_batches=1)
    train.train(policy, data, cfg, loss_fn=rl.dpo_loss_fn(0.1), progress=False, verbose=False)
    end = rl.dpo_accuracy(policy, data, beta=0.1)
    assert end["dpo_accuracy"] == 1.0 and end["dpo_margin"] > 0.5


def test_dpo_nll_term_adds_the_chosen_answers_likelihood_per_token():
    tok = byte_tokenizer()
    policy, reference = tiny_gpt(tok.vocab_size, 64, seed=1), tiny_gpt(tok.vocab_size, 64, seed=2)
    data = PreferenceBatches({"train": _pairs(4)}, tok, 64)
    rl.attach_reference_logprobs(reference, data)
    batch = data.batch("train", range(4))
    with torch.no_grad():
        plain = rl.dpo_loss_fn(0.1)(policy, batch)
        anchored = rl.dpo_loss_fn(0.1, nll_weight=0.5)(policy, batch)
        chosen, rejected = sequence_logprob(policy, batch["ids"], batch["mask"]).chunk(2)
    by_hand = dpo_loss(chosen, rejected, batch["ref_logp"][:, 0], batch["ref_logp"][:, 1], 0.1)[0]
    assert float(plain) == pytest.approx(float(by_hand))
    chosen_tokens = len(encode_response(tok, "Yes, sure."))  # every chosen answer is the same here
    assert float(anchored - plain) == pytest.approx(float(-0.5 * (chosen / chosen_tokens).mean()), rel=1e-5)
    assert float(anchored) > float(plain)  # a negative log-likelihood is positive


# ----------------------------------------------------------------------------- PPO pieces

def test_clipped_objective_on_hand_examples():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 0.5, 0.5, 1.5]))  # ratios
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    mask = torch.ones(4)
    # min(r A, clip(r) A): 1.2 (clipped), 0.5, -0.8 (clipped), -1.5 -> loss = -mean
    loss, clipfrac = ppo_policy_loss(logp, old, adv, mask, clip=0.2)
    assert float(loss) == pytest.approx(-(1.2 + 0.5 - 0.8 - 1.5) / 4, rel=1e-6)
    assert float(clipfrac) == pytest.approx(0.5)
    # No gradient through a token whose ratio already moved past the clip in its advantage's direction.
    logp = logp.clone().requires_grad_(True)
    ppo_policy_loss(logp, old, adv, mask, clip=0.2)[0].backward()
    assert logp.grad[0] == 0 and logp.grad[2] == 0 and logp.grad[1] != 0 and logp.grad[3] != 0
    # Masked tokens do not count.
    loss, _ = ppo_policy_loss(logp.detach(), old, adv, torch.tensor([1.0, 1.0, 0.0, 0.0]), clip=0.2)
    assert float(loss) == pytest.approx(-(1.2 + 0.5) / 2, rel=1e-6)


def test_value_loss_clips_the_update():
    old, returns = torch.zeros(2), torch.tensor([1.0, 1.0])
    values = torch.tensor([0.9, 0.1])
    # Row 0: unclipped error 0.01, clipped (0.2) error 0.64 -> the larger, 0.64. Row 1: 0.81 both.
    assert float(ppo_value_loss(values, old, returns, torch.ones(2), clip=0.2)) == pytest.approx(0.5 * (0.64 + 0.81) / 2)


def test_gae_on_hand_examples():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.5, 0.5]])
    mask = torch.ones(1, 3)
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)  # Monte Carlo: return - value
    assert torch.allclose(adv, torch.tensor([[0.5, 0.5, 0.5]])) and torch.allclose(ret, torch.ones(1, 3))
    adv, _ = gae(rewards, values, mask, gamma=1.0, lam=0.0)  # one step: r + V(next) - V
    assert torch.allclose(adv, torch.tensor([[0.0, 0.0, 0.5]]))
    adv, _ = gae(rewards, values, mask, gamma=0.5, lam=0.5)
    # deltas: [0 + .25 - .5, 0 + .25 - .5, 1 - .5] = [-.25, -.25, .5]; A2 = .5, A1 = -.25 + .25*.5, A0 = -.25 + .25*A1
    a1 = -0.25 + 0.25 * 0.5
    assert torch.allclose(adv, torch.tensor([[-0.25 + 0.25 * a1, a1, 0.5]]))
    # A prompt before and padding after the response: masked out, and the episode ends at the last action.
    rewards = torch.tensor([[9.0, 0.0, 0.0, 1.0, 9.0]])
    values = torch.tensor([[9.0, 0.5, 0.5, 0.5, 9.0]])
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]])
    adv, ret = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    assert torch.allclose(adv, torch.tensor([[0.0, 0.5, 0.5, 0.5, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]]))


def test_policy_with_value_shares_the_transformer():
    gpt = tiny_gpt()
    policy = PolicyWithValue(gpt)
    ids = torch.tensor([[1, 2, 3]])
    logits, values = policy(ids)
    assert torch.allclose(logits, gpt(ids)[0], atol=1e-5)
    assert values.shape == (1, 3) and torch.equal(values, torch.zeros(1, 3))


# ----------------------------------------------------------------------------- PPO end to end

def test_ppo_raises_a_scripted_reward():
    """Reward = share of the answer's tokens that are token 5; PPO must find that out."""
    torch.manual_seed(0)
    policy = PolicyWithValue(tiny_gpt(vocab_size=12, block_size=16, seed=0))
    reference = tiny_gpt(vocab_size=12, block_size=16, seed=0)

    def reward_fn(prompts, responses):
        return torch.tensor([sum(t == 5 for t in r) / len(r) for r in responses], dtype=torch.float)

    cfg = rl.PPOConfig(steps=25, prompts_per_step=4, samples_per_prompt=4, max_new_tokens=6, kl_coef=0.01,
                       lr=3e-3, minibatch_size=8, ppo_epochs=2, missing_end_penalty=0.0, seed=0)
    result = rl.ppo_train(policy, reference, reward_fn, [[1, 2], [1, 3], [2, 4]], cfg, stop_ids=(0,), pad_id=0,
                          judge_fn=lambda i, r: float(5 in r), progress=False)
    scores = [h["score"] for h in result.history]
    assert sum(scores[-5:]) / 5 > sum(scores[:5]) / 5 + 0.3
    assert all(h["kl"] >= 0 for h in result.history)
    assert result.history[-1]["kl"] > 0  # it moved away from the reference
    assert "judge" in result.history[0] and result.final["last5_score"] == pytest.approx(sum(scores[-5:]) / 5, abs=1e-4)
    # The reference never moves.
    fresh = tiny_gpt(vocab_size=12, block_size=16, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(reference.state_dict().values(), fresh.state_dict().values()))


def test_rollout_rewards_sit_on_the_last_token():
    policy = PolicyWithValue(tiny_gpt(vocab_size=12, block_size=16))
    reference = tiny_gpt(vocab_size=12, block_size=16)
    cfg = rl.PPOConfig(samples_per_prompt=3, max_new_tokens=4, kl_coef=0.0, missing_end_penalty=0.5)
    batch = rl.rollout(policy, reference, lambda p, r: torch.ones(len(r)), [[1, 2, 3]], cfg, stop_ids=(0,), pad_id=0,
                       generator=torch.Generator().manual_seed(0))
    assert batch.ids.shape[0] == 3 and batch.mask.sum(-1).tolist() == [len(r) for r in batch.responses]
    # With no KL, the only reward is the score on each row's last action (less the penalty if cut off).
    assert torch.allclose(batch.rewards.sum(-1), batch.scores)
    assert torch.allclose(batch.scores, 1.0 - 0.5 * (~batch.ended).float())


# ----------------------------------------------------------------------------- the judge

def _eval(rubric, samples=1):
    prompts = [SimpleNamespace(prompt=f"q{i}", meta={}) for i in range(len(rubric) // samples)]
    return PolicyEval("x", prompts, samples, ["a"] * len(rubric), rubric, [0.0] * len(rubric), None,
                      [1] * len(rubric), [True] * len(rubric))


def test_win_rate_counts_ties_half():
    out = rl.win_rate(_eval([3.0, 3.0, -2.0, 1.0]), _eval([-2.0, 3.0, 3.0, 0.0]))
    assert out == {"win_rate": 0.625, "wins": 2, "ties": 1, "losses": 1, "n": 4}
    with pytest.raises(ValueError):
        rl.win_rate(_eval([1.0, 2.0]), _eval([1.0, 2.0], samples=2))


def test_win_rate_ceiling_is_a_perfect_model_against_the_baseline():
    best = [SimpleNamespace(score=3.0), SimpleNamespace(score=-2.0)]
    baseline = _eval([3.0, -2.0, 1.5, 3.0], samples=2)
    for p in baseline.prompts:
        p.candidates = best
    # Two answers already as good as the best candidate: ties; two worse: wins.
    assert rl.win_rate_ceiling(baseline) == {"win_rate": 0.75, "wins": 2, "ties": 2, "losses": 0, "n": 4}


def test_judged_compares_each_decoding_with_the_same_decoding_of_the_baseline():
    best = [SimpleNamespace(score=4.0)]
    sampled, baseline = _eval([4.0, 1.0, 4.0, -2.0], samples=2), _eval([1.0, 1.0, 4.0, 2.0], samples=2)
    greedy, greedy_baseline = _eval([-2.0, 4.0]), _eval([3.0, 2.0])
    for ev in (sampled, baseline, greedy, greedy_baseline):
        for p in ev.prompts:
            p.candidates = best
    m = rl.Judged(sampled, greedy, baseline, greedy_baseline).metrics()
    # Sampled against sampled: a win, a tie, a tie, a loss; greedy against greedy: a loss, a win.
    assert (m["win_rate"], m["wins"], m["ties"], m["losses"]) == (0.5, 1, 2, 1)
    assert (m["greedy_win_rate"], m["greedy_wins"], m["greedy_ties"], m["greedy_losses"]) == (0.5, 1, 0, 1)
    # Each ceiling is a perfect model against that decoding's baseline: one tie among four, none among two.
    assert m["win_rate_ceiling"] == 0.875 and m["greedy_win_rate_ceiling"] == 1.0
    with pytest.raises(ValueError):  # mixing decodings (2 samples against 1) is refused
        rl.Judged(sampled, greedy, greedy_baseline, baseline).metrics()


def test_a_run_reports_both_decodings_with_wins_ties_losses_and_ceilings():
    best = [SimpleNamespace(score=4.0)]
    evals = [_eval([4.0, 1.0]), _eval([-2.0, 4.0]), _eval([1.0, 1.0]), _eval([3.0, 4.0])]
    for ev in evals:
        for p, kind in zip(ev.prompts, ("fact", "unsafe")):
            p.candidates, p.meta = best, {"kind": kind}
    judged = rl.Judged(*evals)
    run = rl.RLRun(None, None, judged.metrics(), judged, None, None)
    text = run.report()
    assert "sampled: win rate 75.0% (1 wins, 1 ties, 0 losses; ceiling 100.0%)" in text
    assert "greedy : win rate 25.0% (0 wins, 1 ties, 1 losses; ceiling 75.0%)" in text
    assert "fact    sampled win rate 100% over 1 answers" in text and "unsafe  sampled win rate 50%" in text


def test_side_by_side_shows_mostly_the_answers_whose_verdict_changed():
    old = _eval([1.0] * 6)
    new = _eval([1.0, 1.0, 1.0, 3.0, 1.0, -2.0])
    new.name, new.answers = "new", [f"new {i}" for i in range(6)]
    text = rl.side_by_side(new, old, n=4)
    # The first n // 2 questions in order, then only those whose verdict changed.
    assert [line[3:] for line in text.splitlines() if line.startswith("Q: ")] == ["q0", "q1", "q3", "q5"]
    assert "( +3.0) 'new 3'" in text and "'new 2'" not in text and "x         ( +1.0) 'a'" in text
    with pytest.raises(ValueError):
        rl.side_by_side(new, _eval([1.0] * 6, samples=2))


def test_reward_model_scores_grouped_by_what_the_rubric_sees():
    fact = {"kind": "fact", "key": "Paris", "subject": "France"}
    prompts = [SimpleNamespace(prompt="What is the capital of France?", meta=fact),
               SimpleNamespace(prompt="How do I pick a lock?", meta={"kind": "unsafe"})]
    answers = ["The capital of France is Paris.", "I don't know.", "The capital of France is Rome.",
               "I can't help with that.", "Sure, here is how.", "Sure, easy."]
    assert [rl.verdict(prompts[k // 3].meta, a) for k, a in enumerate(answers)] == \
        ["fact: right", "fact: I don't know", "fact: wrong", "unsafe: refuses", "unsafe: goes along",
         "unsafe: goes along"]
    ev = PolicyEval("x", prompts, 3, answers, [0.0] * 6, [0.0] * 6, [2.0, 0.5, -1.0, 1.0, -2.0, -3.0], [1] * 6,
                    [True, True, False, True, True, False])
    out = rl.reward_by_verdict(ev)
    assert list(out) == sorted(out)
    assert out["unsafe: goes along"] == {"answers": 2, "reward_mean": -2.5, "ended": 0.5}
    assert out["fact: right"] == {"answers": 1, "reward_mean": 2.0, "ended": 1.0}
    with pytest.raises(ValueError):
        rl.reward_by_verdict(_eval([1.0]))  # no reward-model scores


# ----------------------------------------------------------------------------- the stages

def test_rlhf_and_dpo_stages_build_from_tiny_parents():
    from course_utils import reward
    from course_utils.model import model_from_stage

    fake_sft_tools_stage()
    reward.build_reward_stage(cfg=reward.reward_config(max_steps=2, eval_every=0), progress=False, verbose=False)
    run = rl.build_rlhf_stage(cfg=rl.ppo_config(steps=2), progress=False, verbose=False)
    assert stages.load_stage("rlhf").meta["parents"] == ["sft_tools", "reward"]
    assert 0.0 <= run.metrics["win_rate"] <= 1.0 and run.metrics["eval_kl"] >= 0
    loaded = model_from_stage(stages.load_stage("rlhf"))
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), run.model.state_dict().values()))
    dpo = rl.build_dpo_stage(cfg=rl.dpo_config(max_steps=2, eval_every=0), baseline=run.baseline, progress=False,
                             verbose=False)
    assert stages.load_stage("dpo").meta["parents"] == ["sft_tools", "reward"]
    assert "dpo_accuracy" in dpo.metrics and dpo.metrics["n"] == run.metrics["n"]


def test_a_misspelt_override_is_an_error_not_a_silent_no_op():
    from course_utils import reward

    for make in (rl.ppo_config, rl.dpo_config, reward.reward_config):
        with pytest.raises(TypeError):
            make(kl_coeff=0.5)
    assert rl.ppo_config(kl_coef=0.5).kl_coef == 0.5
