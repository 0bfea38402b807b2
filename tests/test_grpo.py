"""GRPO and the verifiable reward of chapter 10: advantages, the token-level loss, the strict
checker, pass@k, and a tiny model that learns from a checker."""
import math
import pytest
import torch

from course_utils import evals, grpo
from course_utils.generate import ChatTrace, chat_replies
from course_utils.world import Task, answer_sentence, worked_solution
from rl_helpers import byte_tokenizer, one_thread, tiny_gpt  # noqa: F401
from scripted_model import ScriptedChatModel


# ----------------------------------------------------------------------------- advantages and loss

def test_group_advantages_on_a_hand_worked_group():
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0],    # mean 0.5, std 0.5
                            [0.1, 0.1, 0.1, 0.1],    # all equal: no signal
                            [1.0, 0.1, 0.0, 0.1]])   # mean 0.3
    adv, informative = grpo.group_advantages(rewards)
    assert informative.tolist() == [True, False, True]
    assert adv[0].tolist() == pytest.approx([1.0, -1.0, -1.0, 1.0], abs=1e-4)
    assert adv[1].tolist() == [0.0, 0.0, 0.0, 0.0]
    std = math.sqrt(((0.7 ** 2) + 2 * (0.2 ** 2) + 0.3 ** 2) / 4)
    assert adv[2].tolist() == pytest.approx([0.7 / std, -0.2 / std, -0.3 / std, -0.2 / std], abs=1e-4)
    plain, _ = grpo.group_advantages(rewards, scale_by_std=False)  # Dr. GRPO: the mean only
    assert plain[2].tolist() == pytest.approx([0.7, -0.2, -0.3, -0.2], abs=1e-6)


def test_answer_average_pushes_less_on_each_token_of_a_long_wrong_answer():
    short_wrong, long_wrong = grpo.token_weights([10, 40], [-1.0, -1.0], "answer")
    assert abs(long_wrong) == pytest.approx(abs(short_wrong) / 4)
    token = grpo.token_weights([10, 40], [-1.0, -1.0], "token")
    assert token[0] == token[1] == pytest.approx(-1 / 50)
    with pytest.raises(ValueError):
        grpo.token_weights([1], [1.0], "sequence")


def test_grpo_loss_averages_by_token_or_by_answer():
    # On-policy (ratio 1) the loss is -advantage on every counted token.
    logp = torch.zeros(2, 4)
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    adv = torch.tensor([1.0, -1.0])
    by_token, _ = grpo.grpo_loss(logp, logp, adv, mask, average="token")
    by_answer, _ = grpo.grpo_loss(logp, logp, adv, mask, average="answer")
    assert float(by_token) == pytest.approx((-4 + 1) / 5)
    assert float(by_answer) == pytest.approx((-1 + 1) / 2)


def test_grpo_loss_clips_a_ratio_that_ran_away():
    old = torch.zeros(1, 1)
    new = torch.log(torch.tensor([[2.0]]))  # ratio 2 on a token with positive advantage
    new.requires_grad_(True)
    loss, info = grpo.grpo_loss(new, old, torch.tensor([1.0]), torch.ones(1, 1), clip=0.2)
    loss.backward()
    assert loss.item() == pytest.approx(-1.2) and info["clipfrac"] == 1.0
    assert float(new.grad.abs().sum()) == 0.0  # past the clip: no push further


def test_kl_penalty_is_zero_at_the_reference_and_positive_away_from_it():
    logp = torch.log(torch.tensor([[0.5, 0.2]]))
    mask = torch.ones(1, 2)
    base, _ = grpo.grpo_loss(logp, logp, torch.zeros(1), mask, ref_logp=logp, kl_coef=1.0)
    away, _ = grpo.grpo_loss(logp, logp, torch.zeros(1), mask, ref_logp=logp - 0.5, kl_coef=1.0)
    assert float(base) == pytest.approx(0.0) and float(away) > 0


