"""Figures the chapters share. Each function draws on a Matplotlib axes (or makes its own figure)."""
from __future__ import annotations


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


def plot_rl_history(runs: dict, axes=None, *, keys=("score", "kl", "judge"), smooth: float = 0.2):
    """PPO curves, one line per run: ``runs`` maps a label to ``PPOResult.history``.

    Panels: the reward model's score of the sampled answers, their KL to the reference, and
    (when recorded) the hidden rubric's judgement of the same answers. Lines are smoothed
    (exponential moving average); the raw values are drawn faintly.
    """
    labels = {"score": "reward model score", "kl": "KL to sft_tools (nats/answer)",
              "judge": "hidden rubric (the 'humans')", "length": "answer length (tokens)"}
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
            ax.plot(steps, vals, color=color, alpha=0.2, linewidth=0.8)
            ax.plot(steps, _ema(vals, smooth), color=color, label=label)
        ax.set_title(labels.get(key, key))
        ax.set_xlabel("PPO step")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    return axes
