"""Figures the chapters share. Each function draws on a Matplotlib axes (or makes its own figure)."""
from __future__ import annotations

from typing import Sequence


# ----------------------------------------------------------------------------- loss curves (train.py)

def _ema(values, alpha: float = 0.1):
    out, avg = [], None
    for v in values:
        avg = v if avg is None else (1 - alpha) * avg + alpha * v
        out.append(avg)
    return out


def plot_loss_curves(history, ax=None, *, title: str | None = None, max_steps: int | None = None):
    """Training loss per step (faint), its running average, and held-out loss at each evaluation.

    ``history`` is ``TrainResult.history`` from :func:`course_utils.train.train` (a list of
    dicts with ``step``, ``train_loss`` and ``val_loss``). Returns the axes.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.5))
    steps = [h["step"] for h in history if h.get("train_loss") is not None]
    losses = [h["train_loss"] for h in history if h.get("train_loss") is not None]
    evals = [(h["step"], h["val_loss"]) for h in history if h.get("val_loss") is not None]
    if steps:
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        ax.plot(steps, _ema(losses), color="tab:blue", label=f"train (last {losses[-1]:.3f})")
    if evals:
        ax.plot(*zip(*evals), "o-", color="tab:orange", markersize=3, label=f"validation (last {evals[-1][1]:.3f})")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    if max_steps:
        ax.set_xlim(0, max_steps)
    if title:
        ax.set_title(title)
    if steps or evals:
        ax.legend(loc="upper right")
    ax.grid(alpha=0.3)
    return ax


class LiveLossPlot:
    """A loss plot that redraws in place in a notebook while training runs.

    The figure is rendered to a PNG and shown through an IPython display handle, so it works
    with any Matplotlib backend, leaves no stray figure for the inline backend to show again,
    and runs headless (nbval). Outside IPython it does nothing. Redraws are throttled so
    plotting costs at most a few percent of training time.
    """

    def __init__(self, title: str = "training", max_steps: int | None = None, min_interval_s: float = 2.0):
        self.title, self.max_steps, self.min_interval_s = title, max_steps, min_interval_s
        self._handle = None
        self._last = 0.0
        self._render_s = 0.0
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
        if shell is None or not hasattr(shell, "kernel"):
            return  # plain Python or a terminal IPython: no live plot
        from matplotlib.figure import Figure

        self._fig = Figure(figsize=(7, 3.5), dpi=90, layout="tight")  # not pyplot's: never auto-shown
        self._ax = self._fig.add_subplot()
        from IPython.display import display

        self._handle = display(self._render([]), display_id=True)
        self._last = 0.0  # the first real update draws at once

    @property
    def active(self) -> bool:
        return self._handle is not None

    def _render(self, history):
        import io
        import time

        from IPython.display import Image

        start = time.perf_counter()
        self._ax.clear()
        plot_loss_curves(history, self._ax, title=self.title, max_steps=self.max_steps)
        buf = io.BytesIO()
        self._fig.savefig(buf, format="png")
        self._render_s = time.perf_counter() - start
        return Image(data=buf.getvalue(), format="png")

    def update(self, history, force: bool = False) -> None:
        import time

        if self._handle is None:
            return
        now = time.perf_counter()
        # Redraw at most every min_interval_s, and never spend more than ~5 % of the time drawing.
        if force or now - self._last >= max(self.min_interval_s, 20 * self._render_s):
            self._handle.update(self._render(history))
            self._last = time.perf_counter()

    def close(self) -> None:
        self._handle = None


# ----------------------------------------------------------------------------- attention maps (model.py)

def plot_attention(attention, tokens=None, *, ax=None, title: str | None = None, max_heads: int = 8,
                   cmap: str = "Blues"):
    """Heat map of attention weights: row = the token that looks (query), column = the token it looks at (key).

    ``attention`` is one map (T, T), one per head (n_head, T, T), or a batch of one
    (1, n_head, T, T), e.g. an entry of the list ``GPT(..., return_attention=True)`` returns.
    With several heads, each gets its own panel (at most ``max_heads``). ``tokens`` labels
    the axes (strings, one per position). Each row sums to 1; the empty upper triangle is the
    causal mask: no token looks ahead. Returns the Matplotlib figure.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    if hasattr(attention, "detach"):  # a torch tensor
        attention = attention.detach().float().cpu().numpy()
    maps = np.asarray(attention, dtype=float)
    while maps.ndim > 3 and maps.shape[0] == 1:
        maps = maps[0]
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[-2] > maps.shape[-1]:
        raise ValueError(f"expected attention of shape (T, T), (n_head, T, T) or (1, n_head, T, T), got {np.shape(attention)}")
    maps = maps[:max_heads]
    n, T, S = maps.shape
    if ax is not None and n != 1:
        raise ValueError("ax= takes a single map; pass one head, e.g. attention[0, h]")
    if ax is None:
        side = min(5.0, 1.2 + 0.35 * S)
        fig, axes = plt.subplots(1, n, figsize=(side * n, side), squeeze=False, layout="constrained")
        axes = axes[0]
    else:
        fig, axes = ax.figure, [ax]
    for h, (a, m) in enumerate(zip(axes, maps)):
        im = a.imshow(m, cmap=cmap, vmin=0.0, vmax=1.0)
        if tokens is not None:
            a.set_xticks(range(S), [str(t) for t in tokens][-S:], rotation=90)
            a.set_yticks(range(T), [str(t) for t in tokens][-T:])
        a.set_xlabel("looks at (key)")
        if h == 0:
            a.set_ylabel("token (query)")
        if n > 1:
            a.set_title(f"head {h}")
    fig.colorbar(im, ax=list(axes), shrink=0.8, label="attention weight")
    if title and ax is not None:
        ax.set_title(title)
    elif title:
        fig.suptitle(title)
    return fig


