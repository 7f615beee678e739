"""The translator of the PyTorch importer: walks a torch.fx graph and writes archstat layers.

Conventions:

* A tensor value of the fx graph is known by the name of the layer that computes it
  (``alias``); ``"input"`` is the model's input. Nodes that compute no tensor (``x.size()``,
  ``c // 2``: the shape arithmetic of ``view`` arguments) write no layer: the shapes of the
  shape pass say what they meant. An operation that returns its input (``nn.Identity``,
  ``contiguous``) writes none either: its value is the input's layer.
* An in-place operation (``inplace=True``, ``relu_``) changes the tensor it reads: every later
  reader of that tensor reads the new layer, as in PyTorch.
* Names: module paths for modules, ``<module path>.<operation>`` for functional operations
  (:mod:`.torch_names`).
* Layers that run only in training (a second pass over the training graph) are placed right
  after the last layer they read, so that reports read in execution order.
"""
from __future__ import annotations

import operator
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx

from ..errors import ArchstatError, short_repr
from ..layers import registry
from .torch_modules import MODULES, SAME, Unmappable
from .torch_names import INPUT, Namer, describe_target, op_base, scope_of
from .torch_trace import TensorInfo, attribute, is_container, qualname


def fmt_value(value: Any) -> str:
    """A described value for messages: shapes for tensors."""
    if isinstance(value, TensorInfo):
        return f"a tensor of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        items = [str(v.shape) if isinstance(v, TensorInfo) else short_repr(v) for v in value]
        return f"{len(value)} values: " + ", ".join(items)
    return short_repr(value)


def has_tensor(value: Any) -> bool:
    """True when a described value holds a tensor (False for shape arithmetic, constants)."""
    if isinstance(value, TensorInfo):
        return True
    if isinstance(value, (list, tuple)):
        return any(has_tensor(v) for v in value)
    if isinstance(value, dict):
        return any(has_tensor(v) for v in value.values())
    return False


def _from_input(graph: torch.fx.Graph, known: dict[torch.fx.Node, str]) -> set[torch.fx.Node]:
    """The nodes whose values depend on the model's input (placeholders, and nodes already
    translated in an earlier pass)."""
    found: set[torch.fx.Node] = set()
    for node in graph.nodes:
        if node.op == "placeholder" or node in known or any(n in found for n in node.all_input_nodes):
            found.add(node)
    return found


def tidy(type_name: str, fields: dict[str, Any]) -> dict[str, Any]:
    """Fields as a person writes them: ``[3, 3]`` as ``3``, and none that equals the type's
    default (the registry's ``Field.normalise`` judges equality, so ``1`` equals ``[1, 1]``)."""
    from ..layers import registry
    from ..layers.fields import INFERRED, REQUIRED

    schema = {f.name: f for f in registry.get(type_name).fields}
    out = {}
    for key, value in fields.items():
        spec_field = schema.get(key)
        if (spec_field is not None and spec_field.kind in ("pair", "padding", "size") and isinstance(value, list)
                and len(value) == 2 and value[0] == value[1]):
            value = value[0]
        if (spec_field is not None and spec_field.default not in (REQUIRED, INFERRED)
                and spec_field.normalise(value) == spec_field.normalise(spec_field.default)):
            continue
        out[key] = value
    return out


@dataclass
class Piece:
    """The result of chunk / split: the layer it cuts, how, and the name its pieces share."""

    source: str
    fields: dict[str, Any]
    base: str


