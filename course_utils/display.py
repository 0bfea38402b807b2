"""Showing the package's own source in a notebook, so prose and code never drift apart."""
from __future__ import annotations

import inspect


def show_source(obj) -> None:
    """Display the source of a function, class or module from ``course_utils``."""
    source = inspect.getsource(obj)
    try:
        from IPython.display import Code, display

        display(Code(source, language="python"))
    except ImportError:  # plain Python: just print it
        print(source)


# ----------------------------------------------------------------------------- token sequences (chapters 06, 07)

def _token_spans(tokenizer, ids, styles) -> str:
    import html

    spans = []
    for i, style in zip(ids, styles):
        text = html.escape(tokenizer.decode([i])).replace("\n", "↵<br>").replace(" ", "&nbsp;")
        spans.append(f"<span style='{style};border-radius:2px;padding:0 1px;margin:0 1px 0 0'>{text}</span>")
    return "<div style='font-family:monospace;line-height:1.9;font-size:90%'>" + "".join(spans) + "</div>"


def _show_html(markup: str, plain: str):
    try:
        from IPython.display import HTML, display
    except ImportError:
        print(plain)
        return
    display(HTML(markup))


def show_loss_mask(tokenizer, ids, mask, legend: bool = True) -> None:
    """Show a rendered conversation token by token: the tokens the loss trains on (mask 1) on
    green, the others on grey. In plain Python, trained tokens are printed in [brackets]."""
    styles = ["background:#c8e6c9" if m else "background:#eeeeee;color:#777" for m in mask]
    key = ("<div style='font-size:85%;margin-bottom:2px'><span style='background:#c8e6c9'>&nbsp;trained on&nbsp;"
           "</span> <span style='background:#eeeeee;color:#777'>&nbsp;context only (mask 0)&nbsp;</span></div>")
    plain = "".join(f"[{tokenizer.decode([i])}]" if m else tokenizer.decode([i]) for i, m in zip(ids, mask))
    _show_html((key if legend else "") + _token_spans(tokenizer, ids, styles), plain)


_SEGMENT_STYLES = {"prompt": "background:#eeeeee;color:#555", "model": "background:#c8e6c9",
                   "tool": "background:#ffe0b2"}


def show_trace(tokenizer, trace) -> None:
    """Show a chat reply's context (:class:`course_utils.generate.ChatTrace`): the prompt on grey,
    what the model wrote on green, what the tool loop injected on orange."""
    ids = [i for _, seg in trace.segments for i in seg]
    styles = [_SEGMENT_STYLES[source] for source, seg in trace.segments for _ in seg]
    key = "<div style='font-size:85%;margin-bottom:2px'>" + " ".join(
        f"<span style='{s}'>&nbsp;{name}&nbsp;</span>" for name, s in
        (("prompt", _SEGMENT_STYLES["prompt"]), ("written by the model", _SEGMENT_STYLES["model"]),
         ("injected by the tool loop", _SEGMENT_STYLES["tool"]))) + f" &nbsp;stop: <b>{trace.stop}</b></div>"
    plain = "".join(f"<{source}>{tokenizer.decode(seg)}</{source}>" for source, seg in trace.segments)
    _show_html(key + _token_spans(tokenizer, ids, styles), plain)
