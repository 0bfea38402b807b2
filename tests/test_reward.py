"""The reward model: Bradley–Terry loss and its gradient, pairwise accuracy, training through
the course's one loop, and the stage (the token format it shares with PPO and DPO: test_policy.py)."""
import math

import pytest
import torch

from course_utils import reward, stages, train
from course_utils.reward import PreferenceBatches, RewardModel, bradley_terry_loss, pairwise_accuracy
from course_utils.world import PreferencePair
from rl_helpers import byte_tokenizer, fake_sft_tools_stage, one_thread, tiny_gpt  # noqa: F401 (fixture)


def test_bradley_terry_loss_value():
    rc, rr = torch.tensor([2.0, 0.0]), torch.tensor([1.0, 0.0])
    expected = (math.log(1 + math.exp(-1.0)) + math.log(2.0)) / 2
    assert float(bradley_terry_loss(rc, rr)) == pytest.approx(expected, rel=1e-6)


def test_bradley_terry_gradient_pushes_chosen_above_rejected():
    rc = torch.tensor([0.3, -1.0, 2.0], requires_grad=True)
    rr = torch.tensor([0.5, 1.0, -2.0], requires_grad=True)
    bradley_terry_loss(rc, rr).backward()
    # Descending the loss raises every chosen score and lowers every rejected one...
    assert (rc.grad < 0).all() and (rr.grad > 0).all()
    # ...by sigmoid(r_rejected - r_chosen) / B: most where the model disagrees with the rater.
    expected = torch.sigmoid(rr.detach() - rc.detach()) / 3
    assert torch.allclose(-rc.grad, expected) and torch.allclose(rr.grad, expected)
    assert rc.grad.abs().argmax() == 1 and rc.grad.abs().argmin() == 2


def test_bradley_terry_step_on_a_model_raises_the_margin():
    torch.manual_seed(0)
    model = RewardModel(tiny_gpt(), prior=tiny_gpt(seed=1))
    torch.nn.init.normal_(model.head.weight, std=0.1)
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 9]])
    lengths = torch.tensor([4, 4])
    answer = torch.tensor([[0.0, 0, 1, 1], [0, 0, 1, 1]])
    prior_before = [p.clone() for p in model.prior.parameters()]

    def margin():
        with torch.no_grad():
            r = model(ids, lengths, answer)
        return float(r[0] - r[1])

    before = margin()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for _ in range(3):
        opt.zero_grad()
        r = model(ids, lengths, answer)
        bradley_terry_loss(r[:1], r[1:]).backward()
        opt.step()
    assert margin() > before + 0.1
    # The prior is frozen: training moves the backbone, the head and the weight, never it.
    assert all(torch.equal(a, b) for a, b in zip(prior_before, model.prior.parameters()))
    assert model.likelihood_weight.grad is not None


def test_pairwise_accuracy_counts_ties_half():
    assert pairwise_accuracy(torch.tensor([1.0, 0.0, 2.0, 0.5]), torch.tensor([0.0, 1.0, 2.0, 0.0])) == 0.625


def test_reward_read_at_last_real_token_ignores_padding():
    model = RewardModel(tiny_gpt(), prior=tiny_gpt(seed=1))
    torch.nn.init.normal_(model.head.weight, std=0.1)
    short = model(torch.tensor([[5, 6, 7]]), torch.tensor([3]), torch.tensor([[0.0, 1, 1]]))
    padded = model(torch.tensor([[5, 6, 7, 0, 0, 0]]), torch.tensor([3]), torch.tensor([[0.0, 1, 1, 0, 0, 0]]))
    assert torch.allclose(short, padded, atol=1e-6)
    assert short.shape == (1,)


def test_untrained_reward_is_the_priors_mean_log_likelihood():
    prior = tiny_gpt(seed=1)
    model = RewardModel(tiny_gpt(), prior=prior)
    ids = torch.tensor([[1, 2, 3, 4], [3, 4, 5, 0]])
    answer = torch.tensor([[0.0, 0, 1, 1], [0, 1, 1, 0]])  # answers: tokens 3, 4 and tokens 4, 5
    with torch.no_grad():
        logp = torch.log_softmax(prior(ids)[0], -1)
    by_hand = torch.stack([(logp[0, 1, 3] + logp[0, 2, 4]) / 2, (logp[1, 0, 4] + logp[1, 1, 5]) / 2])
    # The head starts at zero and the weight at 1: the score is the chat model's own opinion.
    assert torch.allclose(model(ids, torch.tensor([4, 3]), answer), by_hand, atol=1e-5)


