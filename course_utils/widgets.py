"""Interactive explorers for the notebooks (ipywidgets). Each function here stands alone."""
from __future__ import annotations

from dataclasses import dataclass, field


def _with_html_fallback(children, output):
    """A VBox of ``children`` that live front ends draw as a widget, while headless runs and
    exported pages fall back to the HTML of ``output`` as last drawn."""
    import ipywidgets as widgets

    class ExplorerBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle["text/html"] = output.value
            return bundle

    return ExplorerBox(children)


# ----------------------------------------------------------------------------- token explorer (chapter 02)

_TOKEN_COLOURS = ["#ffd6a5", "#caffbf", "#9bf6ff", "#bdb2ff", "#ffc6ff", "#fdffb6", "#a0c4ff", "#ffadad"]
_DEFAULT_TEXT = "Hello world! The capital of France is Paris. 今天天气真不错。 strawberry 12345 <|im_end|>"


def token_explorer(tokenizer, text: str = _DEFAULT_TEXT, allowed_special="none"):
    """A text box; as you type, the text below is cut into coloured tokens with their ids.

    Spaces show as ``·`` and line breaks as ``↵``; bytes that are only part of a character
    show as ``<0xNN>``; special tokens (only when ``allowed_special`` lets them through) are
    framed. Returns the widget. It is drawn for ``text`` straight away, and it also carries a
    plain HTML copy of that drawing, so a page without live widgets (a headless run, an
    exported notebook) still shows the tokens.
    """
    import html

    import ipywidgets as widgets

    specials = set(tokenizer.special_tokens.values())

    def render(s: str) -> str:
        ids = tokenizer.encode(s, allowed_special=allowed_special)
        spans = []
        for k, i in enumerate(ids):
            piece = html.escape(tokenizer.token_text(i)).replace(" ", "·").replace("\n", "↵").replace("\t", "→")
            frame = "outline:2px solid #444;" if i in specials else ""
            spans.append(
                f'<span title="id {i}" style="display:inline-block;margin:1px;padding:1px 3px;border-radius:3px;'
                f'background:{_TOKEN_COLOURS[k % len(_TOKEN_COLOURS)]};{frame}font-family:monospace;text-align:center">'
                f'{piece}<br><small style="color:#555">{i}</small></span>')
        n_bytes = len(s.encode("utf-8"))
        ratio = f"{n_bytes / len(ids):.2f} bytes per token" if ids else "no tokens"
        summary = (f"<div style='margin-top:4px;color:#333'>{len(s)} characters, {n_bytes} bytes "
                   f"→ <b>{len(ids)} tokens</b> ({ratio})</div>")
        return f"<div style='line-height:2.2'>{''.join(spans)}</div>{summary}"

    box = widgets.Text(value=text, description="Text:", continuous_update=True,
                       layout=widgets.Layout(width="95%"))
    output = widgets.HTML(render(text))  # drawn once now: callbacks never fire in a headless run
    box.observe(lambda change: setattr(output, "value", render(change["new"])), names="value")
    return _with_html_fallback([box, output], output)


# ----------------------------------------------------------------------------- sampling explorer (chapter 05)

