"""A calculator the model can call: safe arithmetic on *untrusted* text.

In chapter 07 the model learns to write ``<|tool_call|>123*456<|/tool_call|>`` instead of
guessing a product. Whatever it writes is run here, so this module treats the expression as
hostile input, the way a web server treats a form field:

1. **Never ``eval``.** The text is parsed with ``ast.parse(text, mode="eval")`` into a syntax
   tree, and the tree is *walked* by our own small interpreter. The string is never compiled
   or executed, so ``__import__('os')`` is just a tree with a ``Call`` node in it, which the
   whitelist refuses.
2. **A whitelist, not a blacklist.** Allowed: int and float literals, ``+ - * / // % **``,
   unary ``-``/``+`` and parentheses. Everything else (names, attributes, calls, subscripts,
   strings, bytes, booleans, ``None``, complex numbers, comparisons, lambdas, comprehensions,
   bit operations, ...) is refused with a short message.
3. **Bounded work instead of a timer.** Rather than running the calculation in a thread and
   killing it after a timeout, every input that could take long is refused *before* the work
   is done: at most :data:`MAX_EXPRESSION_CHARS` characters, :data:`MAX_NODES` tree nodes,
   :data:`MAX_DEPTH` nesting levels, literals up to :data:`MAX_OPERAND`, exponents up to
   :data:`MAX_EXPONENT` and no exponent towers (``2**2**2``), and no intermediate result
   beyond :data:`MAX_RESULT_DIGITS` digits (a power's size is checked *before* it is
   computed). With those bounds every call finishes in well under a millisecond.

Arithmetic is exact: numbers are :class:`fractions.Fraction` inside, so ``0.1+0.2`` is ``0.3``
and ``(7/2)*2`` is ``7``. How results are written:

- an integer result is written exactly: ``123*456`` → ``56088``, ``2**100`` → all 31 digits;
- a non-integer result is rounded to :data:`SIGNIFICANT_DIGITS` significant digits (round half
  to even) and written as a decimal: ``7/2`` → ``3.5``, ``2/3`` → ``0.666666666667``;
  very large or very small non-integers use scientific notation (``1.42857142857E+29``).

Typical use::

    >>> calculate("123*456")
    CalcResult(ok=True, value='56088', error=None)
    >>> calculate("1/0").text          # what the model sees in the tool message
    'error: division by zero'

:func:`calculate` never raises: every refusal is a ``CalcResult`` with ``ok=False`` and an
``error`` string that starts with ``"error: "``, short enough to show to the model.
"""
from __future__ import annotations

import ast
import math
import unicodedata
from dataclasses import dataclass
from decimal import Context, Decimal
from fractions import Fraction

__all__ = [
    "CalcResult",
    "CalcError",
    "calculate",
    "normalize_expression",
    "format_number",
    "MAX_EXPRESSION_CHARS",
    "MAX_OPERAND",
    "MAX_EXPONENT",
    "MAX_RESULT_DIGITS",
    "MAX_NODES",
    "MAX_DEPTH",
    "SIGNIFICANT_DIGITS",
]

# ----------------------------------------------------------------------------- limits

MAX_EXPRESSION_CHARS = 200   # longer text is refused before it is parsed
MAX_OPERAND = 10**15         # |literal| must be at most this
MAX_EXPONENT = 100           # |b| in a**b must be at most this
MAX_RESULT_DIGITS = 50       # every intermediate value: |x| < 10**50, denominator < 10**50
MAX_NODES = 100              # numbers and operators in the syntax tree
MAX_DEPTH = 50               # nesting depth of the syntax tree
SIGNIFICANT_DIGITS = 12      # non-integer results are rounded to this many significant digits

_LIMIT = 10**MAX_RESULT_DIGITS
# An integer n with n.bit_length() == b satisfies n >= 2**(b-1); so if |e| * (b-1) bits
# already exceed the limit, n**e is certainly too big and we refuse without computing it.
_LIMIT_BITS = _LIMIT.bit_length()

