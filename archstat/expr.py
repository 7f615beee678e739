"""Safe arithmetic for specs: the expressions inside ``${...}``.

A spec is data, so its expressions are never handed to ``eval``. They are parsed with
:func:`ast.parse` and evaluated by a walker that knows a whitelist of node types and
functions, and nothing else: no attribute access (so no ``__class__`` escapes), no
names beginning with ``_``, no lambdas, assignments, imports or keyword tricks. Every
value is bounded (integers to :data:`MAX_INT_BITS` bits, lists and strings to
:data:`MAX_ITEMS` elements, evaluation to :data:`MAX_STEPS` steps), so no expression can
hang the loader or fill the memory.

The language is a small subset of Python's expressions, with Python's semantics:

* numbers, strings, ``true``/``false``/``null`` (also ``True``/``False``/``None``),
  lists ``[a, b]``, tuples and mappings ``{k: v}`` as values;
* arithmetic ``+ - * / // % **`` (``/`` is true division, ``//`` floors, as Python),
  comparisons ``== != < <= > >= in not in`` (chained too), ``and or not``,
  ``a if cond else b``;
* indexing and slicing ``widths[i - 1]``, ``table[variant][0]``, ``xs[1:]``;
* list comprehensions ``[f(j) for j in range(n) if j % 2]`` (also as a function's
  argument: ``sum(d for d in depths)``);
* the functions of :data:`FUNCTIONS`: ``min max abs round int float bool str len sum
  range enumerate zip sorted reversed any all list ceil floor sqrt exp log log2 log10
  count make_divisible type require`` (``type(x)`` is ``'int'``, ``'float'``, ``'str'``,
  ``'bool'``, ``'list'``, ``'dict'`` or ``'null'``; ``require(cond, message)`` is true or an
  error saying ``message``: how a spec checks its arguments), and the constants ``pi``
  and ``e``.

``round`` is Python's (halves to even), as torchvision's Python code uses it, and
``make_divisible(v, divisor, min_value=None)`` is torchvision's ``_make_divisible``
(torchvision/models/_utils.py): round to the nearest multiple of ``divisor``, at least
``min_value``, and never more than 10% below ``v``.

The functions and the bounds on values live in :mod:`archstat.expr_builtins`; templates
(``${...}`` inside text) in :mod:`archstat.expr_template`.
"""
from __future__ import annotations

import ast
import operator
from functools import lru_cache
from typing import Any, Callable, Mapping

from .errors import did_you_mean, short_repr
from .expr_builtins import (CONSTANTS, FUNCTIONS, MAX_ITEMS, ExprError, _arith, _bad_int, _checked,
                            _iterable, _number, _sized, make_divisible, weight)

__all__ = ["CONSTANTS", "FUNCTIONS", "Budget", "ExprError", "compiled", "evaluate", "free_names", "make_divisible",
           "parse"]

#: longest expression text accepted
MAX_TEXT = 4000
#: deepest nesting of an expression's syntax tree (1 + 1 + ... nests one level per term)
MAX_DEPTH = 100
#: most evaluation steps (AST nodes visited, loop iterations) of one evaluation
MAX_STEPS = 500_000
#: most evaluation steps of all the expressions of one spec (a :class:`Budget`)
MAX_SPEC_STEPS = 2_000_000


class Budget:
    """Evaluation steps left, shared by every expression of one spec, so that many cheap
    expressions (a large repeat) cannot add up to a hang either."""

    def __init__(self, steps: int = MAX_SPEC_STEPS):
        self.steps = steps


# ------------------------------------------------------------------ parsing

_BINARY: dict[type, tuple[Callable[[Any, Any], Any], str]] = {
    ast.Add: (operator.add, "+"), ast.Sub: (operator.sub, "-"), ast.Mult: (operator.mul, "*"),
    ast.Div: (operator.truediv, "/"), ast.FloorDiv: (operator.floordiv, "//"),
    ast.Mod: (operator.mod, "%"), ast.Pow: (operator.pow, "**"),
}
_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_ALLOWED = (ast.Expression, ast.BoolOp, ast.And, ast.Or, ast.BinOp, ast.UnaryOp, ast.UAdd, ast.USub,
            ast.Not, ast.Compare, ast.IfExp, ast.Call, ast.Constant, ast.Name, ast.Load, ast.Store,
            ast.List, ast.Tuple, ast.Dict, ast.Subscript, ast.Slice, ast.ListComp, ast.GeneratorExp,
            ast.comprehension, ast.keyword, *_BINARY, *_COMPARE)
