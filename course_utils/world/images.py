"""Pictures from the world, drawn with numpy only: its countries' flags and scenes of shapes.

No downloads and no image library: every picture is a small RGB array (``IMAGE_SIZE``, values in
[0, 1]) painted from a recipe. Each picture comes with questions that have one exact answer:

- a **flag** of one of the world's countries, as stripes and simple shapes in its colours
  ("Which country's flag is this?" -> "France"; "What colour is the top stripe of this flag?" -> "blue");
- a **scene** of 1 to :data:`MAX_COUNT` shapes of one kind and one colour on a grey ground
  ("How many circles are there?" -> "3"; "What colour are the circles?" -> "green").

The flags are simplified (no coats of arms, stars become discs), but no two look alike. Every
picture is drawn a little differently each time: the flag's size and place on the canvas, the
exact shades, a little noise; the shapes' sizes and places. A *held-out* picture is a fresh
drawing from its own random stream (``split="test"``), never seen in training.

Everything is deterministic per seed: the same ``(world, split, n)`` gives identical pictures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .facts import World, component_rng

IMAGE_SIZE = (24, 32)  # (height, width) in pixels: a 3:4 canvas that holds a 3:2 flag with room to move
MAX_COUNT = 4  # shapes in a scene: 1..MAX_COUNT

# The colours a question may be about, and how each is painted (RGB in [0, 1]).
COLOURS = {
    "red": (0.82, 0.08, 0.12),
    "white": (0.97, 0.97, 0.97),
    "blue": (0.08, 0.18, 0.62),
    "green": (0.02, 0.52, 0.22),
    "yellow": (0.99, 0.80, 0.05),
    "black": (0.06, 0.06, 0.06),
    "orange": (0.98, 0.50, 0.06),
    "light blue": (0.45, 0.70, 0.93),
}
# Painted but never asked about: an emblem's colour on a flag.
_OTHER_COLOURS = {"brown": (0.50, 0.30, 0.10)}
BACKGROUND = (0.50, 0.50, 0.50)  # the canvas around a flag and under a scene: a grey no question asks about

SHAPES = ("circle", "square", "triangle")
SCENE_COLOURS = ("red", "white", "blue", "green", "yellow", "black", "orange")

# What each question kind asks, for the chapter's tables.
KINDS = ("flag", "colour", "count")


# ----------------------------------------------------------------------------- flags as recipes

@dataclass(frozen=True)
class Layer:
    """One shape painted over the flag, in flag coordinates: u from the hoist (0) to the fly (1),
    v from the top (0) to the bottom (1). Distances of discs are in flag heights."""

    shape: str  # "rect", "disc", "triangle", "diamond", "saltire"
    colour: str
    params: tuple[float, ...]


@dataclass(frozen=True)
class Flag:
    """A country's flag: layers painted in order, and the parts a colour question may ask about
    (e.g. ``{"top stripe": "black"}``)."""

    layers: tuple[Layer, ...]
    parts: dict[str, str] = field(hash=False)


def _stripes(colours: Sequence[str], weights: Sequence[float] | None, vertical: bool) -> list[Layer]:
    weights = list(weights or [1.0] * len(colours))
    edges = np.concatenate([[0.0], np.cumsum(weights) / sum(weights)])
    return [Layer("rect", c, (a, 0.0, b, 1.0) if vertical else (0.0, a, 1.0, b))
            for c, a, b in zip(colours, edges[:-1], edges[1:])]


def _h(*colours, weights=None, then=()) -> Flag:
    """Horizontal stripes, top to bottom, then more layers."""
    return Flag(tuple(_stripes(colours, weights, vertical=False)) + tuple(then),
                {"top stripe": colours[0], "bottom stripe": colours[-1]})


def _v(*colours, weights=None, then=()) -> Flag:
    """Vertical stripes, hoist to fly, then more layers."""
    return Flag(tuple(_stripes(colours, weights, vertical=True)) + tuple(then),
                {"left stripe": colours[0], "right stripe": colours[-1]})


def _field(colour, then=()) -> Flag:
    """One colour all over, then more layers."""
    return Flag((Layer("rect", colour, (0.0, 0.0, 1.0, 1.0)),) + tuple(then), {"background": colour})


def _rect(colour, u0, v0, u1, v1) -> Layer:
    return Layer("rect", colour, (u0, v0, u1, v1))


def _disc(colour, u, v, r) -> Layer:
    return Layer("disc", colour, (u, v, r))


def _nordic(colour, width, inner=None) -> list[Layer]:
    """A Nordic cross: its upright sits towards the hoist."""
    w = width / 2
    cross = [_rect(colour, 0.36 - w / 1.5, 0.0, 0.36 + w / 1.5, 1.0), _rect(colour, 0.0, 0.5 - w, 1.0, 0.5 + w)]
    if inner:
        w /= 2
        cross += [_rect(inner, 0.36 - w / 1.5, 0.0, 0.36 + w / 1.5, 1.0), _rect(inner, 0.0, 0.5 - w, 1.0, 0.5 + w)]
    return cross


def _union_canton() -> list[Layer]:
    """The Union Jack in the top-left quarter, reduced to a white-bordered red cross on blue."""
    return [_rect("blue", 0.0, 0.0, 0.5, 0.5),
            _rect("white", 0.0, 0.19, 0.5, 0.31), _rect("white", 0.21, 0.0, 0.29, 0.5),
            _rect("red", 0.0, 0.22, 0.5, 0.28), _rect("red", 0.23, 0.0, 0.27, 0.5)]


FLAGS: dict[str, Flag] = {
    "France": _v("blue", "white", "red"),
    "Germany": _h("black", "red", "yellow"),
    "Italy": _v("green", "white", "red"),
    "Spain": _h("red", "yellow", "red", weights=(1, 2, 1)),
    "Portugal": _v("green", "red", weights=(2, 3), then=[_disc("yellow", 0.4, 0.5, 0.2)]),
    "United Kingdom": _field("blue", then=[Layer("saltire", "white", (0.16,)), Layer("saltire", "red", (0.06,)),
                                          _rect("white", 0.0, 0.34, 1.0, 0.66), _rect("white", 0.42, 0.0, 0.58, 1.0),
                                          _rect("red", 0.0, 0.40, 1.0, 0.60), _rect("red", 0.45, 0.0, 0.55, 1.0)]),
    "Ireland": _v("green", "white", "orange"),
    "Netherlands": _h("red", "white", "blue"),
    "Belgium": _v("black", "yellow", "red"),
    "Switzerland": _field("red", then=[_rect("white", 0.40, 0.2, 0.60, 0.8), _rect("white", 0.27, 0.40, 0.73, 0.60)]),
    "Austria": _h("red", "white", "red"),
    "Poland": _h("white", "red"),
    "Czechia": _h("white", "red", then=[Layer("triangle", "blue", (0.5,))]),
    "Hungary": _h("red", "white", "green"),
    "Greece": _h(*(["blue", "white"] * 4 + ["blue"]),
                 then=[_rect("blue", 0.0, 0.0, 0.37, 5 / 9), _rect("white", 0.0, 2 / 9, 0.37, 3 / 9),
                       _rect("white", 0.15, 0.0, 0.22, 5 / 9)]),
    "Sweden": _field("blue", then=_nordic("yellow", 0.2)),
    "Norway": _field("red", then=_nordic("white", 0.3, inner="blue")),
    "Finland": _field("white", then=_nordic("blue", 0.26)),
    "Russia": _h("white", "blue", "red"),
    "Ukraine": _h("blue", "yellow"),
    "Romania": _v("blue", "yellow", "red"),
    "Serbia": _h("red", "blue", "white", then=[_disc("white", 0.36, 0.45, 0.2), _disc("red", 0.36, 0.45, 0.12)]),
    "Bulgaria": _h("white", "green", "red"),
    "Turkey": _field("red", then=[_disc("white", 0.38, 0.5, 0.26), _disc("red", 0.43, 0.5, 0.21),
                                  _disc("white", 0.62, 0.5, 0.08)]),
    "Egypt": _h("red", "white", "black", then=[_disc("yellow", 0.5, 0.5, 0.12)]),
    "Nigeria": _v("green", "white", "green"),
    "Kenya": _h("black", "white", "red", "white", "green", weights=(3, 1, 3, 1, 3),
                then=[_disc("red", 0.5, 0.5, 0.2), _disc("black", 0.5, 0.5, 0.08)]),
    "Ethiopia": _h("green", "yellow", "red", then=[_disc("blue", 0.5, 0.5, 0.22)]),
    "South Africa": _h("red", "green", "blue", then=[Layer("triangle", "black", (0.38,))]),
    "Morocco": _field("red", then=[_disc("green", 0.5, 0.5, 0.2), _disc("red", 0.5, 0.5, 0.1)]),
    "Ghana": _h("red", "yellow", "green", then=[_disc("black", 0.5, 0.5, 0.13)]),
    "Sudan": _h("red", "white", "black", then=[Layer("triangle", "green", (0.4,))]),
    "India": _h("orange", "white", "green", then=[_disc("blue", 0.5, 0.5, 0.12)]),
    "China": _field("red", then=[_disc("yellow", 0.2, 0.3, 0.17), _disc("yellow", 0.38, 0.12, 0.05),
                                 _disc("yellow", 0.38, 0.45, 0.05)]),
    "Japan": _field("white", then=[_disc("red", 0.5, 0.5, 0.3)]),
    "South Korea": _field("white", then=[_disc("blue", 0.5, 0.5, 0.26), Layer("halfdisc", "red", (0.5, 0.5, 0.26)),
                                         _rect("black", 0.1, 0.15, 0.18, 0.35), _rect("black", 0.82, 0.65, 0.9, 0.85)]),
    "Vietnam": _field("red", then=[_disc("yellow", 0.5, 0.5, 0.2)]),
    "Thailand": _h("red", "white", "blue", "white", "red", weights=(1, 1, 2, 1, 1)),
    "Indonesia": _h("red", "white"),
    "Philippines": _h("blue", "red", then=[Layer("triangle", "white", (0.43,)), _disc("yellow", 0.14, 0.5, 0.1)]),
    "Pakistan": _v("white", "green", weights=(1, 3),
                   then=[_disc("white", 0.62, 0.5, 0.24), _disc("green", 0.67, 0.45, 0.2)]),
    "Bangladesh": _field("green", then=[_disc("red", 0.45, 0.5, 0.3)]),
    "Nepal": _field("white", then=[Layer("triangle", "blue", (0.62,)), Layer("triangle", "red", (0.52,)),
                                   _disc("white", 0.14, 0.5, 0.08)]),
    "Iran": _h("green", "white", "red", then=[_disc("red", 0.5, 0.5, 0.1)]),
    "Iraq": _h("red", "white", "black", then=[_rect("green", 0.3, 0.42, 0.7, 0.58)]),
    "Mongolia": _v("red", "blue", "red", then=[_rect("yellow", 0.12, 0.25, 0.22, 0.75)]),
    "Australia": _field("blue", then=_union_canton() + [_disc("white", 0.25, 0.75, 0.12),
                                                        _disc("white", 0.78, 0.3, 0.07),
                                                        _disc("white", 0.78, 0.8, 0.07)]),
    "New Zealand": _field("blue", then=_union_canton() + [_disc("red", 0.78, 0.3, 0.09), _disc("red", 0.7, 0.7, 0.09),
                                                          _disc("red", 0.86, 0.55, 0.09)]),
    "Canada": _v("red", "white", "red", weights=(1, 2, 1), then=[_disc("red", 0.5, 0.5, 0.2)]),
    "United States": _h(*(["red", "white"] * 3 + ["red"]),
                        then=[_rect("blue", 0.0, 0.0, 0.42, 4 / 7), _disc("white", 0.1, 0.14, 0.05),
                              _disc("white", 0.3, 0.14, 0.05), _disc("white", 0.2, 0.42, 0.05)]),
    "Mexico": _v("green", "white", "red", then=[_disc("brown", 0.5, 0.5, 0.15)]),
    "Brazil": _field("green", then=[Layer("diamond", "yellow", (0.42, 0.38)), _disc("blue", 0.5, 0.5, 0.22)]),
    "Argentina": _h("light blue", "white", "light blue", then=[_disc("yellow", 0.5, 0.5, 0.1)]),
    "Peru": _v("red", "white", "red"),
    "Chile": _h("white", "red", then=[_rect("blue", 0.0, 0.0, 1 / 3, 0.5), _disc("white", 1 / 6, 0.25, 0.09)]),
    "Colombia": _h("yellow", "blue", "red", weights=(2, 1, 1)),
    "Venezuela": _h("yellow", "blue", "red", then=[_disc("white", 0.35, 0.45, 0.05), _disc("white", 0.5, 0.4, 0.05),
                                                   _disc("white", 0.65, 0.45, 0.05)]),
}

FLAG_ASPECT = 1.5  # width / height


def flag_of(country: str) -> Flag:
    if country not in FLAGS:
        raise KeyError(f"No flag drawn for {country!r}; FLAGS has {len(FLAGS)} countries.")
    return FLAGS[country]


# ----------------------------------------------------------------------------- painting

def _colour(name: str) -> np.ndarray:
    return np.array(COLOURS.get(name) or _OTHER_COLOURS[name], dtype=np.float32)


def _layer_mask(layer: Layer, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Which pixels (given by their flag coordinates u, v) the layer covers."""
    p = layer.params
    x = u * FLAG_ASPECT  # distances in flag heights, so a disc stays round
    if layer.shape == "rect":
        u0, v0, u1, v1 = p
        return (u >= u0) & (u < u1) & (v >= v0) & (v < v1)
    if layer.shape in ("disc", "halfdisc"):
        cu, cv, r = p
        inside = (x - cu * FLAG_ASPECT) ** 2 + (v - cv) ** 2 <= r * r
        return inside & (v < cv) if layer.shape == "halfdisc" else inside
    if layer.shape == "triangle":  # at the hoist, its tip at u = depth
        (depth,) = p
        return u <= depth * (1.0 - np.abs(2.0 * v - 1.0))
    if layer.shape == "diamond":
        a, b = p
        return np.abs(u - 0.5) / a + np.abs(v - 0.5) / b <= 1.0
    if layer.shape == "saltire":  # both diagonals, of width w (in flag heights)
        (w,) = p
        d1 = np.abs(v * FLAG_ASPECT - x) / np.hypot(1.0, 1.0)
        d2 = np.abs((1.0 - v) * FLAG_ASPECT - x) / np.hypot(1.0, 1.0)
        return (np.minimum(d1, d2) * 2 / FLAG_ASPECT) <= w / 2
    raise ValueError(f"unknown layer shape {layer.shape!r}")