# Unicode spellings a model (or a learner) may use, mapped to Python's operators.
# NFKC normalisation first turns full-width forms (＋ － （ ） ０-９, common in Chinese text)
# into ASCII; it leaves these alone, so we map them ourselves.
_REPLACEMENTS = {
    "×": "*", "·": "*", "⋅": "*", "∗": "*",
    "÷": "/", "∕": "/",
    "−": "-", "–": "-", "—": "-",
}


class CalcError(ValueError):
    """Raised inside the evaluator for a refused expression; :func:`calculate` turns it into
    a ``CalcResult(ok=False, error="error: ...")``. Its message is the text after ``error: ``."""


@dataclass(frozen=True)
class CalcResult:
    """The outcome of one calculator call.

    ``ok`` and ``value`` (the result as text) on success; ``error`` (``"error: ..."``) otherwise.
    ``text`` is what goes back to the model in the ``tool`` message either way.
    """

    ok: bool
    value: str | None
    error: str | None

    @property
    def text(self) -> str:
        return self.value if self.ok else self.error

    def __str__(self) -> str:
        return self.text


# ----------------------------------------------------------------------------- public API

def calculate(expression) -> CalcResult:
    """Evaluate an arithmetic expression safely. Never raises; see the module docstring."""
    try:
        value = _evaluate_text(expression)
    except CalcError as exc:
        return CalcResult(ok=False, value=None, error=f"error: {exc}")
    return CalcResult(ok=True, value=format_number(value), error=None)


def normalize_expression(text: str) -> str:
    """Full-width forms to ASCII (NFKC), ``× ÷ −`` to ``* / -``, surrounding blanks removed."""
    text = unicodedata.normalize("NFKC", text)
    for src, dst in _REPLACEMENTS.items():
        text = text.replace(src, dst)
    return text.strip()


def format_number(value: Fraction) -> str:
    """Integers exactly; other values rounded to ``SIGNIFICANT_DIGITS`` significant digits."""
    if value.denominator == 1:
        return str(value.numerator)
    ctx = Context(prec=SIGNIFICANT_DIGITS)  # a local context: never touch the global one
    return str(ctx.divide(Decimal(value.numerator), Decimal(value.denominator)))


# ----------------------------------------------------------------------------- parsing and checks

_BINOPS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
    ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**",
}
_UNARYOPS = {ast.USub: "-", ast.UAdd: "+"}

# Friendly names for the refusals a model is most likely to trigger.
_REFUSED = {
    ast.Name: "names are not allowed",
    ast.Attribute: "attribute access is not allowed",
    ast.Call: "function calls are not allowed",
    ast.Subscript: "subscripts are not allowed",
    ast.Lambda: "lambdas are not allowed",
    ast.Compare: "comparisons are not allowed",
    ast.BoolOp: "boolean operators are not allowed",
    ast.IfExp: "conditional expressions are not allowed",
    ast.ListComp: "comprehensions are not allowed",
    ast.SetComp: "comprehensions are not allowed",
    ast.DictComp: "comprehensions are not allowed",
    ast.GeneratorExp: "comprehensions are not allowed",
    ast.Tuple: "tuples are not allowed (no commas in numbers: write 1000, not 1,000)",
    ast.JoinedStr: "strings are not allowed",
    ast.NamedExpr: "assignments are not allowed",
}


def _evaluate_text(expression) -> Fraction:
    if not isinstance(expression, str):
        raise CalcError("expression must be a string")
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise CalcError(f"expression too long (max {MAX_EXPRESSION_CHARS} characters)")
    text = normalize_expression(expression)
    if not text:
        raise CalcError("empty expression")
    if len(text) > MAX_EXPRESSION_CHARS:  # NFKC can lengthen text (e.g. '㍱' -> 'hPa')
        raise CalcError(f"expression too long (max {MAX_EXPRESSION_CHARS} characters)")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError, OverflowError):
        # ValueError: null bytes on some Python versions; the others: pathological nesting.
        raise CalcError("not a valid arithmetic expression") from None
    _check_tree(tree.body)
    return _eval(tree.body)


