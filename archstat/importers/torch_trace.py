"""Tracing a PyTorch module for the importer: its torch.fx graph in eval and in training mode,
what every node's value looks like (shapes, without computing anything), and which nodes of
the training graph run only in training.

Why torch.fx's symbolic tracer (``torch.fx.Tracer``) and not ``torch.export``: fx keeps the
module structure the user wrote. A leaf module (everything of ``torch.nn``, plus the
torchvision modules in :data:`LEAF_CLASSES`) is one ``call_module`` node whose target is its
qualified name in ``named_modules()`` (``layer1.0.conv1``), so a layer's name is the user's
module path and its parameters are the module's own; functional code (``x + y``,
``torch.cat``, ``x.mean((2, 3))``) is recorded at the level it was written, with the module
that ran it (``nn_module_stack``). It needs no example input, and traces each of the 68
torchvision CNNs in well under a second (ResNet-18: 0.01 s). ``torch.export`` records ATen
operators instead (``aten.conv2d``, ``aten.batch_norm``, ``aten.relu_``) with the parameters
lifted to graph inputs: module paths would have to be rebuilt from metadata, every pattern
matched at the ATen level, and exporting ResNet-18 takes 0.6 s with real example tensors.
What fx cannot follow is Python control flow on tensor values; such a module gets an error
that says so.

This module imports torch: import it only after checking that torch is installed.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.fx
from torch.utils import _pytree as pytree

from ..errors import ArchstatError, printable

#: modules outside torch.nn that the importer maps as a whole (kept as one call_module node)
LEAF_CLASSES = frozenset({
    "torchvision.models.convnext.LayerNorm2d",
    "torchvision.ops.stochastic_depth.StochasticDepth",
    "torchvision.ops.misc.Permute",
})
#: keyword arguments that differ between the eval and training graphs of the same operation
_MODE_KWARGS = frozenset({"training"})


def first_line(exc: BaseException) -> str:
    """An exception's message, its first line only (PyTorch appends the fx node's code)."""
    lines = str(exc).strip().splitlines()
    return printable(lines[0] if lines else type(exc).__name__, 160)


def qualname(cls: type) -> str:
    """``module.Class`` of a class: the key of the importer's tables."""
    return f"{cls.__module__}.{cls.__qualname__}"


@dataclass(frozen=True)
class TensorInfo:
    """What the shape pass records of a tensor value: its shape (batch axis first) and dtype."""

    shape: tuple[int, ...]
    dtype: str


class _Tracer(torch.fx.Tracer):
    """torch.fx's tracer, keeping torchvision's LayerNorm2d, StochasticDepth and Permute whole."""

    def is_leaf_module(self, m: torch.nn.Module, module_qualified_name: str) -> bool:
        return qualname(type(m)) in LEAF_CLASSES or super().is_leaf_module(m, module_qualified_name)


def trace(module: torch.nn.Module, training: bool, label: str) -> torch.fx.GraphModule:
    """The fx graph of ``module`` in eval (``training=False``) or training mode. The module is
    left as it was: its mode flags are restored, and the tensor constants fx stores on it
    (``_tensor_constant0``) live on in the GraphModule alone. Arguments of ``forward`` after
    the first are bound to their defaults (``concrete_args``)."""
    flags = [(m, m.training) for m in module.modules()]
    attrs = set(vars(module))
    module.train(training)
    try:
        tracer = _Tracer()
        graph = tracer.trace(module, concrete_args=_concrete_args(module, label))
        return torch.fx.GraphModule(tracer.root, graph, type(module).__name__)
    except ArchstatError:
        raise
    except Exception as exc:  # torch.fx raises TraceError, TypeError, RuntimeError, ... from user code
        raise ArchstatError(f"torch.fx could not trace the module in {'training' if training else 'eval'} mode: "
                            f"{type(exc).__name__}: {first_line(exc)}", file=label,
                            hint="fx follows Python code symbolically: control flow on tensor values, "
                                 "shapes read as Python numbers in conditions, or non-torch calls on tensors "
                                 "stop it; rewrite that part or mark its module as a leaf") from None
    finally:
        for m, flag in flags:
            m.training = flag
        for name in set(vars(module)) - attrs:   # fx keeps tensor constants on the module it traces
            delattr(module, name)


