"""The tool-call loop of chat_reply: run the calculator, inject the result, continue; refusals,
bounds, budgets and context truncation, on a scripted stand-in model and on a tiny real one."""
import pytest
import torch
from scripted_model import ScriptedChatModel

from course_utils import chat
from course_utils.generate import (MAX_TOOL_CALLS, STOP_END_OF_TURN, STOP_MAX_NEW_TOKENS, STOP_MAX_TOOL_CALLS,
                                   STOP_TOOL_CALL, chat_replies, chat_reply)
from course_utils.model import GPT, GPTConfig
from course_utils.tokenizer import Tokenizer
from course_utils.tools import calculate


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TOK = Tokenizer([])  # bytes only: every character is a token, so lengths are easy to reason about


def ask(question):
    return [{"role": "user", "content": question}]


def calculator_script(expression):
    """Call the calculator with ``expression``, then repeat whatever came back."""
    def respond(question, results):
        if not results:
            return f"<|tool_call|>{expression}<|/tool_call|>"
        return f"Result: {results[-1]}<|im_end|>"
    return respond


@pytest.mark.parametrize("use_cache", [True, False])
def test_the_loop_runs_the_calculator_injects_the_result_and_continues(use_cache):
    model = ScriptedChatModel(TOK, calculator_script("123*456"))
    conv = ask("What is 123 times 456?")
    messages, trace = chat_reply(model, TOK, conv, 60, use_cache=use_cache)
    assert messages == [{"role": "assistant", "tool_call": "123*456"},
                        {"role": "tool", "content": "56088"},
                        {"role": "assistant", "content": "Result: 56088"}]
    assert trace.tool_calls == [{"expression": "123*456", "result": "56088", "ok": True}]
    assert trace.stop == STOP_END_OF_TURN and trace.closed
    assert [s for s, _ in trace.segments] == ["prompt", "model", "tool", "model"]
    # The injected tokens are exactly the template's tool message plus a new assistant header.
    assert trace.segments[2][1] == chat.render_tool_result("56088", TOK)
    # The whole context equals the rendering of the finished conversation (minus the final newline).
    full, _ = chat.render_conversation(conv + messages, TOK)
    assert trace.ids == full[:-1]
    # The model wrote 9 + 14 tokens; the 26 injected ones are not counted against its budget.
    assert trace.new_tokens == len(trace.segments[1][1]) + len(trace.segments[3][1])
    chat.validate_conversation(conv + messages)


BAD_EXPRESSIONS = {
    "division by zero": "1/0",
    "exponent tower": "2**3**4",
    "huge number": "9" * 30,
    "huge result": "999999999999999**99",
    "name": "x+1",
    "attribute access": "(1).real",
    "import": "__import__('os').system('ls')",
    "malformed": "12*(3",
    "very long": "1+" * 150 + "1",
    "empty": " ",
}


@pytest.mark.parametrize("expression", BAD_EXPRESSIONS.values(), ids=BAD_EXPRESSIONS.keys())
def test_a_refused_calculation_is_injected_like_a_result(expression):
    model = ScriptedChatModel(TOK, calculator_script(expression), block_size=1024)
    messages, trace = chat_reply(model, TOK, ask("Compute something nasty."), 400)
    refusal = calculate(expression)
    assert not refusal.ok and refusal.text.startswith("error: ")
    assert trace.tool_calls == [{"expression": expression, "result": refusal.text, "ok": False}]
    assert messages[1] == {"role": "tool", "content": refusal.text}
    assert messages[-1] == {"role": "assistant", "content": f"Result: {refusal.text}"}
    assert trace.closed


def test_a_stray_closing_tag_gets_the_empty_expression_refusal():
    def respond(question, results):
        return "<|/tool_call|>" if not results else f"{results[0]}<|im_end|>"
    messages, trace = chat_reply(ScriptedChatModel(TOK, respond), TOK, ask("Hm?"), 40)
    assert trace.tool_calls == [{"expression": "", "result": "error: empty expression", "ok": False}]
    assert messages[-1]["content"] == "error: empty expression"


def test_tool_calls_per_reply_are_bounded():
    model = ScriptedChatModel(TOK, lambda q, results: "<|tool_call|>1+1<|/tool_call|>")  # calls forever
    messages, trace = chat_reply(model, TOK, ask("Loop!"), 100)
    assert len(trace.tool_calls) == MAX_TOOL_CALLS
    assert trace.stop == STOP_MAX_TOOL_CALLS and not trace.closed
    assert messages[-1] == {"role": "assistant", "tool_call": "1+1"}  # the call that was not run
    _, trace = chat_reply(model, TOK, ask("Loop!"), 100, max_tool_calls=1)
    assert len(trace.tool_calls) == 1 and trace.stop == STOP_MAX_TOOL_CALLS


def test_without_tools_a_call_ends_the_reply_unanswered():
    model = ScriptedChatModel(TOK, calculator_script("2+2"))
    messages, trace = chat_reply(model, TOK, ask("What is 2+2?"), 60, tools=False)
    assert messages == [{"role": "assistant", "tool_call": "2+2"}]
    assert trace.tool_calls == [] and trace.stop == STOP_TOOL_CALL


