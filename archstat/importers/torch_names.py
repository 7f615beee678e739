"""Names and descriptions for the PyTorch importer: the layer name of a module call or a
functional operation, and how messages name what a node calls.

A module's layer is its qualified name in ``named_modules()`` (``layer1.0.conv1``), its second
call ``layer1.0.conv1_1``; a functional operation is ``<path of the module whose forward ran
it>.<operation>`` (``layer1.0.add``, ``flatten``), numbered ``_1``, ``_2`` within that module
when repeated. Characters a spec name cannot hold (it takes letters, digits and ``_ . - /``)
become ``_``; ``input`` is the model input's name.
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

import torch
import torch.fx

_NAME_BAD = re.compile(r"[^A-Za-z0-9_.\-/]")
INPUT = "input"


def sanitize(name: str) -> str:
    """A spec layer name for a module path or op name (letters, digits, ``_ . - /``)."""
    name = _NAME_BAD.sub("_", name) or "_"
    return name if re.match(r"[A-Za-z0-9_]", name) else "_" + name


class Namer:
    """Hands out unique layer names. ``reserved``: every module path and tensor attribute the
    graphs use, so that an operation's name never takes a module's."""

    def __init__(self, reserved: Iterable[str]):
        self.reserved = {sanitize(r) for r in reserved}
        self.taken = {INPUT}
        self.calls: Counter = Counter()
        #: module paths whose first call's layer is not named exactly so -> that layer's name
        self.renamed: dict[str, str] = {}

    def module(self, path: str) -> str:
        """The k-th call of a module: its path, then ``path_1``, ``path_2``, ..."""
        base, k = sanitize(path), self.calls[path]
        self.calls[path] += 1
        name = self._take(base) if k == 0 and base not in self.taken else self._fresh(base, max(k, 1))
        if k == 0 and name != path:
            self.renamed[path] = name
        return name

    def functional(self, scope: str, base: str) -> str:
        """``scope.base`` (``base`` at the top level), numbered when taken."""
        name = sanitize(f"{scope}.{base}" if scope else base)
        if name not in self.taken and name not in self.reserved:
            return self._take(name)
        return self._fresh(name, 1)

    def exact(self, name: str) -> str:
        """``name`` itself when free, else numbered."""
        name = sanitize(name)
        return self._take(name) if name not in self.taken else self._fresh(name, 1)

    def _fresh(self, base: str, k: int) -> str:
        while f"{base}_{k}" in self.taken or f"{base}_{k}" in self.reserved:
            k += 1
        return self._take(f"{base}_{k}")

    def _take(self, name: str) -> str:
        self.taken.add(name)
        return name


def scope_of(node: torch.fx.Node) -> str:
    """The path of the module whose forward ran a functional node ("" at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack), "") if stack else ""


def op_base(node: torch.fx.Node) -> str:
    """The name a functional node's layer is built from: the function or method (``relu_``
    and ``iadd`` as ``relu`` and ``add``)."""
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "op")
    name = str(name).strip("_") or "op"
    return name[1:] if name in ("iadd", "imul") else name


def describe_target(node: torch.fx.Node, root: torch.nn.Module) -> tuple[str, str]:
    """(what the node calls, for messages; the op text of an opaque layer)."""
    if node.op == "call_module":
        cls = type(root.get_submodule(node.target))
        where = "torch.nn" if cls.__module__.startswith("torch.nn.modules") else cls.__module__
        return f"module {where}.{cls.__name__}", cls.__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}", f"Tensor.{node.target}"
    return op_text(node.target), op_text(node.target)


def op_text(function: Any) -> str:
    """``module.name`` of a function as users write it (``torch.nn.functional.avg_pool2d``)."""
    module = getattr(function, "__module__", None) or "torch"
    module = {"torch._C._nn": "torch.nn.functional", "_operator": "operator",
              "torch._C._VariableFunctions": "torch"}.get(module, module)
    return f"{module}.{getattr(function, '__name__', function)}"