def _concrete_args(module: torch.nn.Module, label: str) -> dict[str, Any] | None:
    """Defaults for the arguments of ``forward`` after the first; an error when one has none."""
    try:
        params = list(inspect.signature(module.forward).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not positional:
        return None
    extra = [p for p in params[1:] if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    missing = [p.name for p in extra if p.default is p.empty]
    if missing:
        raise ArchstatError(f"forward() takes inputs besides the image: {', '.join(missing)}", file=label,
                            field="forward", hint="archstat models take one input tensor (N, C, H, W); wrap "
                                                  "the module so that the others are fixed")
    return {p.name: p.default for p in extra} or None


# ---------------------------------------------------------------------- shapes

class _Recorder(torch.fx.Interpreter):
    """Runs a graph and records a description of every node's value (tensors as TensorInfo)."""

    def __init__(self, gm: torch.fx.GraphModule):
        super().__init__(gm)
        self.values: dict[str, Any] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        result = super().run_node(n)
        self.values[n.name] = describe(result)
        return result


class _Run(torch.nn.Module):
    """A module whose forward is the recorder's run, so that functional_call can swap the
    graph's tensors for stand-ins while it runs."""

    def __init__(self, gm: torch.fx.GraphModule, recorder: _Recorder):
        super().__init__()
        self.gm = gm
        self.recorder = recorder

    def forward(self, x):
        return self.recorder.run(x)


def describe(value: Any) -> Any:
    """A value with every tensor replaced by its TensorInfo (torch.Size becomes a tuple)."""
    def one(v: Any) -> Any:
        if isinstance(v, torch.Tensor):
            return TensorInfo(tuple(int(d) for d in v.shape), str(v.dtype).replace("torch.", ""))
        if isinstance(v, torch.Size):
            return tuple(int(d) for d in v)
        return v
    return pytree.tree_map(one, value)


def propagate(gm: torch.fx.GraphModule, shape: tuple[int, ...], label: str) -> dict[str, Any]:
    """``{node name: described value}`` for one run of the graph on an input of ``shape``.

    The run is on PyTorch's meta device: every parameter, buffer and tensor attribute is
    swapped for a meta stand-in for the call (``torch.func.functional_call``), so nothing is
    computed, any input size costs the same, and the module's own state (batch norm's running
    statistics, in training mode too) is never touched. A graph that needs real tensors
    (an op without a meta kernel, a tensor created on the CPU inside forward: an error that
    names the meta device) is run on zeros instead, with copies of the buffers."""
    tensors = dict(_tensors(gm))
    dtype = next((t.dtype for t in tensors.values() if t.is_floating_point()), torch.float32)
    on_meta = any(t.is_meta for t in tensors.values())
    attempts = [("meta", {k: t.detach().to("meta") for k, t in tensors.items()})]
    if not on_meta:
        buffers = {k: t.detach().clone() for k, t in tensors.items() if not isinstance(t, torch.nn.Parameter)}
        attempts.append(("cpu", buffers))
    error = None
    for device, state in attempts:
        recorder = _Recorder(gm)
        x = torch.zeros(shape, dtype=dtype, device=device if device == "meta" else _device(tensors))
        try:
            with torch.no_grad():
                torch.func.functional_call(_Run(gm, recorder), {f"gm.{k}": v for k, v in state.items()}, (x,))
            return recorder.values
        except Exception as exc:  # any failure of the user's forward on stand-in tensors
            error = exc
            if not (isinstance(exc, NotImplementedError) or "meta" in str(exc).lower()):
                break   # a real error (a shape that does not fit): running on real tensors would repeat it
    raise ArchstatError(f"the module does not run on an input of shape {tuple(shape)}: {type(error).__name__}: "
                        f"{first_line(error)}", file=label, field="input_shape",
                        hint="check input_shape (C, H, W) and batch against what the module expects")


def _tensors(gm: torch.fx.GraphModule) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor the graph reads: parameters, buffers and tensor attributes (get_attr)."""
    seen = set()
    for name, t in [*gm.named_parameters(), *gm.named_buffers()]:
        seen.add(name)
        yield name, t
    for node in gm.graph.nodes:
        if node.op == "get_attr" and node.target not in seen:
            value = attribute(gm, node.target)
            if isinstance(value, torch.Tensor):
                seen.add(node.target)
                yield node.target, value


def attribute(root: torch.nn.Module, path: str) -> Any:
    """The object at a dotted attribute path of a module."""
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _device(tensors: dict[str, torch.Tensor]) -> torch.device:
    """Where the module's tensors are (the CPU for a module without any)."""
    return next(iter(tensors.values())).device if tensors else torch.device("cpu")


# ---------------------------------------------------------------------- graph structure

def is_container(node: torch.fx.Node) -> bool:
    """A call that only packs values (a namedtuple of outputs, tuple(), dict())."""
    target = node.target
    return node.op == "call_function" and isinstance(target, type) and issubclass(target, (tuple, list, dict))


def live_nodes(graph: torch.fx.Graph) -> set[torch.fx.Node]:
    """The nodes the output depends on, plus in-place operations on those (they change a
    tensor the output reads even when their own result is unused)."""
    nodes = list(graph.nodes)
    live = {n for n in nodes if n.op == "output"}
    changed = True
    while changed:
        changed = False
        for node in reversed(nodes):
            if node in live:
                new = [n for n in node.all_input_nodes if n not in live]
            elif _mutates(node) and node.all_input_nodes and node.all_input_nodes[0] in live:
                new = [node]
            else:
                continue
            if new:
                live.update(new)
                changed = True
    return live


def _mutates(node: torch.fx.Node) -> bool:
    """True for an in-place call: ``inplace=True``, or a name ending in one underscore."""
    if node.kwargs.get("inplace") is True:
        return True
    name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
    return isinstance(name, str) and name.endswith("_") and not name.endswith("__")


def output_nodes(graph: torch.fx.Graph) -> list[torch.fx.Node]:
    """The nodes whose values the graph returns (looking through tuples and namedtuples)."""
    found, todo = [], [n for n in graph.nodes if n.op == "output"]
    while todo:
        node = todo.pop()
        for src in node.all_input_nodes:
            if src.op == "output" or is_container(src):
                todo.append(src)
            elif src not in found:
                found.append(src)
    return found


# ---------------------------------------------------------------------- training-only nodes

def match_training_graph(eval_graph: torch.fx.Graph, train_graph: torch.fx.Graph) -> dict[torch.fx.Node, torch.fx.Node]:
    """For each node of the training graph that computes what a node of the eval graph
    computes, that eval node. The nodes left out are what only training computes (an
    auxiliary head, or a main path that differs: :func:`side_branches` tells them apart).

    Two nodes compute the same when they have the same operation (op, target, constant
    arguments, keyword ``training`` aside) on inputs that compute the same: a hash-consing
    of both graphs in execution order."""
    canon: dict[Any, torch.fx.Node] = {}
    ids: dict[torch.fx.Node, Any] = {}
    for node in eval_graph.nodes:
        if node.op == "output":
            continue
        key = _key(node, ids)
        canon.setdefault(key, node)
        ids[node] = ("eval", id(canon[key]))
    matched: dict[torch.fx.Node, torch.fx.Node] = {}
    train_ids: dict[torch.fx.Node, Any] = {}
    for node in train_graph.nodes:
        if node.op == "output":
            continue
        key = _key(node, train_ids)
        if key in canon:
            matched[node] = canon[key]
            train_ids[node] = ("eval", id(canon[key]))
        else:
            train_ids[node] = ("train", id(node))
    return matched


def side_branches(train_graph: torch.fx.Graph, matched: dict[torch.fx.Node, torch.fx.Node],
                  eval_outputs: list[torch.fx.Node]) -> tuple[list[torch.fx.Node], list[torch.fx.Node]]:
    """(the nodes of training-only side branches, the other nodes only training computes).

    A side branch (an auxiliary head) starts from values the eval graph computes and ends at
    the training graph's outputs: each of its nodes reads only eval values or branch nodes,
    and feeds only branch nodes or the outputs. What else training computes differently
    (stochastic depth or dropout written in Python, which changes the main path itself) is
    no layer of the inference graph: those nodes come second, for a note. When the training
    graph does not compute the eval graph's outputs at all, nothing is a side branch."""
    live = live_nodes(train_graph)
    extra = [n for n in train_graph.nodes if n in live and n not in matched and n.op != "output"
             and not is_container(n)]
    if not set(eval_outputs) <= set(matched.values()):
        return [], extra
    reads_eval: set[torch.fx.Node] = set()
    for node in extra:
        if all(src in matched or src in reads_eval for src in node.all_input_nodes):
            reads_eval.add(node)
    branch: set[torch.fx.Node] = set()
    for node in reversed(extra):
        users = [u for u in node.users if u in live]
        if node in reads_eval and users and all(u.op == "output" or is_container(u) or u in branch for u in users):
            branch.add(node)
    return [n for n in extra if n in branch], [n for n in extra if n not in branch]


def _key(node: torch.fx.Node, ids: dict[torch.fx.Node, Any]) -> Any:
    """What a node computes, given what its inputs compute (their ids)."""
    kwargs = tuple(sorted((k, _freeze(v, ids)) for k, v in node.kwargs.items() if k not in _MODE_KWARGS))
    target = node.target if isinstance(node.target, str) else id(node.target)
    if node.op == "get_attr" and node.target.startswith("_tensor_constant"):
        target = _constant_key(attribute(node.graph.owning_module, node.target))
    return node.op, target, _freeze(node.args, ids), kwargs


def _constant_key(value: Any) -> Any:
    """A tensor constant fx made during one trace, by value (each trace names its own)."""
    if not isinstance(value, torch.Tensor) or value.is_meta or value.numel() > 1024:
        return "constant", id(value)
    return "constant", tuple(value.shape), str(value.dtype), tuple(value.detach().cpu().flatten().tolist())


def _freeze(value: Any, ids: dict[torch.fx.Node, Any]) -> Any:
    """A hashable stand-in for an argument: nodes by their canonical id, containers as tuples."""
    if isinstance(value, torch.fx.Node):
        return ids[value]
    if isinstance(value, (list, tuple)):
        return type(value).__name__, tuple(_freeze(v, ids) for v in value)
    if isinstance(value, dict):
        return "dict", tuple(sorted((str(k), _freeze(v, ids)) for k, v in value.items()))
    if isinstance(value, slice):
        return "slice", _freeze(value.start, ids), _freeze(value.stop, ids), _freeze(value.step, ids)
    try:
        hash(value)
    except TypeError:
        return "unhashable", repr(value)
    return type(value).__name__, value