def _toy_pairs(n, offset=0):
    # The raters always prefer the polite answer: learnable from the text alone.
    out = []
    for i in range(n):
        q = f"Question {i + offset}?"
        out.append(PreferencePair(i + offset, q, f"Thanks, answer {i % 7}.", f"Ugh, answer {i % 7}.", 1.0, 0.0,
                                  {"kind": "fact", "key": ""}))
    return out


def test_reward_model_trains_with_the_one_training_loop():
    tok = byte_tokenizer()
    torch.manual_seed(0)
    model = RewardModel(tiny_gpt(tok.vocab_size, 64), prior=tiny_gpt(tok.vocab_size, 64, seed=1))
    data = PreferenceBatches({"train": _toy_pairs(40), "val": _toy_pairs(10, 100)}, tok, 64)
    batch = data("train", 4, torch.Generator().manual_seed(0))
    assert batch["ids"].shape[0] == 8 and batch["mask"].shape == batch["ids"].shape
    cfg = train.TrainConfig(max_steps=30, batch_size=8, lr=3e-3, warmup_steps=3, eval_every=15, eval_batches=1)
    result = train.train(model, data, cfg, loss_fn=reward.reward_loss, on_eval=reward.accuracy_callback(data),
                         progress=False, verbose=False)
    assert result.history[-1]["val_accuracy"] == 1.0
    assert result.final["val_loss"] < 0.3
    m = reward.evaluate_reward_model(model, data)
    assert m["accuracy"] == 1.0 and m["rubric_agreement"] == 1.0
    rows = reward.calibration(model, data)
    assert sum(r["n"] for r in rows) == 2 * len(data.pairs["val"])
    polite, rude = reward.score_answers(model, tok, "Question 3?", ["Thanks, answer 3.", "Ugh, answer 3."])
    assert polite > rude


def test_stored_prior_likelihood_gives_the_same_rewards_as_computing_it():
    tok = byte_tokenizer()
    model = RewardModel(tiny_gpt(tok.vocab_size, 64), prior=tiny_gpt(tok.vocab_size, 64, seed=1))
    torch.nn.init.normal_(model.head.weight, std=0.1)
    live = PreferenceBatches({"train": _toy_pairs(12), "val": _toy_pairs(5, 100)}, tok, 64)
    stored = PreferenceBatches({"train": _toy_pairs(12), "val": _toy_pairs(5, 100)}, tok, 64)
    reward.attach_answer_likelihood(model, stored, batch_size=4)  # several batches per split
    partial = PreferenceBatches({"train": _toy_pairs(12), "val": _toy_pairs(5, 100)}, tok, 64)
    reward.attach_answer_likelihood(model, partial, splits=["val"])
    assert "answer_likelihood" not in partial.batch("train", [0]) and "answer_likelihood" in partial.batch("val", [0])
    assert stored.extra["train"]["answer_likelihood"].shape == (12, 2)
    a, b = reward.score_pairs(model, live), reward.score_pairs(model, stored)
    assert torch.allclose(a["chosen"], b["chosen"], atol=1e-5) and torch.allclose(a["rejected"], b["rejected"], atol=1e-5)
    assert torch.allclose(a["rejected_prior"], b["rejected_prior"], atol=1e-5)
    torch.nn.init.zeros_(model.head.weight)  # no head: the whole reward is the likelihood term
    c = reward.score_pairs(model, stored)
    assert torch.allclose(c["chosen"], c["chosen_prior"]) and not torch.allclose(c["chosen"], a["chosen"])
    index = [3, 0, 7]
    assert "answer_likelihood" in stored.batch("train", index)
    assert torch.allclose(reward.reward_loss(model, live.batch("train", index)),
                          reward.reward_loss(model, stored.batch("train", index)), atol=1e-5)