def sampling_explorer(model, tokenizer, prompt: str = "The capital of France is", *, max_new_tokens: int = 60,
                      n_samples: int = 3, temperature: float = 0.8, top_k: int = 0, top_p: float = 1.0,
                      seed: int = 0):
    """Sliders for temperature, top-k and top-p; the prompt is continued ``n_samples`` times.

    ``top_k=0`` and ``top_p=1.0`` mean "off"; ``temperature=0`` is greedy decoding (every
    sample the same). The samples use a fixed seed, so moving a slider back gives back the
    same text. Like :func:`token_explorer`, the widget carries an HTML copy of its first
    drawing, so a headless run or an exported notebook still shows the samples.
    """
    import html

    import ipywidgets as widgets
    import torch

    from .generate import text_generate

    style = {"description_width": "90px"}
    wide = widgets.Layout(width="420px")
    controls = {
        "prompt": widgets.Text(value=prompt, description="prompt", style=style, layout=widgets.Layout(width="95%"),
                               continuous_update=False),
        "temperature": widgets.FloatSlider(value=temperature, min=0.0, max=2.0, step=0.05, description="temperature",
                                           style=style, layout=wide, continuous_update=False),
        "top_k": widgets.IntSlider(value=top_k, min=0, max=min(200, tokenizer.vocab_size), description="top-k (0=off)",
                                   style=style, layout=wide, continuous_update=False),
        "top_p": widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.05, description="top-p", style=style,
                                     layout=wide, continuous_update=False),
        "seed": widgets.IntText(value=seed, description="seed", style=style, layout=widgets.Layout(width="200px")),
    }

    def render() -> str:
        v = {k: w.value for k, w in controls.items()}
        device = next(model.parameters()).device
        gen = torch.Generator(device=device).manual_seed(int(v["seed"]))
        rows = []
        for k in range(n_samples):
            text = text_generate(model, tokenizer, v["prompt"], max_new_tokens, temperature=v["temperature"],
                                 top_k=v["top_k"] or None, top_p=v["top_p"] if v["top_p"] < 1.0 else None,
                                 generator=gen)
            rows.append(f"<div style='margin:4px 0;padding:4px;border-left:3px solid #9bf6ff;white-space:pre-wrap;"
                        f"font-family:monospace'><b>{html.escape(v['prompt'])}</b>{html.escape(text)}</div>")
        settings = (f"temperature {v['temperature']:.2f}, top-k {v['top_k'] or 'off'}, "
                    f"top-p {v['top_p'] if v['top_p'] < 1.0 else 'off'}, seed {v['seed']}")
        return f"<div style='color:#555'>{n_samples} samples, {settings}</div>{''.join(rows)}"

    output = widgets.HTML(render())  # drawn once now: callbacks never fire in a headless run
    for w in controls.values():
        w.observe(lambda change: setattr(output, "value", render()), names="value")
    return _with_html_fallback([controls["prompt"], widgets.HBox([controls["temperature"], controls["top_k"]]),
                                widgets.HBox([controls["top_p"], controls["seed"]]), output], output)


# ----------------------------------------------------------------------------- chat box (chapters 06, 07)