_DESCRIBE = {ast.Attribute: "attribute access ('.')", ast.Lambda: "lambda", ast.NamedExpr: "':='",
             ast.SetComp: "set comprehensions", ast.DictComp: "dict comprehensions",
             ast.Set: "sets", ast.Starred: "'*' unpacking", ast.JoinedStr: "f-strings",
             ast.Await: "await", ast.Yield: "yield", ast.BitAnd: "'&'", ast.BitOr: "'|'",
             ast.BitXor: "'^'", ast.LShift: "'<<'", ast.RShift: "'>>'", ast.Invert: "'~'",
             ast.MatMult: "'@'", ast.Is: "'is'", ast.IsNot: "'is not'"}


@lru_cache(maxsize=8192)
def parse(text: str) -> ast.Expression:
    """Parse and check one expression (cached: specs repeat the same text many times).

    Raises
    ------
    ExprError
        A syntax error, or a construct outside the whitelist (named in the message).
    """
    if len(text) > MAX_TEXT:
        raise ExprError(f"the expression is longer than {MAX_TEXT} characters")
    if not text.strip():
        raise ExprError("empty expression", hint="write a value or an expression between ${ and }")
    try:
        # inside parentheses, an expression may run over several lines (YAML folded text)
        tree = ast.parse("(" + text.strip() + "\n)", mode="eval")
    except SyntaxError as exc:
        col = f" at column {exc.offset - 1}" if exc.offset and exc.lineno == 1 else ""
        raise ExprError(f"invalid expression{col}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError):
        raise ExprError("invalid expression (too deeply nested or malformed)") from None
    if _depth(tree) > MAX_DEPTH:
        raise ExprError(f"the expression nests deeper than {MAX_DEPTH} levels",
                        hint="split it into several values under 'let'")
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED):
            what = _DESCRIBE.get(type(node), type(node).__name__)
            hint = "call functions by name, e.g. len(xs), not xs.len()" if isinstance(node, ast.Attribute) else None
            raise ExprError(f"{what} is not allowed in a spec expression", hint=hint)
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise ExprError(f"names beginning with '_' are not allowed ({node.id})")
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                name = node.func.id if isinstance(node.func, ast.Name) else None
                raise ExprError(f"unknown function {name + '()' if name else ''}".strip(),
                                hint=(did_you_mean(name, FUNCTIONS) if name else None)
                                or f"the functions are: {', '.join(sorted(FUNCTIONS))}")
            if any(kw.arg is None for kw in node.keywords):
                raise ExprError("'**' unpacking is not allowed in a spec expression")
        if isinstance(node, ast.comprehension):
            if node.is_async:
                raise ExprError("async comprehensions are not allowed")
            targets = node.target.elts if isinstance(node.target, ast.Tuple) else [node.target]
            if not all(isinstance(t, ast.Name) for t in targets):
                raise ExprError("a comprehension's loop variable must be a name or names (j, w)")
        if isinstance(node, ast.Constant) and not isinstance(node.value, (int, float, str, bool, type(None))):
            raise ExprError(f"{type(node.value).__name__} constants are not allowed")
    return tree


# ------------------------------------------------------------------ evaluation

def _depth(tree: ast.AST) -> int:
    """How deeply the nodes of a parsed expression nest (without recursion)."""
    deepest, stack = 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level <= MAX_DEPTH + 1:
            stack.extend((child, level + 1) for child in ast.iter_child_nodes(node))
    return deepest