def test_tool_results_carry_no_loss():
    tok = byte_tokenizer()
    model = ScriptedChatModel(tok, lambda q, results: "<|tool_call|>2*3<|/tool_call|>" if not results
                              else "The answer is 6.<|im_end|>")
    [(messages, trace)] = chat_replies(model, tok, [[{"role": "user", "content": "2 times 3?"}]], 40)
    assert trace.tool_calls and trace.tool_calls[0]["result"] == "6"
    ids, mask = grpo.pack_replies([trace], pad_id=tok.eot_id, block_size=256)
    sources = [s for s, seg in trace.segments for _ in seg]
    # action t writes token t+1: counted exactly when the model wrote that token
    assert mask[0].tolist() == [float(s == "model") for s in sources[1:]]
    assert 0 < mask.sum() < len(sources) - len(trace.segments[0][1])
    cut_ids, cut_mask = grpo.pack_replies([trace], pad_id=tok.eot_id, block_size=50)
    assert cut_ids.shape == (1, 50) and cut_mask[0].tolist() == mask[0, -49:].tolist()
    # and the gradient of the loss reaches no logit of an injected token
    gpt = tiny_gpt(vocab_size=tok.vocab_size, block_size=ids.size(1) + 1)
    logits = gpt(ids)[0].detach().requires_grad_(True)
    from course_utils.policy import token_logprobs
    logp = token_logprobs(logits, ids)
    loss, _ = grpo.grpo_loss(logp, logp.detach(), torch.tensor([1.0]), mask)
    loss.backward()
    pushed = logits.grad[0, :-1].abs().sum(-1) > 0
    assert pushed.tolist() == [bool(m) for m in mask[0].tolist()]


# ----------------------------------------------------------------------------- the strict checker

def _reply(tok, text: str, stop: str = "end_of_turn"):
    """A reply as chat_replies would return it, from the text the model wrote."""
    from course_utils.chat import parse_assistant_reply

    ids = tok.encode(text, allowed_special="all")
    return [parse_assistant_reply(ids, tok)], ChatTrace(segments=[("prompt", []), ("model", ids)], stop=stop)


@pytest.mark.parametrize("text, stop, kind", [
    ("<|think|>5 × 6 = 30.<|/think|>The answer is 30.<|im_end|>", "end_of_turn", "right"),
    ("The answer is 30.<|im_end|>", "end_of_turn", "right"),
    ("<|think|>5 × 6 = 30.<|/think|>答案是30。<|im_end|>", "end_of_turn", "right"),
    ("<|think|>5 × 6 = 31.<|/think|>The answer is 31.<|im_end|>", "end_of_turn", "wrong"),
    ("The answer is 29. The answer is 30.<|im_end|>", "end_of_turn", "several numbers"),
    ("29, 30 or 31.<|im_end|>", "end_of_turn", "several numbers"),
    ("The answer is 30.5.<|im_end|>", "end_of_turn", "not a whole number"),
    ("The answer is 61/2.<|im_end|>", "end_of_turn", "not a whole number"),
    ("The answer is 30. I am sure.<|im_end|>", "end_of_turn", "answer not alone"),
    ("<|think|>The answer is 30.<|/think|>Thirty.<|im_end|>", "end_of_turn", "no answer"),
    ("<|im_end|>", "end_of_turn", "no answer"),
    ("The answer is " + "9" * 10_000 + ".<|im_end|>", "end_of_turn", "huge number"),
    ("<|think|>5 × 6 = 30. The answer is 30.<|im_end|>", "end_of_turn", "thinking not closed"),
    ("<|think|>5 × 6 = 30. 30 + 0 = 30. 30 + 0", "max_new_tokens", "thinking not closed"),
    ("The answer is 30.", "max_new_tokens", "cut off"),
    ("<|tool_call|>1+1<|/tool_call|>", "max_tool_calls", "tool loop"),
])
def test_strict_checker_on_crafted_replies(text, stop, kind):
    tok = byte_tokenizer()
    messages, trace = _reply(tok, text, stop)
    assert evals.answer_kind(messages, trace, 30, tok) == kind
    assert evals.answer_reward(kind) == (1.0 if kind == "right" else evals.FORMAT_REWARD if kind == "wrong" else 0.0)


def test_the_loose_check_passes_what_the_strict_one_refuses():
    task = Task("q", 30, 3, "5 × 6 = 30. The answer is 30.")
    assert task.check("The answer is 29. The answer is 30. The answer is 31.")
    assert evals.strict_answer("The answer is 29. The answer is 30. The answer is 31.") is None
    assert evals.strict_answer(" The answer is 30. ") == 30
    assert evals.strict_answer("The answer is " + "1" * 10_000 + ".") is None
    assert not task.check("1" * 10_000)


def test_worked_solutions_put_the_answer_alone_in_its_place():
    for task in (Task("q", 12, 1, "3 + 9 = 12. The answer is 12."),
                 Task("q", 25, 5, "2 × 7 = 14. 29 - 14 = 15. 15 + 10 = 25. 答案是25。", "zh")):
        conv = worked_solution(task)
        assert conv[-1]["content"] == answer_sentence(task.answer, task.language)
        assert evals.strict_answer(conv[-1]["content"]) == task.answer
        assert str(task.answer) in conv[-1]["thinking"]


# ----------------------------------------------------------------------------- pass@k