# ----------------------------------------------------------------------------- data cleaning (cleaning.py)

def plot_lsh_s_curve(bands: int, rows: int, *, threshold: float | None = None, others=(), pair_similarities=None,
                     ax=None):
    """The MinHash-LSH S-curve: chance that a pair with Jaccard similarity s becomes a candidate.

    ``others`` are extra (bands, rows) settings drawn faintly for comparison; ``threshold`` marks the
    verification cut; ``pair_similarities`` (e.g. {"near-duplicate pairs": [...], "random pairs": [...]})
    are drawn as ticks along the bottom so you see where real pairs fall on the curve. Returns the axes.
    """
    import numpy as np

    from .cleaning import lsh_detection_probability

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.8))
    s = np.linspace(0, 1, 201)
    for b, r in others:
        ax.plot(s, lsh_detection_probability(s, b, r), linewidth=1, alpha=0.45, label=f"b={b}, r={r}")
    ax.plot(s, lsh_detection_probability(s, bands, rows), color="black", linewidth=2.2,
            label=f"b={bands}, r={rows} (ours)")
    ax.axvline((1 / bands) ** (1 / rows), color="gray", linestyle=":", linewidth=1)
    if threshold is not None:
        ax.axvline(threshold, color="tab:red", linestyle="--", linewidth=1, label=f"keep if estimate ≥ {threshold}")
    for k, (name, values) in enumerate((pair_similarities or {}).items()):
        y = -0.04 - 0.05 * k
        ax.plot(values, np.full(len(values), y), "|", markersize=9, alpha=0.5, label=name,
                color=("tab:green", "tab:purple", "tab:orange")[k % 3])
    ax.set_xlabel("Jaccard similarity of the two documents")
    ax.set_ylabel("probability of being compared")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.05 - 0.05 * len(pair_similarities or {}), 1.03)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    ax.set_title("LSH banding: similar pairs get compared, dissimilar ones almost never")
    return ax