class Translator:
    """Turns fx graphs into spec layers (see the module docstring). ``run`` translates the nodes
    of one graph; the eval graph first, then, with ``training_only``, the nodes that only the
    training graph has."""

    def __init__(self, root: torch.nn.Module, label: str, namer: Namer, allow_unknown: bool):
        self.root, self.label, self.namer, self.allow_unknown = root, label, namer, allow_unknown
        self.alias: dict[torch.fx.Node, str] = {}
        self.pieces: dict[torch.fx.Node, Piece] = {}
        self.layers: list[dict[str, Any]] = []
        self.tensors: dict[str, dict[str, torch.Tensor]] = {}   # layer -> registry name -> tensor
        self.uses: dict[int, list[str]] = defaultdict(list)    # id(tensor) -> layers that hold it
        self.uncounted: list[dict[str, Any]] = []
        self.opaque_modules: list[torch.nn.Module] = []
        self.opaque_params: dict[str, int] = {}   # opaque layer -> its module's parameter count
        self.outputs: list[str] = []
        self.notes: dict[str, list[str]] = {}   # a mapping's note -> the layers it applies to
        self.training_differs: list[str] = []     # fx nodes training computes that are no layers
        self.constants: list[str] = []            # unknown fx nodes that do not depend on the input
        self.attr_reads: set[int] = set()         # id() of the tensor attributes the graphs read
        self._anchor: dict[str, int] = {INPUT: -1}
        self._key: dict[str, tuple[int, int, int]] = {}
        # the pass under way
        self.values: dict[str, Any] = {}
        self.consumed: set[torch.fx.Node] = set()
        self.live: set[torch.fx.Node] = set()
        self.from_input: set[torch.fx.Node] = set()
        self.training_only = False
        self.batch = 1

    # ------------------------------------------------------------------ passes
    def run(self, gm: torch.fx.GraphModule, values: dict[str, Any], nodes: list[torch.fx.Node], *,
            batch: int, training_only: bool = False) -> None:
        """Translate ``nodes`` (in graph order) of ``gm``, whose values the shape pass gave."""
        from .torch_ops import translate_op

        self.root, self.values, self.training_only, self.batch = gm, values, training_only, batch
        self.consumed, self.live = set(), set(nodes)
        self.from_input = _from_input(gm.graph, self.alias)
        for node in nodes:
            if node in self.consumed:
                continue
            try:
                if node.op == "placeholder":
                    self._placeholder(node)
                elif node.op == "output":
                    self._output(node)
                elif node.op == "get_attr":
                    self.attr_reads.add(id(attribute(gm, node.target)))   # read by its consumer
                elif is_container(node) or not has_tensor(values.get(node.name)):
                    continue   # packing, shape arithmetic
                elif node.op == "call_module":
                    self._module(node)
                else:
                    translate_op(self, node)
            except Unmappable as exc:
                self.unknown(node, exc.reason)

    def seed(self, matched: dict[torch.fx.Node, torch.fx.Node]) -> None:
        """Before the training pass: its nodes that the eval graph has are the eval layers."""
        for train_node, eval_node in matched.items():
            if eval_node in self.alias:
                self.alias[train_node] = self.alias[eval_node]
            if eval_node in self.pieces:
                self.pieces[train_node] = self.pieces[eval_node]

    def ordered_layers(self) -> list[dict[str, Any]]:
        """The layers, training-only ones right after the last layer they read."""
        return sorted(self.layers, key=lambda entry: self._key[entry["name"]])

    # ------------------------------------------------------------------ node kinds
    def _placeholder(self, node: torch.fx.Node) -> None:
        if not isinstance(self.values.get(node.name), TensorInfo):
            return   # a forward() argument bound to its default
        if any(v == INPUT for v in self.alias.values()) and not self.training_only:
            raise ArchstatError(f"forward() takes a second tensor, {node.target!r}", file=self.label,
                                field="forward", hint="archstat models take one input tensor (N, C, H, W)")
        self.alias[node] = INPUT

    def _output(self, node: torch.fx.Node) -> None:
        if self.training_only:
            return
        sources = [self.alias[n] for n in node.all_input_nodes if n in self.alias]
        if not sources or all(s == INPUT for s in sources):
            raise ArchstatError("the module returns no tensor computed from its input", file=self.label,
                                hint="archstat analyses modules that map an image batch to outputs")
        self.outputs = sources

    def _module(self, node: torch.fx.Node) -> None:
        mod = self.root.get_submodule(node.target)
        mapping = MODULES.get(qualname(type(mod)))
        if mapping is None:
            raise Unmappable(None)
        if len(node.args) != 1 or node.kwargs:
            raise Unmappable("archstat's layer types read one tensor, this call passes "
                             f"{len(node.args) + len(node.kwargs)} arguments")
        mapped = mapping(mod, [self.shape(node.args[0])])
        if mapped is SAME:
            self.same(node, node.args[0])
            return
        inplace = node.args[0] if mapped.fields.get("inplace") else None
        name = self.emit(node, mapped.type, mapped.fields, [self.source(node.args[0])],
                         name=self.namer.module(node.target), tensors=mapped.tensors, inplace_of=inplace)
        if mapped.note:
            self.notes.setdefault(mapped.note, []).append(name)

    # ------------------------------------------------------------------ what handlers use
    def value(self, node: Any) -> Any:
        return self.values.get(node.name) if isinstance(node, torch.fx.Node) else node

    def shape(self, node: Any) -> tuple[int, ...]:
        """The shape (batch axis first) of a tensor argument."""
        value = self.value(node)
        if not isinstance(value, TensorInfo):
            raise Unmappable(f"expects a tensor where it gets {short_repr(value)}")
        return value.shape

    def source(self, node: Any) -> str:
        """The layer whose output a tensor argument is."""
        if isinstance(node, torch.fx.Node) and node in self.alias:
            return self.alias[node]
        if isinstance(node, torch.fx.Node) and node.op == "get_attr":
            raise Unmappable(f"reads the tensor attribute {node.target!r} directly")
        raise Unmappable(f"reads {short_repr(node if not isinstance(node, torch.fx.Node) else node.name)}, "
                         "which is not a tensor computed from the input")

    def same(self, node: torch.fx.Node, src: Any) -> None:
        """``node``'s value is ``src``'s tensor (no layer)."""
        self.alias[node] = self.source(src)

    def users(self, node: torch.fx.Node) -> list[torch.fx.Node]:
        """The live nodes of this pass that read ``node``."""
        return [u for u in node.users if u in self.live]

    def emit(self, node: torch.fx.Node, type_name: str, fields: dict[str, Any], inputs: list[str], *,
             name: str | None = None, base: str | None = None, tensors: dict[str, Any] | None = None,
             inplace_of: torch.fx.Node | None = None) -> str:
        """Write one layer; ``node``'s value becomes its output. ``base``: the operation's name,
        for a functional layer (``name`` is None)."""
        if name is None:
            name = self.namer.functional(scope_of(node), base or "op")
        entry: dict[str, Any] = {"name": name, "type": type_name, **tidy(type_name, fields), "inputs": list(inputs)}
        call = torch_call(node)
        if call != registry.get(type_name).torch_call:
            entry["call"] = call
        if self.training_only:
            entry["training_only"] = True
            anchor = max(self._anchor[i] for i in inputs)
        else:
            anchor = len(self.layers)
        self._anchor[name] = anchor
        self._key[name] = (anchor, int(self.training_only), len(self.layers))
        self.layers.append(entry)
        for registry_name, tensor in (tensors or {}).items():
            self.tensors.setdefault(name, {})[registry_name] = tensor
            self.uses[id(tensor)].append(name)
        if inplace_of is not None:   # later readers of the overwritten tensor read this layer
            old = self.alias[inplace_of]
            for other, layer in list(self.alias.items()):
                if layer == old:
                    self.alias[other] = name
        self.alias[node] = name
        return name

    def consume(self, *nodes: torch.fx.Node) -> None:
        """Nodes a pattern has translated together with the current one."""
        self.consumed.update(nodes)

    # ------------------------------------------------------------------ unknown
    def unknown(self, node: torch.fx.Node, reason: str | None) -> None:
        """A node archstat has no layer type for: an error naming it, its inputs' shapes and
        what archstat maps; with allow_unknown, an uncounted ``opaque`` layer."""
        what, op = describe_target(node, self.root)
        inputs = [n for n in node.all_input_nodes if isinstance(self.values.get(n.name), TensorInfo)]
        scope = scope_of(node)
        display = str(node.target) if node.op == "call_module" else f"{scope + '.' if scope else ''}{op_base(node)}"
        if not self.allow_unknown:
            from .torch_ops import supported_summary
            shapes = ", ".join(str(self.values[n.name].shape) for n in inputs) or "none"
            mode = ", in the training-only branch" if self.training_only else ""
            raise ArchstatError(f"{what} (fx node {node.name!r}{mode}, inputs {shapes}): "
                                f"{reason or 'archstat has no layer type for it'}", file=self.label,
                                layer=display, hint=supported_summary())
        if node not in self.from_input:
            self.constants.append(node.name)   # computed from parameters and constants alone
            return
        value, picked = self._passable(node)
        if value is None:
            raise ArchstatError(f"{what} (fx node {node.name!r}) returns {fmt_value(self.values.get(node.name))}: "
                                "only an operation that returns one tensor with the batch axis first (or whose "
                                "readers take one such item) can pass through uncounted",
                                file=self.label, layer=display, hint=reason)
        sources = list(dict.fromkeys(self.alias[n] for n in inputs if n in self.alias)) or [INPUT]
        name = self._opaque(node, op, sources, list(value.shape[1:]))
        for getitem in picked:   # the item its readers take is the layer's output
            self.alias[getitem] = name
            self.consume(getitem)

    def _passable(self, node: torch.fx.Node) -> tuple[TensorInfo | None, list[torch.fx.Node]]:
        """(the tensor an opaque layer can stand for, the getitem nodes that take it): the
        node's value, or the one item of a tuple (nn.MultiheadAttention's (output, weights))
        that all its readers take; None when there is no such tensor."""
        value = self.values.get(node.name)
        picked: list[torch.fx.Node] = []
        if isinstance(value, (list, tuple)):
            users = self.users(node)
            indices = {u.args[1] for u in users if u.target is operator.getitem and len(u.args) == 2}
            if len(indices) != 1 or len(users) != sum(u.target is operator.getitem for u in users):
                return None, []
            index = indices.pop()
            value = value[index] if isinstance(index, int) and -len(value) <= index < len(value) else None
            picked = users
        if not isinstance(value, TensorInfo) or len(value.shape) < 2 or value.shape[0] != self.batch:
            return None, []
        return value, picked

    def _opaque(self, node: torch.fx.Node, op: str, sources: list[str], out: list[int]) -> str:
        """An opaque layer (allow_unknown): the shape pass's output shape, no counts."""
        if node.op == "call_module":
            name = self.namer.module(node.target)
            module = self.root.get_submodule(node.target)
            self.opaque_modules.append(module)
            self.opaque_params[name] = sum(p.numel() for p in module.parameters())
        else:
            name = self.namer.functional(scope_of(node), op_base(node))
        self.emit(node, "opaque", {"op": op[:200], "output_shape": out}, sources, name=name)
        self.uncounted.append({"name": name, "op": op, "inputs": sources, "output_shape": out})
        return name


def torch_call(node: torch.fx.Node) -> str:
    """How the traced code ran ``node`` (``registry.TORCH_CALLS``): a module, a Tensor
    method, an operator (``x + y``, ``out += y``), a torch.* function (torch.cat,
    torch.relu) or another function (F.relu)."""
    if node.op == "call_module":
        return "module"
    if node.op == "call_method":
        return "method"
    if node.target is operator.getitem and isinstance(node.args[0], torch.fx.Node):
        return torch_call(node.args[0])   # one output of a call with several (x.chunk(2))
    home = getattr(node.target, "__module__", None)
    if home in ("operator", "_operator"):
        return "operator"
    return "torch" if home in ("torch", "torch.functional") else "function"