def evaluate(text: str, variables: Mapping[str, Any], budget: Budget | None = None) -> Any:
    """Evaluate one expression with the given variables; raises :class:`ExprError`.

    At most :data:`MAX_STEPS` steps, and no more than ``budget`` has left (which it spends)."""
    run = compiled(text)
    ctx = _Context(variables, min(MAX_STEPS, budget.steps) if budget else MAX_STEPS)
    try:
        return run(ctx)
    finally:
        if budget is not None:
            budget.steps -= ctx.limit - ctx.steps


def free_names(text: str) -> set[str]:
    """Names an expression reads that are not functions, constants or its own loop variables."""
    tree = parse(text)
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.comprehension):
            targets = node.target.elts if isinstance(node.target, ast.Tuple) else [node.target]
            bound.update(t.id for t in targets)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
            and n.id not in bound and n.id not in CONSTANTS}


class _Context:
    """One evaluation: the variable scopes (innermost last) and the steps left."""

    __slots__ = ("scopes", "limit", "steps")

    def __init__(self, variables: Mapping[str, Any], steps: int):
        self.scopes: list[Mapping[str, Any]] = [variables]
        self.limit = self.steps = steps

    def spend(self, steps: int) -> None:
        """Spend ``steps`` at once (work proportional to a value's size)."""
        self.steps -= steps
        if self.steps < 0:
            raise self.out_of_steps()

    def charge(self, value: Any) -> None:
        """Spend one step per item a list or mapping holds, nested ones included: the work of
        a function or a comparison that walks it."""
        if isinstance(value, (list, dict, str)):
            try:
                self.spend(weight(value, max(self.steps, 0) + 1))
            except ExprError:
                raise self.out_of_steps() from None

    def out_of_steps(self) -> ExprError:
        if self.limit < MAX_STEPS:
            return ExprError(f"the spec's expressions take more than {MAX_SPEC_STEPS:,} steps to evaluate in all",
                             hint="simplify the expressions, or compute tables once under 'let'")
        return ExprError(f"the expression takes more than {MAX_STEPS:,} steps to evaluate")


Compiled = Callable[[_Context], Any]


@lru_cache(maxsize=8192)
def compiled(text: str) -> Compiled:
    """The checked expression (:func:`parse`) turned into nested Python closures, one per
    AST node: evaluating walks no tree and looks nothing up by name. Each node spends one
    step of the context, so the step limits hold as they would for a tree walk."""
    return _compile(parse(text).body)


def _compile(node: ast.AST) -> Compiled:
    """The closure for one (whitelisted) node; it spends a step, then computes the node."""
    if type(node) is ast.Constant:   # the leaves, most of the nodes: one call each, not two
        value = node.value

        def constant(ctx: _Context) -> Any:
            ctx.steps -= 1
            if ctx.steps < 0:
                raise ctx.out_of_steps()
            return value
        return constant
    if type(node) is ast.Name:
        name, lookup = node.id, _name(node)

        def variable(ctx: _Context) -> Any:
            ctx.steps -= 1
            if ctx.steps < 0:
                raise ctx.out_of_steps()
            scopes = ctx.scopes
            if len(scopes) == 1 and name in scopes[0]:
                return scopes[0][name]
            return lookup(ctx)   # a comprehension's scopes, the constants, or the error
        return variable
    inner = _COMPILERS[type(node)](node)

    def step(ctx: _Context) -> Any:
        ctx.steps -= 1
        if ctx.steps < 0:
            raise ctx.out_of_steps()
        return inner(ctx)
    return step


def _constant(node: ast.Constant) -> Compiled:
    value = node.value
    return lambda ctx: value


def _name(node: ast.Name) -> Compiled:
    name = node.id

    def lookup(ctx: _Context) -> Any:
        for scope in reversed(ctx.scopes):
            if name in scope:
                return scope[name]
        if name in CONSTANTS:
            return CONSTANTS[name]
        known = sorted({k for s in ctx.scopes for k in s})
        raise ExprError(f"unknown variable {name!r}" +
                        (f" (known here: {', '.join(known)})" if known else " (no variables are defined here)"),
                        hint=did_you_mean(name, known))
    return lookup