def plot_cleaning_funnel(counts, ax=None):
    """How many pages each filter removed and how many survive (``CleaningReport.counts()``)."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.2))
    steps = [row["step"] for row in counts]
    out = [row["pages_out"] for row in counts]
    removed = [row["removed"] for row in counts]
    ax.barh(steps, out, color="tab:blue", label="pages left")
    ax.barh(steps, removed, left=out, color="tab:red", alpha=0.6, label="removed here")
    for y, (o, r) in enumerate(zip(out, removed)):
        ax.text(o + r, y, f"  -{r}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("pages")
    ax.set_title(f"The cleaning funnel: {counts[0]['pages_in']} crawled pages → {counts[-1]['pages_out']} documents")
    ax.legend(loc="lower right", fontsize=8)
    return ax


def plot_filter_scores(scores, target: float | None = 0.95, ax=None):
    """Precision and recall of each filter against the hidden labels (``cleaning.score_against_labels``)."""
    import numpy as np

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.2))
    names = [row["filter"] for row in scores]
    x = np.arange(len(names))
    ax.bar(x - 0.2, [row["precision"] for row in scores], width=0.4, label="precision")
    ax.bar(x + 0.2, [row["recall"] for row in scores], width=0.4, label="recall")
    strict = [(i, row["precision_same_document"]) for i, row in enumerate(scores) if "precision_same_document" in row]
    if strict:  # dedup filters: precision counting only labelled copies of the same document
        ax.plot([x[i] - 0.2 for i, _ in strict], [v for _, v in strict], "kx", markersize=9,
                label="precision, same-document copies only")
    if target is not None:
        ax.axhline(target, color="gray", linestyle="--", linewidth=1, label=f"target {target}")
    ax.set_xticks(x, names)
    ax.set_ylim(0, 1.05)
    ax.set_title("Each filter against the crawl's hidden labels")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=8, frameon=False)
    return ax


def plot_score_histogram(groups: dict, threshold: float | None = None, *, xlabel: str = "score", bins: int = 30,
                         title: str | None = None, ax=None):
    """Overlaid histograms of a score for several groups of pages (e.g. spam vs the rest), with
    the decision threshold as a dashed line. ``groups`` maps a label to a list of scores."""
    import numpy as np

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.2))
    values = [v for vs in groups.values() for v in vs]
    edges = np.linspace(min(values, default=0), max(values, default=1) or 1, bins + 1)
    for name, vs in groups.items():
        ax.hist(vs, bins=edges, alpha=0.55, label=f"{name} ({len(vs)})")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", linewidth=1, label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("pages (log scale)")
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    return ax


# ----------------------------------------------------------------------------- the transformer (chapter 03)

def plot_rope(rope, config, scores):
    """Rotary position embedding in two panels (returns the figure).

    Left: an arrow of a query (or key) in two of its coordinate pairs, turned by ``rope`` (a
    :class:`course_utils.model.RotaryEmbedding`) as if it sat at positions 0, 1, 2, ...: pair 0
    turns fast, pair 1 slower. Right: ``scores[m, n]``, the score of a query at position m
    against a key at position n, which depends only on m - n. ``config`` gives ``head_dim``
    and ``rope_base``.
    """
    import math

    import matplotlib.pyplot as plt
    import torch

    half = config.head_dim // 2
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
    for i, length, shown, color in [(0, 1.0, range(6), "tab:blue"), (1, 0.6, range(0, 16, 3), "tab:orange")]:
        e = torch.zeros(1, config.head_dim)
        e[0, i] = length  # an arrow along the first axis of pair i (the pair is numbers i and i + half)
        for m in shown:
            turned = rope(e, start=m)[0]  # the same arrow, placed at position m
            px, py = turned[i].item(), turned[i + half].item()
            left.plot([0, px], [0, py], color=color, alpha=0.8)
            left.annotate(str(m), (px, py), textcoords="offset points", xytext=(3, 3), fontsize=8, color=color)
        step = math.degrees(config.rope_base ** (-2 * i / config.head_dim))
        left.plot([], [], color=color, label=f"pair {i}: turns {step:.1f}° per position")
    left.set_aspect("equal")
    left.set(xlim=(-1.2, 1.2), ylim=(-1.2, 1.2), title="an arrow of q (or k), turned at positions 0, 1, 2, ...")
    left.legend(loc="lower left", fontsize=8)
    if hasattr(scores, "detach"):  # a torch tensor
        scores = scores.detach().float().cpu().numpy()
    im = right.imshow(scores, cmap="RdBu_r")
    right.set_xlabel("key position n")
    right.set_ylabel("query position m")
    right.set_title("score q·k: constant along each diagonal")
    fig.colorbar(im, ax=right, shrink=0.8)
    return fig


def plot_param_breakdown(parts: dict, *, title: str | None = None, ax=None):
    """Where a model's parameters sit: one bar per part (``GPT.param_breakdown()``), labelled
    with its count and share of the total. Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 2.6), layout="constrained")
    total = sum(parts.values())
    ax.barh(list(parts), list(parts.values()), color="tab:blue")
    for i, n in enumerate(parts.values()):
        ax.text(n, i, f" {n:,} ({n / max(1, total):.0%})", va="center", fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(parts.values()) * 1.45)
    ax.set_xticks([])
    ax.set_title(title or f"where the {total:,} parameters sit")
    return ax


