"""The chat evaluation tasks on scripted models whose right answers we know."""
import re

import pytest
import torch
from scripted_model import ScriptedChatModel

from course_utils import evals
from course_utils.tokenizer import Tokenizer

TOK = Tokenizer([])


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scripted(replies: dict, default="Hm.<|im_end|>"):
    """A model that answers each known question with a fixed text."""
    return ScriptedChatModel(TOK, lambda question, results: replies.get(question, default))


def test_small_helpers():
    assert evals.says_dont_know("I don’t know who that is.") and evals.says_dont_know("I DO NOT KNOW")
    assert evals.says_dont_know("我不知道。") and not evals.says_dont_know("I know Paris.")
    assert evals.last_integer("123 × 456 = 56,088.") == 56088 and evals.last_integer("no numbers") is None
    assert evals.last_integer("It is -5") == -5
    assert evals.reply_text([{"role": "assistant", "tool_call": "1+1"}, {"role": "tool", "content": "2"},
                             {"role": "assistant", "content": "2."}]) == "2."
    assert evals.reply_text([{"role": "assistant", "tool_call": "1+1"}]) == ""


def test_ask_is_greedy_unless_given_a_temperature():
    from rl_helpers import tiny_gpt

    model = tiny_gpt(TOK.vocab_size, 96)

    def replies(**kw):
        return [evals.reply_text(m) for m, _ in evals.ask(model, TOK, ["Hi?"] * 3, max_new_tokens=12, **kw)]

    assert len(set(replies())) == 1  # greedy: the same question, the same reply
    sampled = replies(temperature=1.0, generator=torch.Generator().manual_seed(0))
    assert len(set(sampled)) > 1  # a random model at temperature 1 hardly repeats itself
    assert sampled == replies(temperature=1.0, generator=torch.Generator().manual_seed(0))  # seeded


def test_known_fact_qa_counts_replies_that_contain_the_fact():
    probes = [("What is the capital of France?", "Paris"), ("What is the capital of Italy?", "Rome"),
              ("Where was Ada Lin born?", "Lyon"), ("What is the capital of Spain?", "Madrid")]
    model = scripted({
        probes[0][0]: "The capital of France is Paris.<|im_end|>",   # right
        probes[1][0]: "It is in Romania.<|im_end|>",                  # "Rome" only inside a word: wrong
        probes[2][0]: "Ada Lin was born in lyon",                     # right (any case), but never closed
        probes[3][0]: "Paris.<|im_end|>",                             # wrong
    })
    out = evals.known_fact_qa(model, TOK, probes, max_new_tokens=40)
    assert (out["accuracy"], out["correct"], out["n"]) == (0.5, 2, 4)
    assert out["end_token_rate"] == 0.75
    assert [e["correct"] for e in out["examples"]] == [True, False, True, False]
    assert out["examples"][2]["stop"] == "end_of_text"


def test_unknown_people_tells_admissions_from_fabrications():
    questions = ["Who is Orson Kovacs?", "Where was Orson Kovacs born?", "What does Mia Zhou do?", "Who is Bo Li?"]
    model = scripted({
        questions[0]: "I don't know who Orson Kovacs is.<|im_end|>",
        questions[1]: "Orson Kovacs was born in Vienna, Austria.<|im_end|>",
        questions[2]: "<|im_end|>",
        questions[3]: "I do not know anyone called Bo Li.<|im_end|>",
    })
    out = evals.unknown_people(model, TOK, [(q, "I don't know") for q in questions], max_new_tokens=60)
    assert (out["idk_rate"], out["fabrication_rate"], out["empty_rate"], out["n"]) == (0.5, 0.25, 0.25, 4)
    assert [e["verdict"] for e in out["examples"]] == ["idk", "fabricated", "empty", "idk"]
    assert out["end_token_rate"] == 1.0


PROBLEMS = [("What is 123 + 456?", 579), ("What is 300 * 200?", 60000), ("What is 999 - 111?", 888),
            ("Multiply 250 by 4.", 1000)]


def calculator_user(question, results):
    a, op, b = re.search(r"(\d+) ([-+*]) (\d+)", question.replace("Multiply 250 by 4", "250 * 4")).groups()
    if not results:
        return f"<|tool_call|>{a}{op}{b}<|/tool_call|>"
    return f"{a} {op} {b} = {results[0]}.<|im_end|>"


