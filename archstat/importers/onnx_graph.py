"""The ONNX graph as the importer walks it: nodes in a checked topological order, who
produces and who reads each value, attributes as Python values, the shapes the file states,
and archstat names for its nodes.

Conventions: a value is an ONNX tensor name; ``""`` is an omitted optional input. Node ops
are ``op_type`` in the default domain (``""`` or ``"ai.onnx"``) and ``domain.op_type``
elsewhere (``com.microsoft.FusedConv``), so a custom op never passes for a standard one.
"""
from __future__ import annotations

import heapq
import re
from pathlib import Path
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from ..errors import ArchstatError

#: the oldest default-domain opset the importer reads
MIN_OPSET = 7
_DEFAULT_DOMAINS = ("", "ai.onnx")
_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\-/]")
_RESERVED = ("input",)


@dataclass(eq=False)
class Node:
    """One ONNX node. ``index``: its position in the walk (topological) order."""

    index: int
    proto: Any
    op: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """How messages name the node: its name in the file, or its op and position."""
        return self.name or f"{self.op} #{self.index}"

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)


def attribute_values(proto: Any) -> dict[str, Any]:
    """A node's attributes as Python values: ints, floats, text, lists, tensors as arrays.
    Graph attributes (the bodies of If/Loop) are kept as protos."""
    from onnx import helper, numpy_helper

    attrs = {}
    for attr in proto.attribute:
        value = helper.get_attribute_value(attr)
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        elif hasattr(value, "data_type") and hasattr(value, "dims"):  # a TensorProto
            value = numpy_helper.to_array(value)
        elif isinstance(value, list) and value and isinstance(value[0], bytes):
            value = [v.decode("utf-8", "replace") for v in value]
        attrs[attr.name] = value
    return attrs