def chat_widget(model, tokenizer, *, system: str | None = None, max_new_tokens: int = 64, tools: bool = True,
                temperature: float = 0.0, title: str = "Chat with the model"):
    """A chat box: type a message, press Enter (or *Send*); the transcript keeps the history.

    Every reply sees the whole conversation so far, rendered in the chat template and cut to
    the context window by the same rule as in training. With ``tools=True`` the model's
    calculator calls are run and shown in the transcript. An empty or oversized message
    (more than :data:`course_utils.chat.MAX_MESSAGE_CHARS` characters), or any failure while
    generating, shows an error line in the widget instead of raising. *Clear* starts over.

    The returned widget also works without a live front end: ``box.send("Hi")`` adds an
    exchange from code (and returns the reply's text, or None after an error), ``box.history``
    is the conversation, and a page without live widgets shows an HTML copy of the transcript.
    """
    import html
    import time

    import ipywidgets as widgets

    from .chat import MAX_MESSAGE_CHARS, validate_conversation
    from .generate import chat_reply

    history: list[dict] = [{"role": "system", "content": system}] if system else []
    bubble = ("<div style='margin:4px 0;padding:6px 10px;border-radius:8px;white-space:pre-wrap;"
              "max-width:90%;{style}'>{body}</div>")

    def transcript() -> str:
        parts = [f"<div style='font-weight:bold;margin-bottom:4px'>{html.escape(title)}</div>"]
        for msg in history:
            role = msg["role"]
            if role == "user":
                parts.append(bubble.format(style="background:#e3f2fd;margin-left:auto",
                                           body="<b>you</b>: " + html.escape(msg["content"])))
            elif role == "assistant" and "tool_call" in msg:
                parts.append(bubble.format(style="background:#fff3e0;font-family:monospace;font-size:90%",
                                           body="🔧 calculator(" + html.escape(msg["tool_call"]) + ")"))
            elif role == "tool":
                parts.append(bubble.format(style="background:#fff3e0;font-family:monospace;font-size:90%",
                                           body="&nbsp;&nbsp;→ " + html.escape(msg["content"])))
            elif role == "assistant":
                parts.append(bubble.format(style="background:#f1f8e9",
                                           body="<b>model</b>: " + html.escape(msg.get("content", ""))))
        if len(parts) == 1:
            parts.append("<div style='color:#777'>(no messages yet)</div>")
        return "".join(parts)

    text = widgets.Text(placeholder="Ask something, e.g. What is the capital of France?", continuous_update=False,
                        layout=widgets.Layout(width="70%"))
    send_button = widgets.Button(description="Send", button_style="primary")
    clear_button = widgets.Button(description="Clear")
    error = widgets.HTML("")
    output = widgets.HTML(transcript())

    def show_error(message: str) -> None:
        error.value = f"<div style='color:#b00020'>⚠ {html.escape(message)}</div>"

    def send(message) -> str | None:
        error.value = ""
        if not isinstance(message, str) or not message.strip():
            show_error("Type a message first (the message is empty).")
            return None
        if len(message) > MAX_MESSAGE_CHARS:
            show_error(f"That message is {len(message):,} characters long; the limit is {MAX_MESSAGE_CHARS:,}. "
                       "Send something shorter.")
            return None
        conversation = history + [{"role": "user", "content": message}]
        try:
            messages, trace = chat_reply(model, tokenizer, conversation, max_new_tokens, tools=tools,
                                         temperature=temperature)
        except Exception as exc:  # a widget must never crash the notebook
            show_error(f"The model could not answer: {type(exc).__name__}: {exc}")
            return None
        history.append(conversation[-1])
        reply = messages[-1].get("content", "") if messages[-1]["role"] == "assistant" else ""
        if reply.strip():
            # Keep the reply (its calculator calls too) only if the template can render it again.
            try:
                validate_conversation(history + messages)
                history.extend(messages)
            except ValueError:
                history.append({"role": "assistant", "content": reply})
        else:  # an empty or unanswered reply is reported, not kept in the conversation
            show_error(f"The model wrote no answer (it stopped because of: {trace.stop}).")
        output.value = transcript()
        return reply

    def clear(_=None) -> None:
        del history[:]
        if system:
            history.append({"role": "system", "content": system})
        error.value = ""
        output.value = transcript()

    last_sent = [0.0]

    def on_submit(change) -> None:  # Enter (or leaving the box) with text in it
        if change["new"]:
            last_sent[0] = time.monotonic()
            text.value = ""
            send(change["new"])

    def on_send(_) -> None:
        # Clicking Send first moves the focus out of the box, which already submitted its text.
        if time.monotonic() - last_sent[0] > 1.0:
            message, text.value = text.value, ""
            send(message)

    text.observe(on_submit, names="value")
    send_button.on_click(on_send)
    clear_button.on_click(clear)

    class ChatBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle["text/html"] = output.value + error.value
            return bundle

    box = ChatBox([output, widgets.HBox([text, send_button, clear_button]), error])
    box.send, box.clear, box.history, box.error = send, clear, history, error
    return box


# ----------------------------------------------------------------------------- self-check quiz (any chapter)

@dataclass(frozen=True)
class Question:
    """One multiple-choice question: ``options[answer]`` is right; ``why`` explains it, and
    ``hints`` may say, for a wrong option's index, what that choice misses."""

    text: str
    options: tuple[str, ...]
    answer: int
    why: str
    hints: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "options", tuple(self.options))
        if not self.text.strip() or len(self.options) < 2:
            raise ValueError(f"A question needs text and at least two options: {self.text!r}")
        if not 0 <= self.answer < len(self.options):
            raise ValueError(f"answer={self.answer} is not an option index of {self.text!r}")
        if self.answer in self.hints or not set(self.hints) <= set(range(len(self.options))):
            raise ValueError(f"hints must be keyed by the indices of wrong options: {self.text!r}")

    def feedback(self, choice) -> tuple[bool | None, str]:
        """(right?, what to tell the learner) for the option index they picked (None: none yet)."""
        if choice is None:
            return None, "Pick an answer first."
        if choice == self.answer:
            return True, f"Right. {self.why}"
        hint = self.hints.get(choice, "")
        return False, f"Not quite: “{self.options[choice]}”. {hint + ' ' if hint else ''}Try another."


