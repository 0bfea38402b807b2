"""The calculator runs text the model wrote: it must be right on arithmetic, and refuse,
quickly and without raising, everything else."""
import ast
import builtins
import inspect
import operator
from datetime import timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_utils import tools
from course_utils.tools import CalcResult, calculate

# Deterministic examples (CI never flakes on a new random draw); the deadline is the
# "never hangs" check: every call is bounded work, far below a second even on a busy CPU.
FUZZ = settings(max_examples=300, deadline=timedelta(seconds=1), derandomize=True, database=None)


def assert_well_formed(result):
    assert isinstance(result, CalcResult)
    if result.ok:
        assert isinstance(result.value, str) and result.value and result.error is None
        assert result.text == result.value
    else:
        assert result.value is None
        assert isinstance(result.error, str) and result.error.startswith("error: ")
        assert len(result.error) <= 100, "errors go back to the model: keep them short"
        assert result.text == result.error


# ----------------------------------------------------------------------------- explicit cases

@pytest.mark.parametrize(
    "expression, value",
    [
        ("2+2", "4"),
        ("123*456", "56088"),
        ("(1+2)*3", "9"),
        ("7/2", "3.5"),
        ("2**10", "1024"),
        ("6/3", "2"),                      # divisible: an exact integer
        ("1/3", "0.333333333333"),         # else 12 significant digits
        ("2/3", "0.666666666667"),
        ("0.1+0.2", "0.3"),                # exact inside: no binary-float surprise
        ("(7/2)*2", "7"),
        ("-7//2", "-4"),                   # Python's floor division and modulo
        ("-7%3", "2"),
        ("2**-2", "0.25"),
        ("-2**2", "-4"),                   # Python precedence: -(2**2)
        ("(-2)**3", "-8"),
        ("2**100", "1267650600228229401496703205376"),  # integers are exact, however long
        ("10**15*10**15", "1" + "0" * 30),
        ("10**30/7", "1.42857142857E+29"),
        ("999999999999999+1", "1000000000000000"),
        ("  12 * 12  ", "144"),
        ("1_000*3", "3000"),
        ("((((1))))", "1"),
        ("+5", "5"),
        ("-0.0", "0"),
        ("1.5*4", "6"),
        # unicode spellings a model or a learner may use
        ("3×4", "12"),
        ("8÷2", "4"),
        ("5−7", "-2"),
        ("（1＋2）×３", "9"),
    ],
)
def test_arithmetic(expression, value):
    result = calculate(expression)
    assert_well_formed(result)
    assert result == CalcResult(ok=True, value=value, error=None)


@pytest.mark.parametrize(
    "expression, message",
    [
        ("2**2**2**2**2", "exponent towers"),
        ("2**(3**2)", "exponent towers"),
        ("10**100000", "exponent too large"),
        ("10**60", "too many digits"),
        ("(1/7)**100", "too many digits"),
        ("1/0", "division by zero"),
        ("1//0", "division by zero"),
        ("1%0", "division by zero"),
        ("0**-1", "division by zero"),
        ("1/(2-2)", "division by zero"),
        ("__import__('os')", "function calls"),
        ("__import__('os').system('echo hacked')", ""),
        ("().__class__", "attribute access"),
        ("().__class__.__bases__[0].__subclasses__()", ""),
        ("a+1", "names"),
        ("x" * 10000, "too long"),
        ("", "empty"),
        ("   ", "empty"),
        ("9" * 1000, "too long"),
        ("9" * 16, "number too large"),
        ("1e16", "number too large"),
        ("1e999", "number too large"),
        ("1e-300", "too small"),
        ("10**15*10**15*10**15*10**15", "result too large"),
        ("2**0.5", "whole number"),
        ("1j", "complex"),
        ("True+1", "booleans"),
        ("'2'+'2'", "strings"),
        ("b'2'", "strings"),
        ("f'{1}'", "strings"),
        ("[1][0]", ""),
        ("1<2", "comparisons"),
        ("1 and 2", "boolean operators"),
        ("1 if 1 else 2", "conditional"),
        ("lambda: 1", "lambdas"),
        ("[i for i in (1,)]", "comprehensions"),
        ("(x:=1)", "assignments"),
        ("1,000", "tuples"),
        ("2^3", "write ** for powers"),
        ("1&2", "operator not supported"),
        ("1<<2", "operator not supported"),
        ("~1", "operator not supported"),
        ("not 1", "operator not supported"),
        ("None", "only numbers"),
        ("...", "only numbers"),
        ("2+", "not a valid"),
        ("1\x00", "not a valid"),
        ("import os", "not a valid"),
        ("-" * 60 + "1", "nested too deeply"),
        ("+".join(["(1+1+1+1)"] * 13), "too complex"),  # 103 nodes, shallow
        ("+".join(["1"] * 51), "nested too deeply"),      # a + chain nests to the left
        ("+".join(["1"] * 101), "too long"),
    ],
)
def test_refused(expression, message):
    result = calculate(expression)
    assert_well_formed(result)
    assert not result.ok
    assert message in result.error