@pytest.mark.parametrize("n, c", [(16, 0), (16, 1), (16, 5), (16, 16), (10, 3), (7, 6)])
def test_pass_at_k_against_its_closed_form(n, c):
    for k in range(1, n + 1):
        closed = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert evals.pass_at_k(n, c, k) == pytest.approx(closed, abs=1e-12)
    assert evals.pass_at_k(n, c, 1) == pytest.approx(c / n)


def test_pass_at_k_refuses_impossible_counts():
    with pytest.raises(ValueError):
        evals.pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        evals.pass_at_k(4, 1, 5)


# ----------------------------------------------------------------------------- learning

def test_grpo_raises_a_checkers_reward_on_a_tiny_model():
    """Reward = share of the written tokens that are plain ASCII; GRPO must find that out."""
    tok = byte_tokenizer()
    model = tiny_gpt(vocab_size=tok.vocab_size, block_size=96, seed=0)
    tasks = [Task(q, 0, 1, "The answer is 0.") for q in ("ab", "cd", "ef")]

    def checker(task, messages, trace):
        written = trace.written
        return sum(i < 128 for i in written) / max(1, len(written))

    cfg = grpo.GRPOConfig(steps=20, prompts_per_step=3, group_size=6, max_new_tokens=6, lr=1e-2, epochs=2,
                          eval_every=0, seed=0)
    result = grpo.grpo_train(model, tok, tasks, cfg, checker, progress=False)
    rewards = [h["reward"] for h in result.history[1:]]
    assert sum(rewards[-5:]) / 5 > sum(rewards[:5]) / 5 + 0.2
    assert all(h["informative_groups"] <= 3 for h in result.history[1:])


def test_a_kl_penalty_without_a_reference_is_an_error():
    tok = byte_tokenizer()
    model = tiny_gpt(vocab_size=tok.vocab_size, block_size=96)
    with pytest.raises(ValueError, match="reference"):
        grpo.grpo_train(model, tok, [Task("q", 1, 1, "The answer is 1.")], grpo.GRPOConfig(steps=1, kl_coef=0.1),
                        lambda *a: 0.0, progress=False)


# ----------------------------------------------------------------------------- the data

def test_held_out_problems_are_never_practised_and_chinese_ones_are_their_own():
    from course_utils import world

    w = world.build_world(0)
    tasks = grpo.split_tasks(w, n_eval=5)
    asked = {t.question for t in tasks["eval"] + tasks["eval_zh"]}
    assert len(tasks["eval"]) == len(tasks["eval_zh"]) == 15
    assert {t.difficulty for t in tasks["eval"]} == {3, 4, 5} and {t.language for t in tasks["eval_zh"]} == {"zh"}
    assert not asked & {t.question for t in tasks["train"]}
    assert {t.language for t in tasks["train"]} == {"en", "zh"}
    # Chinese problems come from their own stream: asking for them leaves the English ones as they were.
    assert world.verifiable_tasks(w, 4, 10) == world.verifiable_tasks(w, 4, 10)
    for t in world.verifiable_tasks(w, 5, 20, language="zh"):
        assert t.check(t.solution) and t.solution.endswith(answer_sentence(t.answer, "zh"))


def test_a_calculator_solution_calls_the_calculator_once_per_step():
    from course_utils.tools import calculate
    from course_utils import world

    for task in world.verifiable_tasks(world.build_world(0), 5, 10):
        conv = worked_solution(task, calculator=True)
        calls = [m["tool_call"] for m in conv if "tool_call" in m]
        results = [m["content"] for m in conv if m["role"] == "tool"]
        assert len(calls) == 3 and [calculate(c).text for c in calls] == results
        assert results[-1] == str(task.answer) and conv[-1]["content"] == task.answer_sentence


def test_word_problems_counts_the_tokens_written_by_difficulty():
    """One calculator call per step: a harder problem costs more written tokens, results not counted."""
    tok = byte_tokenizer()

    def respond(question, results):
        steps = int(question.split()[-1])
        return "<|tool_call|>1+1<|/tool_call|>" if len(results) < steps else "The answer is 2.<|im_end|>"

    model = ScriptedChatModel(tok, respond)
    tasks = [Task(f"steps {d}", 2, d, "The answer is 2.") for d in (1, 3)]
    out = evals.word_problems(model, tok, tasks, max_new_tokens=120)
    assert out["accuracy"] == 1.0
    call, answer = (len(tok.encode(s, allowed_special="all")) for s in ("<|tool_call|>1+1<|/tool_call|>",
                                                                        "The answer is 2.<|im_end|>"))
    assert out["written_tokens_by_difficulty"] == {1: call + answer, 3: 3 * call + answer}
    assert out["written_tokens"] == (4 * call + 2 * answer) / 2