_FEEDBACK_COLOURS = {True: "#1b5e20", False: "#b00020", None: "#555"}


def quiz(questions, title: str = "Check yourself"):
    """A short multiple-choice self-check: one set of radio buttons and a *Check* button per
    question; the feedback (with the reason) appears under it when *Check* is clicked.

    Standard ipywidgets only, feedback inside an ``Output`` widget, so it works in JupyterLab and
    Colab alike. A page with no live widgets (nbval, ``jupyter nbconvert``, a saved copy) shows the
    questions as text instead, with each answer behind a click in HTML. ``box.check(i, choice)``
    does what clicking does and returns the feedback text.
    """
    import html

    import ipywidgets as widgets

    questions = [q if isinstance(q, Question) else Question(**q) for q in questions]
    letters = "abcdefghij"
    parts, pickers, outputs = [widgets.HTML(f"<b>{html.escape(title)}</b>")], [], []

    def show(i: int, choice) -> str:
        right, text = questions[i].feedback(choice)
        outputs[i].outputs = ({"output_type": "display_data", "metadata": {},
                               "data": {"text/plain": text,
                                        "text/html": f"<div style='color:{_FEEDBACK_COLOURS[right]}'>"
                                                     f"{'✓ ' if right else '✗ ' if right is False else ''}"
                                                     f"{html.escape(text)}</div>"}},)
        return text

    for i, q in enumerate(questions):
        picker = widgets.RadioButtons(options=[(f"{letters[k]}) {o}", k) for k, o in enumerate(q.options)],
                                      value=None, layout=widgets.Layout(width="auto"))
        button = widgets.Button(description="Check", layout=widgets.Layout(width="80px"))
        button.on_click(lambda _, i=i, picker=picker: show(i, picker.value))
        pickers.append(picker)
        outputs.append(widgets.Output())
        parts += [widgets.HTML(f"{i + 1}. {html.escape(q.text)}"), picker, button, outputs[i]]

    def plain() -> str:
        lines = [title]
        for i, q in enumerate(questions):
            lines.append(f"{i + 1}. {q.text}")
            lines += [f"   {letters[k]}) {o}" for k, o in enumerate(q.options)]
        lines.append("(Open the notebook in JupyterLab or Colab to check your answers.)")
        return "\n".join(lines)

    def static_html() -> str:
        rows = [f"<b>{html.escape(title)}</b>"]
        for i, q in enumerate(questions):
            opts = "".join(f"<li>{html.escape(o)}</li>" for o in q.options)
            rows.append(f"<p>{i + 1}. {html.escape(q.text)}</p><ol type='a'>{opts}</ol>"
                        f"<details><summary>Answer</summary>{letters[q.answer]}) {html.escape(q.options[q.answer])}. "
                        f"{html.escape(q.why)}</details>")
        return "".join(rows)

    class QuizBox(widgets.VBox):
        def _repr_mimebundle_(self, **kwargs):
            bundle = super()._repr_mimebundle_(**kwargs)
            if isinstance(bundle, dict):
                bundle["text/plain"] = plain()
                bundle["text/html"] = static_html()
            return bundle

    box = QuizBox(parts)
    box.questions, box.pickers, box.outputs = questions, pickers, outputs

    def check(i: int, choice) -> str:
        pickers[i].value = choice
        return show(i, choice)

    box.check = check
    return box


# ----------------------------------------------------------------------------- training cost (chapter 14)