# ----------------------------------------------------------------------------- the next token (chapters 05, 07)

def plot_next_tokens(panels: dict, *, ylabel: str = "probability", colors=None):
    """Bars of the most likely next tokens, one panel per entry of ``panels`` (title ->
    :class:`course_utils.generate.NextTokens`), on a shared probability axis. ``colors``: one
    per panel. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.2), sharey=True, squeeze=False,
                             layout="constrained")
    axes = axes[0]
    for k, (ax, (title, top)) in enumerate(zip(axes, panels.items())):
        ax.bar(range(len(top.probs)), top.probs, color=colors[k] if colors else "tab:blue")
        # Matplotlib's default font has no Chinese glyphs: show non-ASCII tokens (and newlines) as escapes.
        ax.set_xticks(range(len(top.tokens)), [ascii(t)[1:-1] for t in top.tokens], rotation=70, fontsize=8)
        ax.set_title(title)
    axes[0].set_ylabel(ylabel)
    return fig


# ----------------------------------------------------------------------------- fine-tuning (chapters 06, 07)

def plot_base_vs_sft(rows: dict, *, names=("base", "sft"), title: str | None = None, ax=None):
    """Two models side by side on a few rates: ``rows`` maps a measure to ``(before, after)``
    (shares in 0..1), drawn as a pair of bars labelled with ``names``. Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    for k, (before, after) in enumerate(rows.values()):
        ax.barh([2 * k + 0.4, 2 * k], [before, after], color=["tab:gray", "tab:green"], height=0.4)
        ax.text(before + 0.01, 2 * k + 0.4, f"{names[0]} {before:.0%}", va="center")
        ax.text(after + 0.01, 2 * k, f"{names[1]} {after:.0%}", va="center")
    ax.set_yticks([2 * k + 0.2 for k in range(len(rows))], list(rows))
    ax.set_xlim(0, 1.2)
    if title:
        ax.set_title(title)
    return ax


def plot_sft_ablation(results: dict, metrics: Sequence[str]):
    """One panel per measure in ``metrics``, one bar per run: ``results`` maps a run's name
    (e.g. "assistant tokens only") to its measures. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 3), squeeze=False, layout="constrained")
    names = list(results)
    for ax, metric in zip(axes[0], metrics):
        values = [results[n][metric] for n in names]
        ax.bar(names, values, color=["tab:green", "tab:orange", "tab:blue", "tab:red"][:len(names)])
        for k, v in enumerate(values):
            ax.text(k, v, f"{v:.3f}", ha="center", va="bottom")
        ax.set_title(metric)
    return fig


def plot_honesty_tradeoff(sweep: Sequence[dict], *, sft_accuracy: float, recipe_share: float,
                          title: str = "The honesty trade-off", ax=None):
    """Rates against the share of "I don't know" conversations in the fine-tuning mix: ``sweep``
    holds one row per share, ``{"share": ..., measure: rate, ...}``, each measure a line. The
    known-fact accuracy of ``sft`` before fine-tuning and the recipe's share are marked.
    Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(9, 3.5), layout="constrained")
    x = [100 * r["share"] for r in sweep]
    measures = [k for k in sweep[0] if k != "share"] if sweep else []
    for key, colour in zip(measures, ["tab:blue", "tab:green", "tab:red", "tab:purple", "tab:orange"]):
        ax.plot(x, [100 * r[key] for r in sweep], "o-", color=colour, label=key)
    ax.axhline(100 * sft_accuracy, color="tab:green", ls=":", label="known facts, sft")
    ax.axvline(100 * recipe_share, color="gray", ls="--", lw=1, label="the recipe's share")
    ax.set_xlabel("share of 'I don't know' conversations in the fine-tuning mix (%)")
    ax.set_ylabel("%")
    ax.set_ylim(-5, 105)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    ax.set_title(title)
    return ax


