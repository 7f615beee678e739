"""What another tool counts: a convention is that tool's rules, applied to archstat's layers.

The layer registry stays the one home of every shape and of archstat's own counts. A
convention only says what a tool makes of them: for each archstat layer type (or family),
a small rule that takes the layer as archstat sees it (:class:`LayerView`) and returns the
integer the tool reports for it. Each rule states, in its docstring, what the tool counts
and where in the tool's source that is written (``file:line`` at the pinned version), so
a reader can check it.

Conventions count at inference: layers that run only in training (an auxiliary head) count
0 for work conventions, as the tools run the models in eval mode with those heads off. A
parameter convention (``unit`` kind ``params``) counts every layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ..graph import Model
from ..layers.registry import Shape, numel

__all__ = ["LayerView", "Rule", "Convention", "rule", "modules_only", "per_element"]


@dataclass(frozen=True)
class LayerView:
    """One layer as a convention sees it: archstat's facts about it, with the batch axis."""

    name: str
    #: registry type name (``conv2d``) and family (``conv``)
    type: str
    family: str
    in_shapes: tuple[Shape, ...]
    out_shape: Shape
    attrs: Mapping[str, Any]
    #: the parameter and buffer tensors the layer uses, by name (its own and tied ones: a
    #: module called twice uses its weights at each call)
    params: Mapping[str, Shape]
    buffers: Mapping[str, Shape]
    #: names of the tensors it uses from another layer (``shares``): they count there
    tied: frozenset[str]
    #: archstat's own counts for the layer
    macs: int
    flops: int
    #: how the PyTorch source runs it: module, function, method or operator
    call: str
    #: per input: does it need a gradient in training (the image does not)
    input_grads: tuple[bool, ...]
    model: Model = field(repr=False, compare=False)

    @property
    def x(self) -> Shape:
        """The first input's shape."""
        return self.in_shapes[0]

    @property
    def batch(self) -> int:
        return self.out_shape[0]

    @property
    def is_module(self) -> bool:
        """True when the PyTorch source runs the layer as an nn.Module (hooks see it)."""
        return self.call == "module"

    @property
    def out_numel(self) -> int:
        return numel(self.out_shape)

    @property
    def in_numel(self) -> int:
        return numel(self.in_shapes[0])

    @property
    def affine(self) -> bool:
        """A norm with a learned scale (``affine`` of batch norm, ``elementwise_affine`` of
        layer norm)."""
        return bool(self.attrs.get("affine", self.attrs.get("elementwise_affine")))

    def per_norm_element(self, with_affine: int, without: int) -> int:
        """A norm's count: ``with_affine`` (or ``without``) per input element."""
        return self.in_numel * (with_affine if self.affine else without)

    def macs_plus_bias(self) -> int:
        """archstat's MACs plus one per output element when the layer has a bias."""
        return self.macs + (self.out_numel if "bias" in self.params else 0)

    def lrn_patched_calls(self) -> int:
        """What a tool that patches F.* and Tensor.mul/add counts of F.local_response_norm: it
        runs x.mul(x), F.avg_pool3d over the channel-padded squares (C + size - 1 channels),
        .mul(alpha) and .add(k): 3 per element + the padded squares."""
        n, c, h, w = self.x
        return 3 * self.in_numel + n * (c + self.attrs["size"] - 1) * h * w

    def param_count(self, *names: str) -> int:
        """Elements of the named parameters the layer uses (all of them when none are named)."""
        return sum(numel(s) for k, s in self.params.items() if not names or k in names)

    def own_params(self) -> int:
        """Elements of the parameters the layer holds itself (not tied ones)."""
        return sum(numel(s) for k, s in self.params.items() if k not in self.tied)

    def own_state(self) -> int:
        """Elements of the parameters and buffers the layer holds itself (not tied ones)."""
        return sum(numel(s) for group in (self.params, self.buffers) for k, s in group.items()
                   if k not in self.tied)

    def input_permuted(self) -> bool:
        """True when the first input is not C-contiguous in memory (a view of a permute)."""
        return not self.model.contiguous[self.model.layer(self.name).inputs[0]]

    def consumers(self) -> list[str]:
        """Type names of the layers that read this one."""
        return [self.model.layer(dst).type.name for dst in self.model.graph.successors(self.name)]


#: a rule: the tool's count for one layer
Rule = Callable[[LayerView], int]


def rule(source: str) -> Callable[[Rule], Rule]:
    """Decorator: attach the tool's source location (``file:line``) to a rule; its
    docstring says, in one line, what the tool counts."""
    def mark(fn: Rule) -> Rule:
        fn.source = source  # type: ignore[attr-defined]
        return fn
    return mark


def modules_only(fn: Rule) -> Rule:
    """A rule for tools that hook modules: a layer the source runs as a function, a Tensor
    method or an operator counts 0 (the tool never sees it)."""
    def counted(v: LayerView) -> int:
        return fn(v) if v.is_module else 0
    counted.__doc__, counted.__name__ = fn.__doc__, fn.__name__
    return counted


def per_element(k: int, source: str, doc: str, *, of: str = "input", modules: bool = False) -> Rule:
    """A rule of ``k`` per element of the layer's first input (``of="output"``: its output);
    with ``modules``, for a tool that sees modules only."""
    def count(v: LayerView) -> int:
        if modules and not v.is_module:
            return 0
        return k * (v.out_numel if of == "output" else v.in_numel)
    count.__doc__ = doc
    count.source = source  # type: ignore[attr-defined]
    return count


def zero(view: LayerView) -> int:
    """not counted"""
    return 0


zero.source = ""  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Convention:
    """One tool's way of counting.

    ``rules`` maps archstat layer type names, or family names, to rules; a type's own entry
    wins over its family's, and layers with neither count ``default`` (0 unless said).
    """

    #: the name users pass to ``--convention``
    name: str
    #: the tool, its pinned version and the entry point the numbers come from
    tool: str
    version: str
    entry: str
    #: what the tool calls the number (``Mult-Adds``, ``flops``, ``MACs``, ``params``)
    unit: str
    #: one line: why the total differs from archstat's MACs (or params)
    reason: str
    rules: Mapping[str, Rule]
    default: Rule = zero
    #: ``work`` (MACs or FLOPs of a forward pass), ``train`` (of a forward and backward pass)
    #: or ``params`` (every layer's state); the tools run in eval mode without auxiliary heads,
    #: so work and train leave out training-only layers
    kind: str = "work"
    #: the tool's units per multiply-accumulate of a conv or linear layer (2 when it counts FLOPs)
    per_mac: int = 1

    def rule_for(self, type_name: str, family: str) -> Rule:
        return self.rules.get(type_name) or self.rules.get(family) or self.default

    def count(self, view: LayerView) -> int:
        return int(self.rule_for(view.type, view.family)(view))