def cost_explorer(preset: str = "Llama 3.1 405B", *, mfu: float = 0.4, usd_per_gpu_hour: float = 2.0):
    """Every assumption of a training run's cost in a box you can edit: parameters, tokens, the
    GPU (its peak FLOP/s and power), utilisation (MFU), how many GPUs, the price of a GPU-hour.
    Out come the FLOPs (6 N D), GPU-hours, days, dollars and megawatt-hours
    (:func:`course_utils.scaling.training_cost`), beside what the model's authors reported.
    Picking a public model fills in its published size, tokens and hardware. Like the other
    explorers, it carries an HTML copy of its first drawing for headless runs."""
    import html

    import ipywidgets as widgets

    from .scaling import GPUS, PUBLIC_MODELS, training_cost

    style = {"description_width": "150px"}
    wide = widgets.Layout(width="360px")
    model = PUBLIC_MODELS[preset]
    gpu = model.gpu or "H100"
    controls = {
        "preset": widgets.Dropdown(options=list(PUBLIC_MODELS), value=preset, description="public model",
                                   style=style, layout=wide),
        "params": widgets.FloatText(value=model.params / 1e9, description="parameters (billions)", style=style,
                                    layout=wide),
        "tokens": widgets.FloatText(value=model.tokens / 1e12, description="tokens (trillions)", style=style,
                                    layout=wide),
        "gpu": widgets.Dropdown(options=list(GPUS), value=gpu, description="GPU", style=style, layout=wide),
        "peak": widgets.FloatText(value=GPUS[gpu].peak_flops / 1e12, description="peak TFLOP/s per GPU",
                                  style=style, layout=wide),
        "watts": widgets.FloatText(value=GPUS[gpu].watts, description="watts per GPU", style=style, layout=wide),
        "mfu": widgets.FloatSlider(value=mfu, min=0.05, max=0.8, step=0.01, description="utilisation (MFU)",
                                   style=style, layout=wide, continuous_update=False),
        "gpus": widgets.IntText(value=model.gpus or 1024, description="GPUs at once", style=style, layout=wide),
        "price": widgets.FloatText(value=usd_per_gpu_hour, description="$ per GPU-hour", style=style, layout=wide),
    }

    def render() -> str:
        v = {k: w.value for k, w in controls.items()}
        cost = training_cost(v["params"] * 1e9, v["tokens"] * 1e12, peak_flops=v["peak"] * 1e12, mfu=v["mfu"],
                             gpus=max(1, v["gpus"]), usd_per_gpu_hour=v["price"], watts_per_gpu=v["watts"])
        rows = [("compute (6 N D)", f"{cost['flops']:.2e} FLOPs"),
                ("GPU-hours", f"{cost['gpu_hours']:,.0f}"),
                ("wall-clock time", f"{cost['days']:,.1f} days on {max(1, v['gpus']):,} GPUs"),
                ("cost of the GPU-hours", f"${cost['usd']:,.0f}"),
                ("energy (GPUs only)", f"{cost['mwh']:,.0f} MWh")]
        chosen = PUBLIC_MODELS[v["preset"]]
        reported = [f"{chosen.reported_flops:.2e} FLOPs" if chosen.reported_flops else None,
                    f"{chosen.reported_gpu_hours:,.0f} GPU-hours" if chosen.reported_gpu_hours else None]
        reported = ", ".join(r for r in reported if r) or "no compute figure"
        table = "".join(f"<tr><td style='padding-right:12px'>{k}</td><td><b>{html.escape(val)}</b></td></tr>"
                        for k, val in rows)
        return (f"<table>{table}</table><div style='color:#555;margin-top:4px'>Reported for {chosen.name}: "
                f"{reported}.<br><small>{html.escape(chosen.source)}</small></div>")

    output = widgets.HTML(render())  # drawn once now: callbacks never fire in a headless run

    def on_preset(change):
        chosen = PUBLIC_MODELS[change["new"]]
        controls["params"].value, controls["tokens"].value = chosen.params / 1e9, chosen.tokens / 1e12
        if chosen.gpu:
            controls["gpu"].value = chosen.gpu
        if chosen.gpus:
            controls["gpus"].value = chosen.gpus

    def on_gpu(change):
        controls["peak"].value, controls["watts"].value = GPUS[change["new"]].peak_flops / 1e12, GPUS[change["new"]].watts

    controls["preset"].observe(on_preset, names="value")
    controls["gpu"].observe(on_gpu, names="value")
    for w in controls.values():
        w.observe(lambda change: setattr(output, "value", render()), names="value")
    column = [controls[k] for k in ("preset", "params", "tokens", "gpu", "peak")]
    column2 = [controls[k] for k in ("watts", "mfu", "gpus", "price")]
    return _with_html_fallback([widgets.HBox([widgets.VBox(column), widgets.VBox(column2)]), output], output)