@pytest.mark.parametrize("value", [None, 4, 2.5, b"2+2", ["2+2"], {"expression": "2+2"}])
def test_non_string_input_is_refused(value):
    result = calculate(value)
    assert_well_formed(result)
    assert result.error == "error: expression must be a string"


def test_limits_are_inclusive_where_documented():
    assert calculate(str(tools.MAX_OPERAND)).ok
    assert not calculate(str(tools.MAX_OPERAND + 1)).ok
    assert calculate(f"1**{tools.MAX_EXPONENT}").ok
    assert not calculate(f"1**{tools.MAX_EXPONENT + 1}").ok
    assert calculate("1" + " " * (tools.MAX_EXPRESSION_CHARS - 1)).ok
    assert not calculate("1" + " " * tools.MAX_EXPRESSION_CHARS).ok
    assert calculate("+".join(["1"] * 50)).value == "50"  # 99 nodes, 50 levels deep
    assert not calculate("+".join(["1"] * 51)).ok
    assert calculate("+".join(["(1+1+1+1)"] * 12) + "+1+1").value == "50"  # 99 nodes
    assert calculate("9" * 15 + "*" + "9" * 15 + "*" + "9" * 15).ok  # 45 digits: allowed


def test_result_text_is_what_the_model_sees():
    assert calculate("123*456").text == "56088"
    assert str(calculate("1/0")) == "error: division by zero"


def test_never_executes_code(monkeypatch, tmp_path):
    # If anything reached eval/exec, these would fail the test loudly.
    def forbidden(*args, **kwargs):
        raise AssertionError("the calculator must never eval/exec")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    target = tmp_path / "pwned"
    assert not calculate(f"__import__('pathlib').Path({str(target)!r}).touch()").ok
    assert not target.exists()
    assert calculate("2+2").value == "4"


def test_source_never_calls_eval_exec_or_compile():
    tree = ast.parse(inspect.getsource(tools))
    called = {
        node.func.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
    }
    assert not called & {"eval", "exec", "compile", "__import__"}


# ----------------------------------------------------------------------------- fuzzing: random text

ARITHMETIC_SOUP = st.text(alphabet="0123456789+-*/%().e ×÷−^", max_size=tools.MAX_EXPRESSION_CHARS)


def only_arithmetic(text):
    """Independent check of the whitelist: the text parses to numbers and arithmetic only."""
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Add, ast.Sub, ast.Mult, ast.Div,
               ast.FloorDiv, ast.Mod, ast.Pow, ast.USub, ast.UAdd)
    for node in ast.walk(ast.parse(tools.normalize_expression(text), mode="eval")):
        if isinstance(node, ast.Constant):
            if type(node.value) not in (int, float):
                return False
        elif not isinstance(node, allowed):
            return False
    return True


@FUZZ
@given(st.text(max_size=300))
def test_any_text_gives_a_well_formed_result(text):
    result = calculate(text)
    assert_well_formed(result)
    if result.ok:
        assert only_arithmetic(text)


@FUZZ
@given(ARITHMETIC_SOUP)
def test_arithmetic_soup_gives_a_well_formed_result(text):
    # Dense in near-valid expressions: huge powers, long products, deep parentheses.
    result = calculate(text)
    assert_well_formed(result)
    if result.ok:
        assert only_arithmetic(text)


@FUZZ
@given(st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.integers())))
def test_any_object_gives_a_well_formed_result(value):
    assert_well_formed(calculate(value))