def _jitter(rng: np.random.Generator, rgb: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(rgb + rng.uniform(-amount, amount, 3).astype(np.float32), 0.0, 1.0)


def _finish(img: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    if noise:
        img = img + rng.normal(0.0, noise, img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def draw_flag(country: str, rng: np.random.Generator | None = None, *, size=IMAGE_SIZE, jitter: float = 0.05,
              noise: float = 0.02) -> np.ndarray:
    """The flag of ``country`` as an (H, W, 3) float32 array in [0, 1].

    With ``rng`` the flag is drawn a little differently: 80-100 % of the canvas width, anywhere
    on the canvas, each colour's shade moved by up to ``jitter``, Gaussian ``noise`` on every
    pixel. Without it: the canonical drawing, full width and centred, exact colours, no noise.
    """
    H, W = size
    flag = flag_of(country)
    if rng is None:
        fw = W
        fh = min(H, round(fw / FLAG_ASPECT))
        x0, y0 = 0, (H - fh) // 2
        shade = {}
    else:
        fw = int(rng.integers(round(0.8 * W), W + 1))
        fh = min(H, round(fw / FLAG_ASPECT))
        x0, y0 = int(rng.integers(0, W - fw + 1)), int(rng.integers(0, H - fh + 1))
        shade = {c: _jitter(rng, _colour(c), jitter) for c in sorted({layer.colour for layer in flag.layers})}
    img = np.empty((H, W, 3), dtype=np.float32)
    img[:] = BACKGROUND
    # Pixel centres in flag coordinates.
    u = (np.arange(fw, dtype=np.float32) + 0.5) / fw
    v = (np.arange(fh, dtype=np.float32) + 0.5) / fh
    uu, vv = np.meshgrid(u, v)
    patch = img[y0:y0 + fh, x0:x0 + fw]
    for layer in flag.layers:
        patch[_layer_mask(layer, uu, vv)] = shade.get(layer.colour, _colour(layer.colour))
    return _finish(img, rng, noise) if rng is not None else img


@dataclass(frozen=True)
class Scene:
    """A scene's content: ``count`` shapes of one ``shape`` and one ``colour``."""

    shape: str
    colour: str
    count: int


def draw_scene(scene: Scene, rng: np.random.Generator, *, size=IMAGE_SIZE, jitter: float = 0.05,
               noise: float = 0.02) -> np.ndarray:
    """``scene`` painted on the grey ground: each shape 5-7 pixels across, placed at random
    without touching another; shade jitter and noise as :func:`draw_flag`."""
    H, W = size
    img = np.empty((H, W, 3), dtype=np.float32)
    img[:] = BACKGROUND
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32) + 0.5
    rgb = _jitter(rng, _colour(scene.colour), jitter)
    placed: list[tuple[float, float, float]] = []
    for _ in range(scene.count):
        for _attempt in range(200):
            r = float(rng.uniform(2.5, 3.5))
            cx, cy = float(rng.uniform(r + 0.5, W - r - 0.5)), float(rng.uniform(r + 0.5, H - r - 0.5))
            if all((cx - px) ** 2 + (cy - py) ** 2 > (r + pr + 1.5) ** 2 for px, py, pr in placed):
                break
        else:  # pragma: no cover - 4 small shapes always fit on the canvas
            raise RuntimeError("could not place the shapes apart")
        placed.append((cx, cy, r))
        if scene.shape == "circle":
            mask = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
        elif scene.shape == "square":
            s = r * 0.9
            mask = (np.abs(xx - cx) <= s) & (np.abs(yy - cy) <= s)
        elif scene.shape == "triangle":  # pointing up
            top, bottom = cy - r, cy + r
            half = (yy - top) / (2 * r) * r
            mask = (yy >= top) & (yy <= bottom) & (np.abs(xx - cx) <= half)
        else:
            raise ValueError(f"unknown shape {scene.shape!r}; shapes: {SHAPES}")
        img[mask] = rgb
    return _finish(img, rng, noise)


# ----------------------------------------------------------------------------- questions

@dataclass(frozen=True)
class ImageQA:
    """One picture, one question about it, its one exact answer."""

    image: np.ndarray = field(repr=False, compare=False)
    question: str
    answer: str
    kind: str  # "flag", "colour" or "count" (see KINDS)
    subject: str  # the country, or the scene as "3 green circles"


def _plural(shape: str) -> str:
    return shape + "s"


def flag_questions(country: str, image: np.ndarray) -> list[ImageQA]:
    """Every question the course asks about a drawing of ``country``'s flag."""
    qas = [ImageQA(image, "Which country's flag is this?", country, "flag", country)]
    for part, colour in flag_of(country).parts.items():
        qas.append(ImageQA(image, f"What colour is the {part} of this flag?", colour, "colour", country))
    return qas


def scene_questions(scene: Scene, image: np.ndarray) -> list[ImageQA]:
    """The count and colour questions about a scene."""
    shapes = _plural(scene.shape)
    subject = f"{scene.count} {scene.colour} {shapes if scene.count > 1 else scene.shape}"
    return [ImageQA(image, f"How many {shapes} are there?", str(scene.count), "count", subject),
            ImageQA(image, f"What colour are the {shapes}?", scene.colour, "colour", subject)]


SPLITS = ("train", "val", "test")


# Colour is the quickest to learn; which flag, and how many shapes, the slowest: they get more of the questions.
FIRST_QUESTION_SHARE = 2 / 3


def image_questions(world: World, split: str, n_images: int) -> list[ImageQA]:
    """``n_images`` fresh pictures of split ``split``, half flags (the world's countries in turn)
    and half scenes, each with one of its questions: the flag or count question
    (:data:`FIRST_QUESTION_SHARE` of the time), else a colour question.

    Each split draws from its own random stream, so ``"test"`` pictures are never training
    pictures. Deterministic: the same arguments give the same pictures and questions.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    rng = component_rng(world.seed, "images", split)
    np_rng = np.random.default_rng(rng.getrandbits(64))
    countries = [c.name for c in world.countries]
    out = []
    for i in range(n_images):
        if i % 2 == 0:
            country = countries[(i // 2) % len(countries)]
            qas = flag_questions(country, draw_flag(country, np_rng))
        else:
            scene = Scene(rng.choice(SHAPES), rng.choice(SCENE_COLOURS), rng.randint(1, MAX_COUNT))
            qas = scene_questions(scene, draw_scene(scene, np_rng))
        first, colours = qas[0], qas[1:]
        out.append(first if rng.random() < FIRST_QUESTION_SHARE else rng.choice(colours))
    return out