def _check_tree(root: ast.AST) -> None:
    """Whitelist, size and shape checks on the whole tree, before any arithmetic."""
    nodes = 0
    stack = [(root, 1)]
    while stack:  # iterative: the depth check must not itself recurse too deep
        node, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            raise CalcError(f"expression too complex (max {MAX_NODES} numbers and operators)")
        if depth > MAX_DEPTH:
            raise CalcError(f"expression nested too deeply (max {MAX_DEPTH} levels)")
        if isinstance(node, ast.Constant):
            _literal(node.value)  # raises for strings, bools, complex, huge numbers, ...
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                if isinstance(node.op, ast.BitXor):
                    raise CalcError("operator '^' is not supported (write ** for powers)")
                raise CalcError("operator not supported (use + - * / // % **)")
            if isinstance(node.op, ast.Pow) and _contains_pow(node.right):
                raise CalcError("exponent towers are not allowed (like 2**3**4)")
            stack.append((node.left, depth + 1))
            stack.append((node.right, depth + 1))
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARYOPS:
                raise CalcError("operator not supported (use + - * / // % **)")
            stack.append((node.operand, depth + 1))
        else:
            reason = _REFUSED.get(type(node), f"unsupported syntax ({type(node).__name__})")
            raise CalcError(reason)


def _contains_pow(node: ast.AST) -> bool:
    return any(isinstance(n, ast.BinOp) and isinstance(n.op, ast.Pow) for n in ast.walk(node))


def _literal(value) -> Fraction:
    # bool is a subclass of int in Python: check the exact type, so True is refused.
    if type(value) is int:
        if abs(value) > MAX_OPERAND:
            raise CalcError("number too large (max 10^15)")
        return Fraction(value)
    if type(value) is float:
        if not math.isfinite(value) or abs(value) > MAX_OPERAND:
            raise CalcError("number too large (max 10^15)")
        # repr gives the shortest decimal that round-trips, i.e. the literal as written
        # (0.1 -> '0.1'), so 0.1 becomes exactly 1/10, not the binary float's 3602879701896397/2**55.
        return _checked(Fraction(repr(value)))
    if type(value) is complex:
        raise CalcError("complex numbers are not allowed")
    if type(value) is bool:
        raise CalcError("booleans are not allowed")
    if isinstance(value, (str, bytes)):
        raise CalcError("strings are not allowed")
    raise CalcError(f"only numbers are allowed, not {type(value).__name__}")


def _checked(value: Fraction) -> Fraction:
    if abs(value) >= _LIMIT:
        raise CalcError(f"result too large (max {MAX_RESULT_DIGITS} digits)")
    if value.denominator >= _LIMIT:
        raise CalcError("result too small or too precise")
    return value


# ----------------------------------------------------------------------------- the interpreter

def _eval(node: ast.AST) -> Fraction:
    """Recursive evaluation of a tree that ``_check_tree`` accepted (depth <= MAX_DEPTH)."""
    if isinstance(node, ast.Constant):
        return _literal(node.value)
    if isinstance(node, ast.UnaryOp):
        operand = _eval(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left), _eval(node.right)
        op = node.op
        if isinstance(op, ast.Add):
            return _checked(left + right)
        if isinstance(op, ast.Sub):
            return _checked(left - right)
        if isinstance(op, ast.Mult):
            return _checked(left * right)
        if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)):
            if right == 0:
                raise CalcError("division by zero")
            if isinstance(op, ast.Div):
                return _checked(left / right)
            if isinstance(op, ast.FloorDiv):
                return _checked(Fraction(left // right))
            return _checked(left % right)
        if isinstance(op, ast.Pow):
            return _power(left, right)
    raise CalcError(f"unsupported syntax ({type(node).__name__})")  # unreachable after checks


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        raise CalcError("exponent must be a whole number")
    e = exponent.numerator
    if abs(e) > MAX_EXPONENT:
        raise CalcError(f"exponent too large (max {MAX_EXPONENT})")
    if base == 0:
        if e < 0:
            raise CalcError("division by zero")
        return Fraction(1 if e == 0 else 0)
    # Refuse before computing: a lower bound on the size of the result's numerator or
    # denominator (whichever grows) must stay under the limit.
    bits = max(abs(base.numerator).bit_length(), base.denominator.bit_length())
    if abs(e) * (bits - 1) > _LIMIT_BITS:
        raise CalcError(f"result has too many digits (max {MAX_RESULT_DIGITS})")
    return _checked(base**e)