# ----------------------------------------------------------------------------- fuzzing: random trees

# An expression tree is generated as a structure, rendered to text for the calculator, and
# evaluated *independently* here with the operator module on the generated numbers (exact
# Fractions). No text is ever evaluated by the test.
OPS = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
       "//": operator.floordiv, "%": operator.mod}

leaves = st.one_of(
    st.integers(min_value=0, max_value=99).map(lambda n: ("num", n)),
    # powers only of small literals with small literal exponents: no towers, bounded size
    st.tuples(st.integers(0, 9), st.integers(0, 3)).map(lambda be: ("pow", *be)),
)


def extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(sorted(OPS)), children, children).map(lambda t: ("bin", *t)),
        children.map(lambda c: ("neg", c)),
    )


trees = st.recursive(leaves, extend, max_leaves=10)
spaces = st.sampled_from(["", " "])


def render(tree, space=""):
    kind = tree[0]
    if kind == "num":
        return str(tree[1])
    if kind == "pow":
        return f"({tree[1]}{space}**{space}{tree[2]})"
    if kind == "neg":
        return f"-{render(tree[1], space)}"
    _, op, left, right = tree
    return f"({render(left, space)}{space}{op}{space}{render(right, space)})"


def expected_value(tree):
    """Exact value with Python's own arithmetic, or None on division by zero."""
    kind = tree[0]
    if kind == "num":
        return Fraction(tree[1])
    if kind == "pow":
        return Fraction(operator.pow(tree[1], tree[2]))
    if kind == "neg":
        inner = expected_value(tree[1])
        return None if inner is None else operator.neg(inner)
    _, op, left, right = tree
    a, b = expected_value(left), expected_value(right)
    if a is None or b is None:
        return None
    if op in ("/", "//", "%") and b == 0:
        return None
    return Fraction(OPS[op](a, b))


@FUZZ
@given(trees, spaces)
def test_random_arithmetic_matches_python(tree, space):
    text = render(tree, space)
    result = calculate(text)
    assert_well_formed(result)
    expected = expected_value(tree)
    if expected is None:
        assert result.error == "error: division by zero", text
        return
    assert result.ok, (text, result)
    if expected.denominator == 1:
        assert result.value == str(expected.numerator), text
    else:  # rounded to 12 significant digits
        got = Fraction(Decimal(result.value))
        assert abs(got - expected) <= abs(expected) * Fraction(1, 10**11), (text, result.value)
        assert len(Decimal(result.value).as_tuple().digits) <= tools.SIGNIFICANT_DIGITS


DISALLOWED = [
    "a", "x.y", "f(1)", "__import__('os')", "().__class__", "[1][0]", "'s'", "b's'", "True",
    "None", "1j", "(1<2)", "(lambda: 1)", "[i for i in ()]", "(1,2)", "(1 if 1 else 0)",
    "(not 1)", "~1", "(1^2)", "(1&2)", "(1|2)", "(1<<2)", "(1>>2)", "(1@1)", "{1}", "{1:2}",
    "...", "(x:=1)", "(2**(2**2))", "(1 and 2)", "f'{1}'", "[1]", "(*a,)",
]


def replace_a_leaf(tree, index, snippet):
    """Render `tree` with its `index`-th leaf (mod the leaf count) replaced by `snippet`."""
    rendered_leaves = []

    def walk(t):
        if t[0] in ("num", "pow"):
            rendered_leaves.append(t)
            return f"\0{len(rendered_leaves) - 1}\0"
        if t[0] == "neg":
            return f"-{walk(t[1])}"
        return f"({walk(t[2])}{t[1]}{walk(t[3])})"

    template = walk(tree)
    chosen = index % len(rendered_leaves)
    for i, leaf in enumerate(rendered_leaves):
        template = template.replace(f"\0{i}\0", snippet if i == chosen else render(leaf))
    return template


@FUZZ
@given(trees, st.integers(min_value=0), st.sampled_from(DISALLOWED))
def test_disallowed_construct_anywhere_is_refused(tree, index, snippet):
    text = replace_a_leaf(tree, index, snippet)
    result = calculate(text)
    assert_well_formed(result)
    assert not result.ok, text