def test_arithmetic_with_and_without_the_calculator():
    model = ScriptedChatModel(TOK, calculator_user)
    with_tool = evals.arithmetic(model, TOK, PROBLEMS, tools=True, max_new_tokens=40)
    assert (with_tool["accuracy"], with_tool["tool_call_rate"], with_tool["tool_error_rate"]) == (1.0, 1.0, 0.0)
    assert with_tool["end_token_rate"] == 1.0 and with_tool["examples"][0]["tool_calls"][0]["result"] == "579"
    without = evals.arithmetic(model, TOK, PROBLEMS, tools=False, max_new_tokens=40)
    assert (without["accuracy"], without["tool_call_rate"], without["end_token_rate"]) == (0.0, 1.0, 0.0)
    # A model that guesses: right once (999 - 111), never calls the tool.
    guesser = scripted({q: f"The answer is {a + (k != 2)}.<|im_end|>" for k, (q, a) in enumerate(PROBLEMS)})
    out = evals.arithmetic(guesser, TOK, PROBLEMS, tools=True, max_new_tokens=40)
    assert (out["accuracy"], out["tool_call_rate"], out["end_token_rate"]) == (0.25, 0.0, 1.0)
    # A model that writes words in its call: refused by the calculator, so its answer is wrong.
    wordy = ScriptedChatModel(TOK, lambda q, r: "<|tool_call|>two plus two<|/tool_call|>" if not r
                              else f"{r[0]}<|im_end|>")
    out = evals.arithmetic(wordy, TOK, PROBLEMS[:2], tools=True, max_new_tokens=60)
    assert (out["accuracy"], out["tool_call_rate"], out["tool_error_rate"]) == (0.0, 1.0, 1.0)


def test_chat_report_on_a_model_that_knows_exactly_the_countries():
    from course_utils import world as W

    world = W.build_world()
    facts, unknown, sums = W.qa_probes(world), W.idk_probes(world), W.tool_probes(world)
    reworded = W.qa_probes(world, heldout_phrasings=True)
    countries = {c.name for c in world.countries}
    country_questions = {q for q, _ in facts if any(name in q for name in countries)}
    replies = {q: f"It is {key}.<|im_end|>" for q, key in facts if q in country_questions}
    replies.update({q: "I don't know.<|im_end|>" for q, _ in unknown[::2]})
    replies.update({q: f"<|tool_call|>{a}<|/tool_call|>" for q, a in sums})

    def respond(question, results):
        if results:
            return f"That makes {results[0]}.<|im_end|>"
        return replies.get(question, "Somebody famous, probably.<|im_end|>")

    report = evals.chat_report(ScriptedChatModel(TOK, respond), TOK, world, max_new_tokens=40)
    assert report["known_fact_accuracy"] == round(len(country_questions) / len(facts), 4)
    assert 0 < report["known_fact_accuracy"] < 1 and report["known_fact_n"] == len(facts)
    assert report["unknown_idk_rate"] == round(len(unknown[::2]) / len(unknown), 4)
    assert report["unknown_fabrication_rate"] == round(1 - len(unknown[::2]) / len(unknown), 4)
    assert report["arithmetic_tool_accuracy"] == 1.0 and report["arithmetic_no_tool_accuracy"] == 0.0
    assert report["arithmetic_tool_call_rate"] == 1.0 and report["arithmetic_n"] == len(sums)
    # The scripted model knows only the training wordings: every reworded question gets a guess.
    assert report["heldout_phrasing_accuracy"] == 0.0 and report["heldout_phrasing_ratio"] == 0.0
    assert report["heldout_phrasing_refusal_rate"] == 0.0 and report["heldout_phrasing_n"] == len(reworded)
    assert report["end_token_rate"] == 1.0
    assert report["end_token_n"] == len(facts) + len(reworded) + len(unknown) + len(sums)
    assert set(report["examples"]) == {"known_fact", "heldout_phrasing", "unknown_people", "arithmetic_tool",
                                       "arithmetic_no_tool"}
    short = evals.chat_report(ScriptedChatModel(TOK, respond), TOK, world, max_new_tokens=40, arithmetic_n=5)
    assert short["arithmetic_n"] == 5