class OnnxGraph:
    """Nodes in topological order (the file's order wherever the dependencies allow), with
    producers, consumers and the graph's inputs and outputs.

    Raises
    ------
    ArchstatError
        For an opset older than 7, an empty graph, a value produced twice, a node reading a
        value nothing produces, or a cycle (naming the nodes on it).
    """

    def __init__(self, model: Any, label: str, base_dir: str | None = None):
        self.label = label
        self.model = model
        #: the folder external data files are read from (None: the model must hold its data)
        self.base_dir = base_dir
        graph = model.graph
        self.opset = self._opset(model)
        if not len(graph.node):
            raise ArchstatError("the ONNX graph has no nodes", file=label,
                                hint="export the model again; an empty graph has nothing to analyse")
        if len(graph.sparse_initializer):
            raise ArchstatError("sparse initializers are not supported", file=label,
                                hint="store the weights as dense tensors")
        self.initializers = {t.name: t for t in graph.initializer}
        self.graph_inputs = [v.name for v in graph.input]
        self.graph_outputs = [v.name for v in graph.output]
        self.nodes = self._sorted_nodes(graph.node)
        self.producer: dict[str, Node] = {}
        self.consumers: dict[str, list[Node]] = {}
        for node in self.nodes:
            for out in node.outputs:
                if out:
                    self.producer[out] = node
            for value in dict.fromkeys(node.inputs):
                if value:
                    self.consumers.setdefault(value, []).append(node)
        self.live = self._live_nodes()

    # -- construction -----------------------------------------------------------
    def _opset(self, model: Any) -> int:
        versions = {imp.domain: imp.version for imp in model.opset_import}
        version = next((versions[d] for d in _DEFAULT_DOMAINS if d in versions), None)
        if version is None:
            raise ArchstatError("the model imports no default ONNX opset", file=self.label,
                                hint="only models of the standard ONNX operators (ai.onnx) can be imported")
        if version < MIN_OPSET:
            raise ArchstatError(f"ONNX opset {version} is older than archstat reads (opset {MIN_OPSET} "
                                "and newer)", file=self.label,
                                hint="convert it with onnx.version_converter.convert_version(model, 13)")
        return int(version)

    def _sorted_nodes(self, protos: Iterable[Any]) -> list[Node]:
        protos = list(protos)
        made: dict[str, int] = {}
        for i, proto in enumerate(protos):
            for out in proto.output:
                if out and out in made:
                    raise ArchstatError(f"the value {out!r} is produced twice (by nodes "
                                        f"{_proto_label(protos, made[out])!r} and {_proto_label(protos, i)!r})",
                                        file=self.label, hint="an ONNX graph assigns each value once")
                made[out] = i
        known = set(self.initializers) | set(self.graph_inputs)
        waiting = [0] * len(protos)
        readers: dict[int, list[int]] = {}
        for i, proto in enumerate(protos):
            for value in set(proto.input):
                if not value or value in known and value not in made:
                    continue
                if value not in made:
                    raise ArchstatError(f"node {_proto_label(protos, i)!r} reads {value!r}, which no node "
                                        "produces and which is neither a graph input nor an initializer",
                                        file=self.label, layer=protos[i].name or None)
                waiting[i] += 1
                readers.setdefault(made[value], []).append(i)
        ready = [i for i, w in enumerate(waiting) if w == 0]
        heapq.heapify(ready)
        order = []
        while ready:
            i = heapq.heappop(ready)
            order.append(i)
            for j in readers.get(i, ()):
                waiting[j] -= 1
                if waiting[j] == 0:
                    heapq.heappush(ready, j)
        if len(order) < len(protos):
            self._raise_cycle(protos, made, [i for i, w in enumerate(waiting) if w > 0])
        return [self._node(k, protos[i]) for k, i in enumerate(order)]

    def _raise_cycle(self, protos: list[Any], made: dict[str, int], stuck: list[int]) -> None:
        import networkx as nx

        g = nx.DiGraph()
        for j in stuck:
            for value in protos[j].input:
                if value in made and made[value] in stuck:
                    g.add_edge(made[value], j)
        cycle = nx.find_cycle(g)
        path = " -> ".join(_proto_label(protos, u) for u, _ in cycle) + " -> " + _proto_label(protos, cycle[0][0])
        raise ArchstatError(f"the graph has a cycle: {path}", file=self.label,
                            layer=protos[cycle[0][0]].name or None,
                            hint="an ONNX graph must be acyclic (recurrences belong in a Loop node)")

    @staticmethod
    def _node(index: int, proto: Any) -> Node:
        op = proto.op_type if proto.domain in _DEFAULT_DOMAINS else f"{proto.domain}.{proto.op_type}"
        return Node(index, proto, op, proto.name, tuple(proto.input), tuple(proto.output),
                    attribute_values(proto))

    def _live_nodes(self) -> set[int]:
        """Indices of the nodes some graph output depends on."""
        live: set[int] = set()
        stack = [self.producer[v] for v in self.graph_outputs if v in self.producer]
        while stack:
            node = stack.pop()
            if node.index in live:
                continue
            live.add(node.index)
            stack.extend(self.producer[v] for v in node.inputs if v in self.producer)
        return live

    # -- initializers -------------------------------------------------------------
    def initializer_array(self, name: str) -> np.ndarray:
        """An initializer's values. External data is read straight into the array from its
        file (so a 2 GB model takes 2 GB once, not once in the ModelProto and again here)."""
        from onnx import numpy_helper
        from onnx.external_data_helper import uses_external_data

        tensor = self.initializers[name]
        try:
            if uses_external_data(tensor) and not tensor.HasField("raw_data"):
                return self._external_array(tensor)
            return numpy_helper.to_array(tensor)
        except ArchstatError:
            raise
        except Exception as exc:  # missing or malformed data
            raise ArchstatError(f"cannot read the initializer {name!r} ({type(exc).__name__}: {exc})",
                                file=self.label, hint="check that the file and its external data files "
                                "are complete") from None

    def _external_array(self, tensor: Any) -> np.ndarray:
        from onnx import helper
        from onnx.external_data_helper import ExternalDataInfo

        if self.base_dir is None:
            raise ArchstatError(f"the initializer {tensor.name!r} is stored in an external file that was not "
                                "loaded", file=self.label,
                                hint="pass the .onnx path, or onnx.load(path) with load_external_data=True")
        info = ExternalDataInfo(tensor)
        base = Path(self.base_dir).resolve()
        path = (base / info.location).resolve()
        if base != path.parent and base not in path.parents:
            raise ArchstatError(f"the initializer {tensor.name!r} points outside the model's folder "
                                f"({info.location!r})", file=self.label)
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).newbyteorder("<")
        count = int(np.prod(tensor.dims, dtype=np.int64))
        with open(path, "rb") as f:
            f.seek(info.offset or 0)
            data = np.fromfile(f, dtype=dtype, count=count)
        if data.size != count:
            raise ArchstatError(f"the external data file {info.location!r} ends before the initializer "
                                f"{tensor.name!r} ({data.size:,} of {count:,} values)", file=self.label,
                                hint="the file was cut short: copy it again")
        return data.astype(dtype.newbyteorder("="), copy=False).reshape(tuple(tensor.dims))

    # -- queries ----------------------------------------------------------------
    def readers(self, value: str) -> list[Node]:
        """The nodes that read ``value`` and matter (some output depends on them)."""
        return [n for n in self.consumers.get(value, ()) if n.index in self.live]

    def is_output(self, value: str) -> bool:
        return value in self.graph_outputs

    def used(self, value: str) -> bool:
        """Some node that matters reads ``value``, or it is a graph output."""
        return bool(value) and (bool(self.readers(value)) or self.is_output(value))

    def extra_outputs_used(self, node: Node) -> bool:
        """Any output of ``node`` after its first is used (batch statistics, pool indices)."""
        return any(self.used(v) for v in node.outputs[1:])

    def stored_shapes(self) -> dict[str, tuple[int | None, ...]]:
        """The shapes the file states (value_info and graph outputs): None for a symbolic or
        missing dimension."""
        graph = self.model.graph
        out = {}
        for info in list(graph.value_info) + list(graph.output):
            shape = tensor_shape(info)
            if shape is not None:
                out[info.name] = shape
        return out

    def dead_ops(self) -> Counter:
        """Ops of the nodes no output depends on, by op type (Constant nodes left out)."""
        return Counter(n.op for n in self.nodes if n.index not in self.live and n.op != "Constant")