def _list(node: ast.List | ast.Tuple) -> Compiled:
    items = [_compile(e) for e in node.elts]   # a tuple is a list too: specs have lists only
    return lambda ctx: _sized([item(ctx) for item in items])


def _dict(node: ast.Dict) -> Compiled:
    pairs = [(_compile(k), _compile(v)) for k, v in zip(node.keys, node.values)]

    def build(ctx: _Context) -> dict[Any, Any]:
        out = {}
        for k, v in pairs:
            key = k(ctx)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise ExprError(f"a mapping key must be a name or a number, got {short_repr(key)}")
            out[key] = v(ctx)
        return out
    return build


def _binop(node: ast.BinOp) -> Compiled:
    fn, symbol = _BINARY[type(node.op)]
    left, right = _compile(node.left), _compile(node.right)
    if symbol in ("%", "**"):   # text formatting and huge powers: the checks of _arith
        return lambda ctx: _arith(fn, symbol, left(ctx), right(ctx))

    def apply(ctx: _Context) -> Any:
        a, b = left(ctx), right(ctx)
        if type(a) in _NUMBERS and type(b) in _NUMBERS:   # numbers: _arith's outcome, without its checks
            try:
                result = fn(a, b)
            except ArithmeticError:
                return _arith(fn, symbol, a, b)   # which says what went wrong
            if type(result) is float:
                if result != result:
                    raise ExprError("the result is not a number (NaN)")
                return result
            return _checked(result)
        return _arith(fn, symbol, a, b)
    return apply


_NUMBERS = frozenset({int, float})


def _unaryop(node: ast.UnaryOp) -> Compiled:
    operand = _compile(node.operand)
    if isinstance(node.op, ast.Not):
        return lambda ctx: not operand(ctx)
    negate = isinstance(node.op, ast.USub)
    what = f"the operand of unary {'-' if negate else '+'}"

    def apply(ctx: _Context) -> Any:
        value = _number(operand(ctx), what)
        return -value if negate else +value
    return apply


def _boolop(node: ast.BoolOp) -> Compiled:
    operands = [_compile(v) for v in node.values]
    is_and = isinstance(node.op, ast.And)

    def apply(ctx: _Context) -> Any:
        value = None
        for operand in operands:
            value = operand(ctx)
            if bool(value) != is_and:   # and: stop at the first false; or: at the first true
                return value
        return value
    return apply


def _compare(node: ast.Compare) -> Compiled:
    left = _compile(node.left)
    rest = [(_COMPARE[type(op)], _compile(c)) for op, c in zip(node.ops, node.comparators)]

    def apply(ctx: _Context) -> bool:
        a = left(ctx)
        for op, comparator in rest:
            b = comparator(ctx)
            ctx.charge(a)   # comparing lists walks them
            ctx.charge(b)
            try:
                if not op(a, b):
                    return False
            except TypeError:
                raise ExprError(f"cannot compare {short_repr(a)} with {short_repr(b)}") from None
            a = b
        return True
    return apply


def _ifexp(node: ast.IfExp) -> Compiled:
    test, body, orelse = _compile(node.test), _compile(node.body), _compile(node.orelse)
    return lambda ctx: body(ctx) if test(ctx) else orelse(ctx)


def _subscript(node: ast.Subscript) -> Compiled:
    target = _compile(node.value)
    if isinstance(node.slice, ast.Slice):
        bounds = [None if p is None else _compile(p) for p in (node.slice.lower, node.slice.upper, node.slice.step)]

        def cut(ctx: _Context) -> Any:
            value = target(ctx)
            parts = [None if b is None else b(ctx) for b in bounds]
            if any(p is not None and _bad_int(p) for p in parts) or parts[2] == 0:
                raise ExprError(f"slice bounds must be integers (and the step not 0), got {short_repr(parts)}")
            if not isinstance(value, (list, str)):
                raise ExprError(f"cannot slice {short_repr(value)}")
            return value[slice(*parts)]
        return cut
    index = _compile(node.slice)

    def get(ctx: _Context) -> Any:
        value, key = target(ctx), index(ctx)
        if isinstance(value, dict):
            if isinstance(key, (list, dict)):
                raise ExprError(f"a mapping key is a name or a number, not {short_repr(key)}")
            if key not in value:
                keys = [str(k) for k in value]
                raise ExprError(f"no entry {short_repr(key)} (the entries are: {', '.join(keys[:20])}"
                                f"{' ...' if len(keys) > 20 else ''})", hint=did_you_mean(str(key), keys))
            return value[key]
        if isinstance(value, (list, str)):
            if _bad_int(key):
                raise ExprError(f"a list index must be an integer, got {short_repr(key)}")
            if not -len(value) <= key < len(value):
                raise ExprError(f"index {key} is out of range for a list of {len(value)}")
            return value[key]
        raise ExprError(f"cannot index {short_repr(value)}")
    return get


