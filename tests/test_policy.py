"""What the reward model, PPO and DPO share: the prompt/answer token format, log-probabilities of
an answer, the KL estimate, and sampling answers graded by the hidden rubric."""
from types import SimpleNamespace

import pytest
import torch

from course_utils.chat import render_conversation
from course_utils.policy import (encode_prompt, encode_response, evaluate_policy, kl_estimate, pack, response_logprobs,
                                 sequence_logprob, token_logprobs, transformer_hidden)
from rl_helpers import byte_tokenizer, one_thread, tiny_gpt  # noqa: F401 (fixture)


# ----------------------------------------------------------------------------- token sequences

def test_prompt_plus_response_is_the_chat_template():
    tok = byte_tokenizer()
    ids, mask = render_conversation([{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}], tok)
    p, r = encode_prompt(tok, "Hi?"), encode_response(tok, "Hello.")
    assert p + r == ids[:-1]  # the template ends with a newline after <|im_end|>
    assert [0] * len(p) + [1] * len(r) == mask[:-1]  # the response is exactly what SFT trains on


def test_pack_masks_prompt_and_padding():
    ids, mask, lengths = pack([[1, 2, 3], [4]], [[5, 6], [7, 8, 9]], pad_id=0, block_size=16)
    assert ids.tolist() == [[1, 2, 3, 5, 6], [4, 7, 8, 9, 0]]
    assert mask.tolist() == [[0, 0, 0, 1, 1], [0, 1, 1, 1, 0]]
    assert lengths.tolist() == [5, 4]
    # Too long: the prompt is kept, the response loses its end.
    ids, mask, lengths = pack([[1, 2, 3]], [[4, 5, 6, 7]], pad_id=0, block_size=5)
    assert ids.tolist() == [[1, 2, 3, 4, 5]] and lengths.tolist() == [5]
    with pytest.raises(ValueError):
        pack([[1, 2, 3]], [[4]], pad_id=0, block_size=3)


def test_hidden_states_are_what_the_next_token_head_reads():
    gpt = tiny_gpt()
    ids = torch.tensor([[1, 2, 3, 4]])
    h = transformer_hidden(gpt, ids)
    assert h.shape == (1, 4, gpt.config.n_embd)
    assert torch.allclose(gpt.lm_head(h), gpt(ids)[0], atol=1e-5)


# ----------------------------------------------------------------------------- log-probabilities

def test_token_logprobs_match_a_loop():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    ids = torch.randint(0, 7, (2, 5))
    out = token_logprobs(logits, ids)
    for b in range(2):
        for t in range(4):
            assert out[b, t] == pytest.approx(float(torch.log_softmax(logits[b, t], -1)[ids[b, t + 1]]), abs=1e-6)

    # At temperature T they are the log-probabilities of softmax(logits / T), what a sampler draws from.
    cooled = token_logprobs(logits, ids, temperature=0.5)
    assert cooled[1, 2] == pytest.approx(float(torch.log_softmax(logits[1, 2] / 0.5, -1)[ids[1, 3]]), abs=1e-6)


def test_response_logprobs_ignore_the_prompt_and_padding():
    model = tiny_gpt()
    ids, mask, _ = pack([[1, 2, 3], [4]], [[5, 6], [7, 8]], pad_id=0, block_size=16)
    out = response_logprobs(model, ids, mask)
    # Action t writes token t+1: row 0's response is tokens 3..4 -> actions 2..3.
    assert (out[0, :2] == 0).all() and (out[0, 2:] != 0).all()
    assert (out[1, :2] != 0).all() and (out[1, 2:] == 0).all()  # row 1: prompt [4], then padding
    # A different prompt changes the response's probabilities, but never adds prompt tokens to the sum.
    assert sequence_logprob(model, ids, mask).shape == (2,)


def test_kl_estimate_is_non_negative_and_unbiased():
    torch.manual_seed(0)
    logp, ref = torch.randn(50, 7) * 3, torch.randn(50, 7) * 3
    assert (kl_estimate(logp, ref) >= 0).all()
    assert torch.equal(kl_estimate(logp, logp), torch.zeros(50))
    # Averaged over tokens sampled from p, it is KL(p || q).
    p = torch.softmax(torch.randn(5), -1)
    q = torch.softmax(torch.randn(5), -1)
    x = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    est = kl_estimate(p.log()[x][None, :], q.log()[x][None, :]) / x.numel()
    assert float(est) == pytest.approx(float((p * (p / q).log()).sum()), rel=0.03)


# ----------------------------------------------------------------------------- sampled answers, graded

def test_evaluate_policy_uses_the_hidden_rubric():
    tok = byte_tokenizer()
    model = tiny_gpt(tok.vocab_size, 96)
    prompts = [SimpleNamespace(prompt="What is the capital of France?", meta={"kind": "fact", "key": "Paris", "subject": "France"})]
    ev = evaluate_policy(model, tok, prompts, reference=model, samples=2, max_new_tokens=8)
    assert len(ev.answers) == 2 and ev.kl == pytest.approx([0.0, 0.0], abs=1e-5)
    from course_utils.world import judge

    assert ev.rubric == [judge(prompts[0].meta, a) for a in ev.answers]


def test_evaluate_policy_keeps_answers_in_prompt_order_across_batches():
    tok = byte_tokenizer()
    model = tiny_gpt(tok.vocab_size, 96)
    prompts = [SimpleNamespace(prompt=q, meta={"kind": "fact", "key": "Paris", "subject": "France"})
               for q in ("Capital of France?", "Where is Paris?", "Hi?")]
    seen = []

    def reward_fn(p, r):
        seen.extend(p)
        return torch.tensor([float(len(x)) for x in r])

    ev = evaluate_policy(model, tok, prompts, reward_fn=reward_fn, samples=2, max_new_tokens=6, batch_size=4)
    # Answer k answers prompt k // samples, and each reward is that answer's own (here: its length).
    assert seen == [encode_prompt(tok, p.prompt) for p in prompts for _ in range(2)]
    assert ev.reward == [float(n) for n in ev.lengths] and len(ev.answers) == 6
    assert ev.kl == [0.0] * 6  # no reference, no distance
    again = evaluate_policy(model, tok, prompts, samples=2, max_new_tokens=6)
    assert again.answers == ev.answers  # seeded
    assert ev.summary()["reward_mean"] == pytest.approx(sum(ev.lengths) / 6, abs=1e-4)