def tensor_shape(info: Any) -> tuple[int | None, ...] | None:
    """The shape of a ValueInfoProto: None entries for symbolic dimensions; None when the
    file states no shape (or the value is not a tensor)."""
    if not info.type.HasField("tensor_type") or not info.type.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in info.type.tensor_type.shape.dim)


def _proto_label(protos: list[Any], i: int) -> str:
    return protos[i].name or f"{protos[i].op_type} #{i}"


class Names:
    """archstat layer names for ONNX nodes, unique, and the original of each.

    A node's name loses its leading slashes (the TorchScript exporter's scopes:
    ``/layer1/layer1.0/conv1/Conv`` becomes ``layer1/layer1.0/conv1/Conv``) and every
    character outside ``[A-Za-z0-9_.-/]`` becomes ``_``; a name that starts with ``.`` or
    ``-``, or is ``input`` (the model's input), or is taken, gets a suffix (``_2``, ...).
    Unnamed nodes are ``<op type>_<n>``, counted per op type from 0.

    Nodes of torch's dynamo exporter are named ``node_Conv_82``, but carry the module path
    that ran them (metadata ``pkg.torch.onnx.name_scopes``): they are named by it, as the
    PyTorch importer names layers: the module's path for a module without submodules
    (``features.0.0``, ``features.0.1`` for torchvision's LayerNorm2d), ``<module
    path>.<function>`` for an operation in the forward of a module with submodules
    (``layer1.0.add``), and the path of the weight a node alone reads where the exporter
    fused it into another module's node (batch norm into the conv before it:
    ``layer1.0.conv1``, not ``layer1.0.bn1``).
    """

    def __init__(self, graph: "OnnxGraph | None" = None):
        self.graph = graph
        self.original: dict[str, str] = {}
        self._unnamed: Counter = Counter()
        self._bases: dict[int, str] = {}
        self._parent_paths: set[str] | None = None

    def _base(self, node: Node) -> str:
        """The node's sanitised name (one per node, however many layers it gives)."""
        if node.index not in self._bases:
            scoped = self._module_path(node)
            if scoped:
                base = _NAME_CHARS.sub("_", scoped)
            elif node.name:
                base = _NAME_CHARS.sub("_", node.name.lstrip("/")) or "_"
            else:
                op = _NAME_CHARS.sub("_", node.op)
                base = f"{op}_{self._unnamed[op]}"
                self._unnamed[op] += 1
            self._bases[node.index] = "_" + base[1:] if base[0] in ".-" else base
        return self._bases[node.index]

    def _module_path(self, node: Node) -> str | None:
        """The name torch's dynamo exporter's metadata gives the node, or None."""
        meta = {p.key: p.value for p in getattr(node.proto, "metadata_props", ())}
        scopes = _listed(meta.get("pkg.torch.onnx.name_scopes"))
        if len(scopes) < 2:
            return None
        if self.graph is not None and len(node.inputs) > 1:
            weight = node.inputs[1]
            path, _, kind = weight.rpartition(".")
            if (kind == "weight" and path and weight in self.graph.initializers
                    and len(self.graph.readers(weight)) == 1):
                return path
        module, function = scopes[-2], re.sub(r"_\d+$", "", scopes[-1])
        if module and module not in self._parents():
            return module   # a module without submodules (Conv2d, torchvision's LayerNorm2d): its path
        return f"{module}.{function}" if module else function

    def _parents(self) -> set[str]:
        """The module paths of the dynamo metadata that have submodules in the graph."""
        if self._parent_paths is None:
            self._parent_paths = set()
            for node in self.graph.nodes if self.graph is not None else ():
                meta = {p.key: p.value for p in getattr(node.proto, "metadata_props", ())}
                scopes = _listed(meta.get("pkg.torch.onnx.name_scopes"))
                self._parent_paths.update(scopes[:-2])
        return self._parent_paths

    def make(self, node: Node, suffix: str = "") -> str:
        """A new unique layer name for ``node`` (``suffix`` for its second layer and on)."""
        base = self._base(node) + suffix
        name, k = base, 2
        while name in self.original or name in _RESERVED:
            name, k = f"{base}_{k}", k + 1
        self.original[name] = node.label
        return name


def _listed(text: str | None) -> list[str]:
    """A list the dynamo exporter writes as Python text: ``['', 'layer1', 'relu']``."""
    if not text or not text.startswith("[") or not text.endswith("]"):
        return []
    return [item.strip().strip("'\"") for item in text[1:-1].split(",")] if text[1:-1].strip() else []


def as_int_list(values: Any) -> list[int]:
    """Ints of an attribute or a constant array, as a plain list."""
    return [int(v) for v in np.asarray(values).reshape(-1)]