def _call(node: ast.Call) -> Compiled:
    name = node.func.id
    fn = FUNCTIONS[name]
    args = [_compile(a) for a in node.args]
    kwargs = [(kw.arg, _compile(kw.value)) for kw in node.keywords]

    def call(ctx: _Context) -> Any:
        values = [a(ctx) for a in args]
        named = {k: v(ctx) for k, v in kwargs} if kwargs else {}
        # a function's work grows with what it reads: charge every item of its arguments
        for value in (*values, *named.values()) if kwargs else values:
            if type(value) not in _NUMBERS:   # (a number holds no items)
                ctx.charge(value)
        try:
            result = fn(*values, **named)
        except ExprError:
            raise
        except TypeError as exc:
            raise ExprError(f"{name}(): {exc}".replace("<lambda>() ", "")) from None
        except (ValueError, ArithmeticError, RecursionError) as exc:
            raise ExprError(f"{name}(): {exc}") from None
        kind = type(result)
        if kind is float:
            if result != result:
                raise ExprError("the result is not a number (NaN)")
            return result
        if kind is not int and isinstance(result, (list, str)):
            _sized(result)
            ctx.spend(len(result))
        return _checked(result)
    return call


def _comprehension(node: ast.ListComp | ast.GeneratorExp) -> Compiled:
    element = _compile(node.elt)
    loops = []
    for gen in node.generators:
        names = [t.id for t in gen.target.elts] if isinstance(gen.target, ast.Tuple) else None
        loops.append((_compile(gen.iter), names, gen.target.id if names is None else None,
                      [_compile(c) for c in gen.ifs]))

    def run(ctx: _Context, level: int, bound: dict[str, Any], out: list[Any]) -> None:
        items, names, name, ifs = loops[level]
        ctx.scopes.append(bound)
        try:
            values = items(ctx)
        finally:
            ctx.scopes.pop()
        for item in _iterable(values, "a comprehension"):
            ctx.steps -= 1
            if ctx.steps < 0:
                raise ctx.out_of_steps()
            inner = dict(bound)
            if names is not None:
                if not isinstance(item, (list, tuple)) or len(item) != len(names):
                    raise ExprError(f"cannot unpack {short_repr(item)} into {len(names)} names")
                inner.update(zip(names, item))
            else:
                inner[name] = item
            ctx.scopes.append(inner)
            try:
                if all(cond(ctx) for cond in ifs):
                    if level + 1 < len(loops):
                        run(ctx, level + 1, inner, out)
                    else:
                        out.append(element(ctx))
                        if len(out) > MAX_ITEMS:
                            raise ExprError(f"the list has more than {MAX_ITEMS:,} elements")
            finally:
                ctx.scopes.pop()

    def build(ctx: _Context) -> list[Any]:
        out: list[Any] = []
        run(ctx, 0, {}, out)
        return out
    return build


_COMPILERS: dict[type, Callable[[Any], Compiled]] = {
    ast.Constant: _constant, ast.Name: _name, ast.List: _list, ast.Tuple: _list, ast.Dict: _dict,
    ast.BinOp: _binop, ast.UnaryOp: _unaryop, ast.BoolOp: _boolop, ast.Compare: _compare, ast.IfExp: _ifexp,
    ast.Subscript: _subscript, ast.Call: _call, ast.ListComp: _comprehension, ast.GeneratorExp: _comprehension,
}