def test_the_budget_counts_only_the_models_tokens():
    model = ScriptedChatModel(TOK, lambda q, r: "a" * 500)  # never closes its turn
    messages, trace = chat_reply(model, TOK, ask("Talk."), 30)
    assert trace.stop == STOP_MAX_NEW_TOKENS and trace.new_tokens == 30
    assert messages == [{"role": "assistant", "content": "a" * 30}]
    # A call that uses up the whole budget is not run: nothing could read its result.
    model = ScriptedChatModel(TOK, calculator_script("1+2"))
    _, trace = chat_reply(model, TOK, ask("x"), 5)  # <|tool_call|> 1 + 2 <|/tool_call|>: 5 tokens
    assert trace.tool_calls == [] and trace.stop == STOP_MAX_NEW_TOKENS


def test_bad_arguments_are_refused():
    model = ScriptedChatModel(TOK, calculator_script("1"), block_size=64)
    with pytest.raises(ValueError, match="max_new_tokens"):
        chat_reply(model, TOK, ask("x"), 64)
    with pytest.raises(ValueError, match="max_new_tokens"):
        chat_reply(model, TOK, ask("x"), 0)
    with pytest.raises(chat.ChatFormatError):  # the model cannot reply to its own message
        chat_reply(model, TOK, ask("x") + [{"role": "assistant", "content": "hi"}], 10)
    with pytest.raises(chat.ChatFormatError):
        chat_reply(model, TOK, ask(""), 10)


def long_conversation(turns=6):
    conv = [{"role": "system", "content": "Be brief."}]
    for k in range(turns):
        conv += [{"role": "user", "content": f"Question number {k} is here?"},
                 {"role": "assistant", "content": f"Answer {k}."}]
    return conv + [{"role": "user", "content": "What is 6 times 7?"}]


def test_a_long_conversation_is_cut_by_the_chat_rule():
    block, budget = 100, 40
    model = ScriptedChatModel(TOK, lambda q, r: "42.<|im_end|>", block_size=block)
    conv = long_conversation()
    messages, trace = chat_reply(model, TOK, conv, budget)
    prompt = chat.render_for_completion(conv, TOK, max_tokens=block - budget)
    assert trace.truncated and trace.segments[0] == ("prompt", prompt)
    assert model.contexts[0] == prompt  # what the model actually read
    # Old turns were dropped whole: the system prompt and the last question survive.
    assert TOK.decode(prompt).startswith("<|endoftext|><|im_start|>system\nBe brief.<|im_end|>")
    assert "Question number 0" not in TOK.decode(prompt) and "6 times 7" in TOK.decode(prompt)
    assert messages == [{"role": "assistant", "content": "42."}]


def test_after_a_tool_result_an_overflowing_context_is_cut_by_the_same_rule():
    block, budget = 110, 45
    model = ScriptedChatModel(TOK, calculator_script("6*7"), block_size=block)
    conv = long_conversation(turns=3)
    messages, trace = chat_reply(model, TOK, conv, budget)
    assert trace.truncated and trace.closed
    assert messages[-1] == {"role": "assistant", "content": "Result: 42"}
    # The context the model continued from after the result: the conversation with the call
    # and its result, rendered for completion and cut to leave room for the remaining budget.
    call_ids = trace.segments[1][1]
    remaining = budget - len(call_ids)
    expected = chat.render_for_completion(conv + messages[:2], TOK, max_tokens=block - remaining)
    assert expected in model.contexts
    assert all(len(c) <= block for c in model.contexts)


def test_batched_replies_equal_one_at_a_time():
    def respond(question, results):
        if "times" in question:
            return calculator_script(question.split()[-1].rstrip("?").replace("x", "*"))(question, results)
        return f"You said: {question}<|im_end|>"
    model = ScriptedChatModel(TOK, respond)
    convs = [ask("What is 12 times 3x4?"), ask("Hello"), ask("Hi"), ask("What is 1 times 9x9?"), ask("Hey you")]
    batch = chat_replies(model, TOK, convs, 60)
    for conv, (messages, trace) in zip(convs, batch):
        single_messages, single_trace = chat_reply(model, TOK, conv, 60)
        assert messages == single_messages and trace.ids == single_trace.ids
    assert batch[0][0][-1]["content"] == "Result: 12" and batch[3][0][-1]["content"] == "Result: 81"


def test_a_real_tiny_model_goes_through_the_loop():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=64, n_layer=1, n_head=2, n_embd=16))
    # Make the tool-call tokens likely, so the random model does call the calculator sometimes.
    call, call_end = TOK.special_id("<|tool_call|>"), TOK.special_id("<|/tool_call|>")
    with torch.no_grad():
        model.tok_emb.weight[[call, call_end]] *= 40
    convs = [ask(q) for q in ("What is 2+2?", "Who is Orson Kovacs?", "Hi", "x" * 10)]
    for (messages, trace), conv in zip(chat_replies(model, TOK, convs, 20, temperature=1.0,
                                                    generator=torch.Generator().manual_seed(1)), convs):
        assert trace.new_tokens <= 20 and trace.stop
        assert {s for s, _ in trace.segments} <= {"prompt", "model", "tool"}
        assert all(len(c) <= 64 for c in [trace.segments[0][1]])
        assert messages[-1]["role"] == "assistant"
    greedy = chat_reply(model, TOK, convs[0], 20)
    assert chat_reply(model, TOK, convs[0], 20, use_cache=False)[1].ids == greedy[1].ids
