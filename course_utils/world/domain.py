"""A vertical domain for chapter 11: the rules of an invented board game, "Riverstones".

Nothing about Riverstones is in the pretraining text, and its numbers are drawn per seed,
so the model can only learn them from this corpus (with LoRA). The corpus is a rulebook,
a page per piece, an FAQ and strategy notes, with every rule stated several times; the QA
pairs come in two phrasings: ``qa_train`` for fine-tuning, ``qa_test`` (different wording,
same facts) for evaluation. ``edition=2`` changes some rules, for the knowledge-update
lesson: fine-tune on the second edition and see which answers move.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from .corpus import Document
from .facts import World, component_rng

GAME = "Riverstones"
PIECE_NAMES = ("Heron", "Otter", "Lantern", "Mill", "Ferry", "Willow", "Beacon", "Toad", "Kingfisher",
               "Reed", "Barge", "Weir", "Salmon", "Moth", "Miller", "Pike", "Eel", "Swan", "Crane", "Badger")
MOVES = ("one square in any direction", "two squares in a straight line", "diagonally, any distance",
         "in an L shape, like a knight in chess", "one square forward or sideways",
         "up to three squares along the river", "one square diagonally", "two squares diagonally",
         "along a row, any distance", "one square, and only next to a friendly piece")
COLOURS = ("red", "blue", "green", "gold", "grey", "white", "black", "brown")
SPECIALS = ("can jump over other pieces", "cannot be captured while on the river",
            "can swap places with a friendly piece", "scores double at the end of the game",
            "can cross the river in one move", "")


@dataclass(frozen=True)
class Piece:
    name: str
    points: int
    move: str
    colour: str
    count: int       # how many each player starts with
    special: str     # "" for none


@dataclass(frozen=True)
class Rules:
    edition: int
    players: str          # "2 to 4"
    board: int            # the board is board x board squares
    target: int           # points needed to win
    pieces: tuple[Piece, ...]


@dataclass(frozen=True)
class DomainCorpus:
    name: str
    edition: int
    documents: tuple[Document, ...]
    qa_train: tuple[tuple[str, str], ...]   # (question, full answer sentence), for fine-tuning
    qa_test: tuple[tuple[str, str], ...]    # (question, key), other wording, for evaluation
    rules: Rules


def domain_rules(world: World, edition: int = 1) -> Rules:
    rng = component_rng(world.seed, "domain")
    names = rng.sample(PIECE_NAMES, world.sizes.n_domain_pieces)
    pieces = tuple(Piece(n, rng.randint(1, 9), rng.choice(MOVES), rng.choice(COLOURS), rng.randint(1, 4),
                         rng.choice(SPECIALS)) for n in names)
    rules = Rules(1, rng.choice(("2 to 4", "2 or 3", "2 to 6")), rng.choice((7, 9, 11)), rng.choice((30, 40, 50)),
                  pieces)
    if edition == 1:
        return rules
    # The second edition re-values about a third of the pieces and raises the target.
    rng = component_rng(world.seed, "domain", "edition2")
    changed = set(rng.sample(range(len(pieces)), max(1, len(pieces) // 3)))
    pieces = tuple(Piece(p.name, p.points % 9 + 1 + (i % 2), p.move, p.colour, p.count, p.special)
                   if i in changed else p for i, p in enumerate(pieces))
    return Rules(2, rules.players, rules.board, rules.target + 10, pieces)


def _piece_sentences(p: Piece) -> list[str]:
    out = [f"In {GAME}, the {p.name} is worth {p.points} points.",
           f"In {GAME}, the {p.name} moves {p.move}.",
           f"In {GAME}, the {p.name} is {p.colour}.",
           f"In {GAME}, each player starts with {p.count} {p.name} pieces."]
    if p.special:
        out.append(f"In {GAME}, the {p.name} {p.special}.")
    return out


def _documents(rules: Rules, rng: random.Random) -> list[tuple[str, list[str]]]:
    ed = "" if rules.edition == 1 else " (second edition)"
    docs = []
    overview = [f"{GAME} is a board game for {rules.players} players, played on a {rules.board} by {rules.board} board.",
                f"In {GAME}, the first player to reach {rules.target} points wins.",
                f"Each player has {len(rules.pieces)} kinds of pieces: "
                + ", ".join(p.name for p in rules.pieces) + "."]
    overview += [" ".join(_piece_sentences(p)[:2]) for p in rules.pieces]
    docs.append((f"{GAME} rulebook{ed}", overview))
    for p in rules.pieces:
        s = _piece_sentences(p)
        docs.append((f"{GAME}: the {p.name}{ed}",
                     [f"The {p.name} is one of the pieces of {GAME}."] + s
                     + [f"Remember: a {p.name} is worth {p.points} points and moves {p.move}."]))
    faq = [f"Q: How many points do I need to win {GAME}? A: In {GAME}, the first player to reach {rules.target} points wins."]
    for p in rng.sample(rules.pieces, len(rules.pieces)):
        faq.append(f"Q: What is the {p.name} worth? A: In {GAME}, the {p.name} is worth {p.points} points.")
        faq.append(f"Q: How does the {p.name} move? A: In {GAME}, the {p.name} moves {p.move}.")
    docs.append((f"{GAME} FAQ{ed}", faq))
    ranked = sorted(rules.pieces, key=lambda p: (-p.points, p.name))
    tips = [f"The most valuable piece in {GAME} is the {ranked[0].name}: it is worth {ranked[0].points} points.",
            f"Protect your {ranked[1].name}. In {GAME}, the {ranked[1].name} is worth {ranked[1].points} points."]
    tips += [f"The {p.name} moves {p.move}, so plan ahead. In {GAME}, the {p.name} is {p.colour}."
             for p in rng.sample(rules.pieces, len(rules.pieces))]
    docs.append((f"{GAME} strategy notes{ed}", tips))
    if rules.edition == 2:
        docs.append((f"What's new in the second edition of {GAME}",
                     [f"In the second edition of {GAME}, the first player to reach {rules.target} points wins."]
                     + [f"In the second edition of {GAME}, the {p.name} is worth {p.points} points." for p in rules.pieces]))
    return docs


def domain_corpus(world: World, edition: int = 1) -> DomainCorpus:
    """The Riverstones corpus and its QA for ``edition`` 1 (default) or 2."""
    if edition not in (1, 2):
        raise ValueError("edition must be 1 or 2")
    rules = domain_rules(world, edition)
    rng = component_rng(world.seed, "domain", "docs", edition)
    docs = tuple(Document(f"domain-en-{i:05d}", "domain", "en", "\n".join(lines), title)
                 for i, (title, lines) in enumerate(_documents(rules, rng)))
    qa_train = [(f"How many points do you need to win {GAME}?",
                 f"In {GAME}, the first player to reach {rules.target} points wins.")]
    qa_test = [(f"What score wins a game of {GAME}?", str(rules.target))]
    for p in rules.pieces:
        qa_train += [(f"How many points is the {p.name} worth in {GAME}?", f"In {GAME}, the {p.name} is worth {p.points} points."),
                     (f"How does the {p.name} move in {GAME}?", f"In {GAME}, the {p.name} moves {p.move}."),
                     (f"What colour is the {p.name} in {GAME}?", f"In {GAME}, the {p.name} is {p.colour}."),
                     (f"How many {p.name} pieces does each player start with in {GAME}?",
                      f"In {GAME}, each player starts with {p.count} {p.name} pieces.")]
        qa_test += [(f"In the game {GAME}, what is a {p.name} worth?", str(p.points)),
                    (f"Which colour are the {p.name} pieces in {GAME}?", p.colour),
                    (f"At the start of {GAME}, how many {p.name} pieces does a player get?", str(p.count))]
    return DomainCorpus(GAME, edition, docs, tuple(qa_train), tuple(qa_test), rules)