def test_margins_grouped_by_the_flaws_of_the_two_answers():
    from types import SimpleNamespace

    cands = [SimpleNamespace(text=t, flaws=f) for t, f in (("Paris.", ()), ("Rome.", ("wrong_fact",)),
                                                          ("Paris, duh.", ("rude",)))]
    prompts = [SimpleNamespace(prompt_id=0, candidates=cands)]

    def pair(chosen, rejected, chosen_score, rejected_score):
        return PreferencePair(0, "Capital of France?", chosen, rejected, chosen_score, rejected_score, {})

    pairs = [pair("Paris.", "Rome.", 2.0, -1.0), pair("Rome.", "Paris.", -1.0, 2.0),  # a rater against the rubric
             pair("Paris.", "Rome.", 2.0, -1.0)] + [pair("Paris.", "Paris, duh.", 2.0, 0.0)] * 3 + \
        [pair("Paris, duh.", "Rome.", 0.0, -1.0), pair("Paris.", "Lyon?", 2.0, -1.0)]
    scores = {"chosen": torch.tensor([1.0, 0.5, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]),
              "rejected": torch.tensor([0.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
              "chosen_prior": torch.tensor([0.3, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
              "rejected_prior": torch.tensor([0.1, 0.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])}
    rows = reward.margins_by_flaw(pairs, scores, prompts)
    # Margins are taken rubric-better minus rubric-worse, whichever answer the rater chose.
    assert [r["comparison"] for r in rows] == ["good > wrong_fact", "good > rude"]  # hardest first
    hard = rows[0]
    assert (hard["agree"], hard["n"]) == (2, 3) and hard["agree_share"] == pytest.approx(2 / 3)
    assert hard["likelihood_margin"] == pytest.approx((0.2 + 0.4 + 0.0) / 3)
    assert hard["head_margin"] == pytest.approx((0.8 + 0.6 - 1.0) / 3)
    every = {r["comparison"]: r["n"] for r in reward.margins_by_flaw(pairs, scores, prompts, min_pairs=1)}
    assert every["rude > wrong_fact"] == 1 and every["good > own answer"] == 1


def test_split_by_prompt():
    pairs = _toy_pairs(20)
    split = reward.split_pairs(pairs)
    assert {p.prompt_id for p in split["val"]} == {0, 5, 10, 15}
    assert not {p.prompt for p in split["val"]} & {p.prompt for p in split["train"]}


def test_build_reward_stage_saves_a_loadable_stage(monkeypatch):
    fake_sft_tools_stage()
    # A random model's answers are all equally wrong to the rubric, and raters never see ties:
    # give this test raters whose taste tells random strings apart.
    from course_utils import world as W
    monkeypatch.setattr(W, "judge", lambda meta, text: float(len(text) % 3))
    run = reward.build_reward_stage(cfg=reward.reward_config(max_steps=4, eval_every=2), progress=False,
                                    verbose=False)
    assert 0.0 <= run.metrics["accuracy"] <= 1.0 and 0.5 < run.metrics["noise_ceiling"] < 1.0
    model, tok, stage = reward.load_reward_model()
    assert stage.meta["parents"] == ["sft_tools"]
    r_saved = reward.score_answers(model, tok, "What is the capital of France?", ["Paris.", "Rome."])
    r_run = reward.score_answers(run.model, tok, "What is the capital of France?", ["Paris.", "Rome."])
    assert r_saved == pytest.approx(r_run, abs=1e-5)
    assert stages.spec("reward").notebook == "08_human_preferences.ipynb"
    # The comparisons of sft_tools' own answers are stored with the stage, for DPO, and were trained on.
    sampled = reward.load_sampled_pairs(stage)
    assert sampled and all(p.source == "sampled" and p.chosen != p.rejected for p in sampled)
    assert [p for p in run.data.pairs["train"] if p.source == "sampled"] == reward.split_pairs(sampled)["train"]
    assert run.data.pairs["val_sampled"] == reward.split_pairs(sampled)["val"]
    assert run.metrics["sampled_pairs"] == len(run.data.pairs["val_sampled"])


def test_sampled_pairs_are_the_models_own_answers_compared_by_raters():
    from course_utils.world import judge, preference_prompts

    fake_sft_tools_stage()
    tok = stages.load_stage("sft_tools").tokenizer()
    model = tiny_gpt(tok.vocab_size, 96)
    prompts = preference_prompts(reward.load_world())[:6]
    pairs = reward.sampled_pairs(model, tok, prompts, samples=3)
    assert pairs == reward.sampled_pairs(model, tok, prompts, samples=3)  # seeded
    by_prompt = {p.prompt_id: p for p in prompts}
    for p in pairs:
        # Scores are the hidden rubric's; tied or identical answers are never compared.
        assert {p.chosen_score, p.rejected_score} == {judge(p.prompt_meta, p.chosen), judge(p.prompt_meta, p.rejected)}
        assert p.chosen_score != p.rejected_score and p.prompt == by_prompt[p.prompt_id].prompt


def test_corrupt_sampled_comparisons_say_which_notebook_to_run():
    fake_sft_tools_stage()
    reward.build_reward_stage(cfg=reward.reward_config(max_steps=1, eval_every=0), progress=False, verbose=False)
    stage = stages.load_stage("reward")
    stage.path(reward.SAMPLED_PAIRS_FILE).write_text('[{"prompt": 1}]', encoding="utf-8")
    with pytest.raises(stages.StageCorruptError, match="08_human_preferences.ipynb"):
        reward.load_sampled_pairs(stage)