def plot_arithmetic_accuracy(accuracies: dict, *, n_problems: int, ax=None):
    """Accuracy on held-out arithmetic problems, one bar per setting (``accuracies`` maps a
    label to a share in 0..1). Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3), layout="constrained")
    colors = ["tab:gray", "tab:orange", "tab:green", "tab:blue", "tab:red"]
    ax.bar(list(accuracies), list(accuracies.values()), color=colors[:len(accuracies)])
    for k, v in enumerate(accuracies.values()):
        ax.text(k, v, f"{v:.0%}", ha="center", va="bottom")
    ax.set_ylim(0, 1.1)
    ax.set_title(f"{n_problems} held-out three-digit problems")
    return ax



# ----------------------------------------------------------------------------- reward model and RL (chapters 08-09)

def plot_calibration(rows, ax=None, *, title: str = "Reward model calibration (held-out comparisons)"):
    """Predicted ``sigmoid(r_a - r_b)`` against how often raters really preferred ``a``
    (rows from :func:`course_utils.reward.calibration`); the diagonal is perfect calibration."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(4.2, 4.2))
    ax.plot([0, 1], [0, 1], color="gray", linestyle="--", linewidth=1, label="perfectly calibrated")
    pred = [r["predicted"] for r in rows]
    obs = [r["observed"] for r in rows]
    sizes = [20 + 200 * r["n"] / max(1, max(x["n"] for x in rows)) for r in rows]
    ax.plot(pred, obs, color="tab:blue", linewidth=1)
    ax.scatter(pred, obs, s=sizes, color="tab:blue", zorder=3, label="reward model (dot size = pairs)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted P(rater prefers A)")
    ax.set_ylabel("observed share preferring A")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return ax


RL_CURVES = {"score": "reward model score", "kl": "KL to sft_tools (nats/answer)",
             "judge": "hidden rubric (the 'humans')", "length": "answer length (tokens)",
             "reward": "reward of the sampled answers", "right": "sampled answers right (strict)",
             "loose_only": "passed the loose check only", "several_numbers": "answers listing several numbers",
             "eval_accuracy": "held-out problems right (greedy)", "thinking_tokens": "thinking (tokens per answer)",
             "written_tokens": "tokens written per answer",
             "tool_call_rate": "answers that call the calculator"}


def plot_rl_history(runs: dict, axes=None, *, keys=("score", "kl", "judge"), smooth: float = 0.2,
                    xlabel: str = "PPO step"):
    """RL curves, one line per run: ``runs`` maps a label to a history (``PPOResult.history``
    or ``GRPOResult.history``), ``keys`` picks the panels (titles in :data:`RL_CURVES`).

    For PPO: the reward model's score of the sampled answers, their KL to the reference, and
    (when recorded) the hidden rubric's judgement of the same answers. Lines are smoothed
    (exponential moving average); the raw values are drawn faintly. A quantity recorded only
    now and then (a held-out evaluation) is drawn with markers, unsmoothed.
    """
    labels = RL_CURVES
    keys = [k for k in keys if any(k in h for hist in runs.values() for h in hist)]
    if axes is None:
        import matplotlib.pyplot as plt

        _, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.2))
    axes = list(axes) if hasattr(axes, "__len__") else [axes]
    for ax, key in zip(axes, keys):
        for i, (label, hist) in enumerate(runs.items()):
            pts = [(h["step"], h[key]) for h in hist if key in h]
            if not pts:
                continue
            steps, vals = zip(*pts)
            color = f"C{i}"
            if len(pts) < len(hist) / 2:  # sparse: an evaluation every few steps
                ax.plot(steps, vals, color=color, marker="o", label=label)
                continue
            ax.plot(steps, vals, color=color, alpha=0.2, linewidth=0.8)
            ax.plot(steps, _ema(vals, smooth), color=color, label=label)
        ax.set_title(labels.get(key, key))
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return axes


def plot_reward_training(history, *, noise_ceiling: float):
    """The reward model's training in two panels (returns the figure): its Bradley–Terry loss
    (:func:`plot_loss_curves`) and its held-out pairwise accuracy at each evaluation, against
    the rater-noise ceiling and a coin flip."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
    plot_loss_curves(history, ax=a, title="Bradley–Terry loss")
    evals = [h for h in history if "val_accuracy" in h]
    b.plot([h["step"] for h in evals], [h["val_accuracy"] for h in evals], "o-", label="held-out accuracy")
    b.axhline(noise_ceiling, color="tab:green", linestyle="--", label=f"noise ceiling {noise_ceiling:.1%}")
    b.axhline(0.5, color="gray", linestyle=":", label="coin flip")
    b.set_xlabel("step")
    b.set_ylim(0.4, 1.0)
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    b.set_title("pairwise accuracy on held-out questions")
    return fig


def plot_answer_scores(panels: dict):
    """The reward model's scores of hand-written answers, one panel per question: ``panels``
    maps a question to ``(name, score, rubric)`` rows. A bar is green where the hidden rubric
    likes the answer (rubric > 0), red where it does not. Returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 3.2), squeeze=False, layout="constrained")
    for ax, (question, rows) in zip(axes[0], panels.items()):
        ax.barh([name for name, _, _ in rows], [score for _, score, _ in rows],
                color=["tab:green" if rubric > 0 else "tab:red" for _, _, rubric in rows])
        ax.invert_yaxis()
        ax.set_xlabel("reward model score")
        ax.set_title(question, fontsize=9)
    return fig


def plot_policy_comparison(models: dict, *, ceiling: float, greedy_ceiling: float):
    """Policies side by side in three panels (returns the figure): win rate against ``sft_tools``
    by the hidden rubric, sampled and greedy (each against ``sft_tools`` decoding the same way),
    KL to ``sft_tools`` and training compute. ``models`` maps a name to ``{"win_rate",
    "greedy_win_rate", "kl", "seconds"}``. The win-rate panel marks 50 % (no better) and each
    decoding's ceiling (a perfect model's win rate)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 3, figsize=(12, 3), layout="constrained")
    names = list(models)
    x = np.arange(len(names))
    win = axes[0]
    win.bar(x - 0.2, [models[n]["win_rate"] for n in names], 0.4, color="tab:blue", label="sampled")
    win.bar(x + 0.2, [models[n]["greedy_win_rate"] for n in names], 0.4, color="tab:orange", label="greedy")
    win.axhline(0.5, color="black", linewidth=0.8)
    win.axhline(ceiling, color="tab:blue", linestyle=":", linewidth=1, label="ceiling, sampled")
    win.axhline(greedy_ceiling, color="tab:orange", linestyle=":", linewidth=1, label="ceiling, greedy")
    win.set_xticks(x, names)
    win.set_ylim(0, 1)
    win.set_title("win rate vs sft_tools (hidden rubric)", fontsize=10)
    win.legend(fontsize=7)
    for ax, (key, title) in zip(axes[1:], [("kl", "KL to sft_tools (nats per answer)"),
                                           ("seconds", "training compute (s)")]):
        ax.bar(names, [models[n][key] for n in names], color="tab:gray")
        ax.set_title(title, fontsize=10)
    for ax in axes:
        ax.tick_params(axis="x", rotation=20)
    return fig


# ----------------------------------------------------------------------------- chapter 10

def plot_pass_at_k(curves: dict, ax=None, *, title: str = "pass@k on held-out word problems (difficulty 3-5)"):
    """pass@k against k (log axis), one line per model: ``curves`` maps a label to ``{k: pass@k}``."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3.6))
    for i, (label, table) in enumerate(curves.items()):
        ks = sorted(int(k) for k in table)
        ax.plot(ks, [table[k] if k in table else table[str(k)] for k in ks], marker="o", color=f"C{i}", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("k: answers sampled per problem")
    ax.set_ylabel("share of problems solved by at least one")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_token_weights(lengths: Sequence[int], weights: dict, ax=None):
    """How hard the loss pushes down each token of a wrong answer, by the answer's length:
    ``weights`` maps a way of averaging to one per-token weight per length."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3.4))
    for i, (label, values) in enumerate(weights.items()):
        ax.plot(lengths, [abs(v) for v in values], marker="o", color=f"C{i}", label=label)
    ax.set_xlabel("length of the wrong answer (tokens)")
    ax.set_ylabel("push per token (relative)")
    ax.set_title("Each token of a wrong answer: how much it is pushed down")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax


def plot_accuracy_by_difficulty(models: dict, ax=None):
    """Grouped bars: greedy accuracy per difficulty, one colour per model (``{label: {difficulty: accuracy}}``)."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3.4))
    n = len(models)
    width = 0.8 / max(1, n)
    for i, (label, table) in enumerate(models.items()):
        ds = sorted(int(d) for d in table)
        xs = [d + (i - (n - 1) / 2) * width for d in ds]
        ax.bar(xs, [table[d] if d in table else table[str(d)] for d in ds], width=width, color=f"C{i}", label=label)
    ax.set_xticks(ds, [f"difficulty {d}" for d in ds])
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out problems right (greedy)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return ax


# ----------------------------------------------------------------------------- scaling (chapter 14)

def plot_flop_shares(counts: dict, ax=None):
    """Where a token's FLOPs go, one stacked bar per model: ``counts`` maps a label to a
    :class:`course_utils.scaling.FlopCount`. Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(10, 0.8 + 0.5 * len(counts)), layout="constrained")
    parts = (("attention_proj", "q, k, v, out projections", "tab:blue"),
             ("attention_scores", "attention scores (grow with context)", "tab:cyan"),
             ("mlp", "MLP", "tab:green"), ("head", "output head (the token table)", "tab:orange"))
    for i, count in enumerate(counts.values()):
        left = 0.0
        for key, label, color in parts:
            share = getattr(count, key) / count.forward
            ax.barh(i, share, left=left, color=color, label=label if i == 0 else None)
            if share > 0.06:
                ax.text(left + share / 2, i, f"{share:.0%}", ha="center", va="center", fontsize=8)
            left += share
    ax.set_yticks(range(len(counts)), list(counts))
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of the FLOPs per token")
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8)
    return ax


def plot_scaling_law(n, loss, laws: dict, *, check=None, xlabel: str = "parameters N", ax=None):
    """Losses of the sweep against size on log-log axes, each fitted law of ``laws`` (label ->
    :class:`course_utils.scaling.PowerLaw`) drawn out to the check model, and the check model
    (``(n, loss)``) measured. Returns the axes."""
    import numpy as np

    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 4), layout="constrained")
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    top = max(n) if check is None else max(max(n), check[0])
    grid = np.geomspace(min(n) * 0.8, top * 1.5, 100)
    ax.plot(n, loss, "o", color="tab:blue", markersize=7, label="sweep: trained")
    for k, ((label, law), style) in enumerate(zip(laws.items(), ("-", "--", ":"))):
        ax.plot(grid, law(grid), style, color="tab:gray", label=label)
        if check is not None:
            ax.plot(check[0], law(check[0]), "x", color="tab:gray", markersize=10, markeredgewidth=2,
                    label="predicted" if k == 0 else None)
    if check is not None:
        ax.plot(*check, "*", color="tab:red", markersize=14, label="check run: trained")
    ax.set_xscale("log")
    ax.set_yscale("log")
    # Plain numbers on the axes (not 10^x), and no labels on the minor ticks, which would overlap.
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("held-out loss (nats per token)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return ax


def plot_loss_overlay(runs: dict, ax=None):
    """Training losses of several runs on one axes, drawn so that identical curves stay visible
    (a line, dashes, dots): ``runs`` maps a label to a list of losses per step. Returns the axes."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    styles = (dict(linestyle="-", linewidth=4, alpha=0.35), dict(linestyle="--", linewidth=2),
              dict(linestyle="none", marker="o", markersize=4))
    for (label, losses), style in zip(runs.items(), styles * 2):
        ax.plot(range(1, len(losses) + 1), losses, label=label, **style)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def plot_memory(setups: dict, *, gpu_bytes: float = 80e9, ax=None):
    """Training memory per GPU, one stacked bar per setup: ``setups`` maps a label to the parts
    of :func:`course_utils.scaling.training_memory` (bytes); a line marks one GPU's memory."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(8, 0.6 + 0.5 * len(setups)), layout="constrained")
    colors = {"weights": "tab:blue", "gradients": "tab:orange", "optimizer": "tab:red", "activations": "tab:green"}
    for i, parts in enumerate(setups.values()):
        left = 0.0
        for key, color in colors.items():
            ax.barh(i, parts[key] / 1e9, left=left, color=color, label=key if i == 0 else None)
            left += parts[key] / 1e9
        ax.text(left, i, f" {left:,.0f} GB", va="center", fontsize=8)
    ax.axvline(gpu_bytes / 1e9, color="black", linestyle="--", linewidth=1, label=f"one GPU: {gpu_bytes / 1e9:.0f} GB")
    ax.set_yticks(range(len(setups)), list(setups))
    ax.invert_yaxis()
    ax.set_xlabel("GB per GPU")
    ax.legend(fontsize=8, loc="lower right")
    return ax


# ----------------------------------------------------------------------------- the report card (chapter 12)

def plot_report_heatmap(card: dict, ax=None):
    """The report card's normalised scores (:mod:`course_utils.report_card`) as a heat map: one row
    per task, one column per stage; 0 (chance) white, 1 (perfect) dark green, below chance red.
    Cells that do not apply read "n/a", stages not built "–". Returns the axes."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    tasks, names = card["tasks"], card["stages"]
    if ax is None:
        _, ax = plt.subplots(figsize=(1.3 * len(names) + 3.5, 0.45 * len(tasks) + 1.2), layout="constrained")
    grid = np.full((len(tasks), len(names)), np.nan)
    for i, t in enumerate(tasks):
        for j, s in enumerate(names):
            cell = card["cells"][t["name"]][s]
            if cell["status"] == "ok" and cell["score"] is not None:
                grid[i, j] = cell["score"]
    lowest = np.nanmin(grid) if np.isfinite(grid).any() else 0.0
    norm = TwoSlopeNorm(vmin=min(-0.25, lowest), vcenter=0.0, vmax=1.0)
    cmap = plt.get_cmap("RdYlGn").with_extremes(bad="#e6e6e6")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, norm=norm, aspect="auto")
    for i, t in enumerate(tasks):
        for j, s in enumerate(names):
            cell = card["cells"][t["name"]][s]
            text = ("n/a" if cell["status"] == "n/a" else "–" if cell["status"] != "ok" or cell["score"] is None
                    else f"{cell['score']:.2f}")
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="#555555" if text in ("n/a", "–") else "black")
    ax.set_xticks(range(len(names)), names)
    ax.set_yticks(range(len(tasks)), [t["title"] for t in tasks])
    ax.tick_params(top=True, bottom=False, labeltop=True, labelbottom=False)
    plt.colorbar(image, ax=ax, label="score above chance (0 = chance, 1 = perfect)", shrink=0.8)
    ax.set_title(f"Report card ({card['profile']} profile)", pad=12)
    return ax


def plot_skills_along_chain(card: dict, axes=None):
    """One small panel per task: each stage's normalised score with its 95 % interval, a line
    from the stage it was trained from, chance at 0. The chain branches (dpo comes from
    sft_tools, as rlhf does): a side branch is drawn dashed, in orange. Where the line climbs the stage bought the skill; where it falls, it
    paid for something else with it. Returns the figure."""
    import math

    import matplotlib.pyplot as plt

    tasks, names = card["tasks"], card["stages"]
    cols = 3
    rows = math.ceil(len(tasks) / cols)
    if axes is None:
        fig, axes = plt.subplots(rows, cols, figsize=(12, 2.6 * rows), sharex=True, layout="constrained")
    else:
        fig = axes.flat[0].figure
    x = {s: i for i, s in enumerate(names)}
    # A stage's first child continues the main line; a later one (dpo after rlhf) is a side branch.
    first_child: dict[str, str] = {}
    for s in names:
        first_child.setdefault(card["parents"].get(s), s)
    side = {s for s in names if card["parents"].get(s) and first_child[card["parents"][s]] != s}
    for ax, t in zip(axes.flat, tasks):
        row = card["cells"][t["name"]]
        ok = {s: c for s, c in row.items() if c["status"] == "ok" and c["score"] is not None}
        for s, c in ok.items():
            parent = card["parents"].get(s)
            color = "tab:orange" if s in side else "tab:blue"
            if parent in ok:
                ax.plot([x[parent], x[s]], [ok[parent]["score"], c["score"]], color=color, linewidth=1.5,
                        linestyle="--" if s in side else "-", gid="chain")
            ax.errorbar(x[s], c["score"], yerr=[[max(0.0, c["score"] - c["score_low"])],
                                                [max(0.0, c["score_high"] - c["score"])]],
                        fmt="o", color=color, capsize=3, markersize=4)
        for s, c in row.items():
            if c["status"] == "n/a":
                ax.text(x[s], 0.5, "n/a", ha="center", va="center", fontsize=8, color="gray")
        ax.axhline(0, color="gray", linestyle="--", linewidth=0.8)
        ax.set_ylim(min(-0.1, min((c["score_low"] for c in ok.values()), default=0) - 0.05), 1.05)
        ax.set_title(t["title"], fontsize=9)
        ax.grid(alpha=0.3)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_xlim(-0.5, len(names) - 0.5)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    fig.supylabel("score above chance")
    return fig
