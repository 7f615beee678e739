"""The layer registry: one object per layer type, registered once under its spec name.

Each layer type owns, side by side, every fact archstat knows about it:

* ``fields``: the spec fields (PyTorch names), their kinds, defaults, which are required
  (:mod:`.fields`);
* ``output_shape(in_shapes, attrs)``: the shape rule;
* ``param_shapes`` / ``buffer_shapes``: trainable parameters and non-trainable buffers,
  so that every count is derived from a shape and never written twice;
* ``macs`` and ``flops``, whose counting rule is the class docstring's ``Counts:`` line;
* ``window``: the receptive-field geometry (kernel, stride, padding, dilation per axis);
* ``forward`` / ``backward``: the NumPy kernels the engine runs.

Conventions: shapes are int tuples *with* the batch dimension, NCHW for images and
``(N, F)`` for flat features. A MAC is one multiply-accumulate of conv, locally
connected or linear. FLOPs are 2 per MAC plus the elementwise work the layer does,
by the rule its docstring states.

Nothing outside :mod:`archstat.layers` branches on a layer type's name: it looks the
type up here and asks it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Sequence

from ..errors import ArchstatError, did_you_mean, short_repr
from .fields import INFERRED, MAX_INT, REQUIRED, Attrs, Field  # noqa: F401 (the registry's vocabulary)

Shape = tuple[int, ...]


class Forward(NamedTuple):
    """A layer's forward counts, handed to :meth:`LayerType.backward_flops`."""

    macs: int
    flops: int
    params: Mapping[str, Shape]


@dataclass(frozen=True)
class Window:
    """Receptive-field geometry of a windowed layer, per spatial axis ``(h, w)``.

    ``padding`` is the padding before the first element (top, left): what shifts the
    first window's centre. A pointwise layer has no window (``None`` from ``window``).

    ``uniform`` is False when the windows differ between output positions (an adaptive pool
    whose windows vary in size or step, e.g. 13 -> 7).
    Then ``kernel`` is the largest window and ``stride`` the largest step between window
    starts, so the field computed from them is the largest of any output (an upper bound),
    and the analysis reports ``rf_aligned`` false from that layer on.
    """

    kernel: tuple[int, int]
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int] = (1, 1)
    uniform: bool = True

# ------------------------------------------------------------------------ layer types

class LayerType:
    """Base of every layer type. Subclasses set the class attributes and override methods.

    Class attributes
    ----------------
    name : the spec name (``conv2d``), used in specs and every report.
    alias : prefix of derived layer names (``conv`` gives ``conv1``, ``conv2``, ...).
    fields : the spec fields.
    min_inputs, max_inputs : how many inputs the layer takes (``None``: unbounded).
    """

    name: ClassVar[str] = ""
    alias: ClassVar[str] = ""
    family: ClassVar[str] = ""
    fields: ClassVar[tuple[Field, ...]] = ()
    min_inputs: ClassVar[int] = 1
    max_inputs: ClassVar[int | None] = 1

    # -- description, generated documentation ---------------------------------
    @classmethod
    def summary(cls) -> str:
        """First paragraph of the docstring, on one line."""
        paragraph = []
        for line in (cls.__doc__ or "").strip().splitlines():
            if not line.strip():
                break
            paragraph.append(line.strip())
        return " ".join(paragraph)

    @classmethod
    def counting_rule(cls) -> str:
        """The ``Counts:`` paragraph of the docstring: how MACs and FLOPs are counted."""
        doc = (cls.__doc__ or "")
        lines = [ln.strip() for ln in doc.splitlines()]
        for i, ln in enumerate(lines):
            if ln.startswith("Counts:"):
                rule = [ln[len("Counts:"):].strip()]
                for more in lines[i + 1:]:
                    if not more:
                        break
                    rule.append(more)
                return " ".join(r for r in rule if r)
        raise AssertionError(f"layer type {cls.name!r} has no 'Counts:' rule in its docstring")

    # -- spec validation -------------------------------------------------------
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    def normalise(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Validate a layer's raw spec fields; return attrs with defaults filled in.

        Raises ArchstatError (with ``field`` set, file/layer filled in by the caller).
        """
        known = {f.name: f for f in self.fields}
        for key in raw:
            if key not in known:
                allowed = ", ".join(known) if known else "no fields"
                raise ArchstatError(
                    f"unknown field for a {self.name} layer (it takes: {allowed})",
                    field=str(key), hint=did_you_mean(str(key), known))
        attrs: dict[str, Any] = {}
        for f in self.fields:
            if f.name in raw:
                attrs[f.name] = f.normalise(raw[f.name])
            elif f.required:
                raise ArchstatError(f"missing required field ({f.describe()})", field=f.name)
            elif f.default is INFERRED or f.default is None:
                attrs[f.name] = None
            else:
                attrs[f.name] = f.normalise(f.default)
        self.check_attrs(attrs)
        return Attrs(attrs)

    def check_attrs(self, attrs: dict[str, Any]) -> None:
        """Checks between fields that need no shapes (override where needed)."""

    # -- the facts -------------------------------------------------------------
    def output_shape(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> Shape:
        raise NotImplementedError

    def param_shapes(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> dict[str, Shape]:
        """Trainable parameters by name (PyTorch's names: ``weight``, ``bias``)."""
        return {}

    def buffer_shapes(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> dict[str, Shape]:
        """Non-trainable state by name (batch norm's running statistics)."""
        return {}

    def initial_buffer(self, name: str, shape: Shape) -> Any:
        """The value a buffer starts from (zeros unless the type says otherwise)."""
        import numpy as np
        return np.zeros(shape)

    def initial_param(self, name: str, shape: Shape, fan_in: int, rng: Any,
                      attrs: Mapping[str, Any] | None = None) -> Any:
        """The value a parameter starts from: a new float array of ``shape`` (the engine casts it).

        Default: a ``bias`` is zeros; a weight of a layer with MACs (``fan_in`` > 0: MACs per
        output element) is He uniform, U(-b, b) with b = sqrt(6 / fan_in), so its variance is
        He's 2 / fan_in (He et al. 2015, Eq. 10; torch.nn.init.kaiming_uniform_ with
        mode='fan_in', nonlinearity='relu'), drawn in float32 whatever the engine computes in
        (the same seed gives float32 and float64 runs the same weights; uniform float32 draws
        are several times cheaper than normal float64 ones: VGG-16's 138M weights in a
        fraction of a second); any other weight is ones (a scale starts as the identity).
        ``rng`` is this parameter's own numpy Generator (seeded by the seed, the layer's and
        the parameter's names). Override where a type starts elsewhere (``attrs``: the layer's
        normalised fields).
        """
        import numpy as np
        if name == "bias":
            return np.zeros(shape, np.float32)
        if fan_in > 0:
            w = rng.random(shape, dtype=np.float32)
            bound = np.float32(np.sqrt(6.0 / fan_in))
            w *= 2 * bound
            w -= bound
            return w
        return np.ones(shape, np.float32)

    def macs(self, in_shapes: Sequence[Shape], out_shape: Shape, attrs: Mapping[str, Any]) -> int:
        return 0

    def flops(self, in_shapes: Sequence[Shape], out_shape: Shape, attrs: Mapping[str, Any]) -> int:
        raise NotImplementedError

    def backward_flops(self, in_shapes: Sequence[Shape], out_shape: Shape, attrs: Mapping[str, Any],
                       input_grads: Sequence[bool], forward: "Forward | None" = None) -> int:
        """FLOPs of the layer's backward pass in a training step; ``input_grads[i]`` says whether
        input i needs a gradient (the image does not, nor anything computed from it alone);
        ``forward``: the layer's forward counts, when the caller has them already.

        Default, for a layer with MACs (conv, linear): each input gradient costs 2 FLOPs per
        forward MAC (the transposed product), the weight gradient 2 per MAC again, and a bias
        gradient one add per output element: backward = 2x the forward's MAC FLOPs, as torch's
        FlopCounterMode counts conv and matmul gradients. For any other layer: its forward
        FLOPs again when an input needs a gradient or it has parameters (the chain rule through
        elementwise work costs about the work itself); types whose gradient is cheaper or dearer
        override this.
        """
        if forward is None:   # the forward's counts, when the caller has not computed them
            forward = Forward(self.macs(in_shapes, out_shape, attrs), self.flops(in_shapes, out_shape, attrs),
                              self.param_shapes(in_shapes, attrs))
        macs, params = forward.macs, forward.params
        if macs:
            grads = 2 * macs * sum(1 for needed in input_grads if needed)
            if params:
                grads += 2 * macs + (numel(out_shape) if "bias" in params else 0)
            return grads
        if params or any(input_grads):
            return forward.flops
        return 0

    def window(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> Window | None:
        """Receptive-field geometry over the (H, W) axes of an NCHW input; ``None`` for a
        pointwise layer."""
        return None

    def mixing_axes(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> tuple[int, ...]:
        """Axes of the input along which every output element reads the whole extent (a layer
        norm's normalised axes, a softmax's dim): wherever the image's H or W axis sits among
        them, the receptive field spans that whole axis. Empty for most types."""
        return ()

    def permutation(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> tuple[int, ...] | None:
        """Output axis i is input axis ``permutation[i]`` (a permute); None when the axes stay
        where they are. Receptive fields follow the image's H and W axes through it."""
        return None

    #: the output is a view of the input (flatten; dropout at inference): no new storage
    is_view: ClassVar[bool] = False
    #: False for a layer archstat passes through without counting (an imported node it has no
    #: type for): reports list such layers as not counted
    counted: ClassVar[bool] = True
    #: the output is never negative (ReLU, sigmoid): zero padding before a max pool of it
    #: changes nothing (importers fold such a Pad into the pool)
    non_negative: ClassVar[bool] = False
    #: how PyTorch code usually runs this layer: ``module`` (an nn.Module), ``function``
    #: (torch.nn.functional.*, or a Python function), ``torch`` (a torch.* function:
    #: torch.cat, torch.flatten), ``method`` (a Tensor method: x.chunk) or ``operator``
    #: (x + y, x * y). A spec layer's ``call`` says where its source differs (F.relu in
    #: Inception). Only peer tools' conventions read it: tools that hook modules do not see a
    #: function call, and tools that patch F.* do not see torch.*.
    torch_call: ClassVar[str] = "module"

    def view_strides(self, in_shape: Shape, in_strides: Shape, attrs: Mapping[str, Any]) -> Shape | None:
        """For a view type: the strides (in elements) of the output, given the input's shape and
        strides, or None when no view of this input exists and the layer copies (a flatten of a
        permuted tensor). The default keeps the input's layout (dropout at inference)."""
        return tuple(in_strides)

    def writes_in_place(self, attrs: Mapping[str, Any]) -> bool:
        """True when the layer overwrites its input (PyTorch ``inplace=True``)."""
        return bool(attrs.get("inplace", False))

    #: True for a type whose forward kernel writes its output into :attr:`RunContext.out`
    #: when it is given one (a slice of a concatenation's buffer); otherwise the executor
    #: copies the output there, and the output's own array is extra memory for that step
    writes_out: ClassVar[bool] = False

    #: True for a type whose output is its inputs laid end to end along one axis (a
    #: concatenation); :meth:`joined_axis` says which axis
    joins: ClassVar[bool] = False

    #: True for a type whose forward can fold :attr:`RunContext.affine`, a scale and shift per
    #: output channel of the layer after it, into its own weights and bias (a convolution, for
    #: the batch norm after it at inference: :mod:`archstat.engine.folding`)
    absorbs_affine: ClassVar[bool] = False

    def absorbed_attrs(self, attrs: Mapping[str, Any]) -> Mapping[str, Any]:
        """For a type that :attr:`absorbs_affine`: its attrs as its forward runs with an affine
        folded in (a convolution then has a bias), for :meth:`workspace_bytes`."""
        return attrs

    def absorb_bytes(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any], itemsize: int) -> int:
        """For a type that :attr:`absorbs_affine`: the bytes of folded weights and bias its
        forward makes when it folds an affine in (held while its kernel runs)."""
        return 0

    def affine_at_inference(self, attrs: Mapping[str, Any]) -> bool:
        """True for a layer that is, at inference, a fixed scale and shift per channel (axis
        1) of its one input: a batch norm with running statistics."""
        return False

    def inference_affine(self, params: Mapping[str, Any], buffers: Mapping[str, Any],
                         attrs: Mapping[str, Any], dtype: Any) -> tuple[Any, Any]:
        """For :meth:`affine_at_inference`: ``(scale, shift)``, (C,) arrays of ``dtype``, with
        y = x * scale + shift per channel, from the current parameters and buffers."""
        raise NotImplementedError(f"{self.name} is not an affine layer at inference")

    def joined_axis(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> int | None:
        """For a type that :attr:`joins`: the axis its inputs are laid along (non-negative,
        batch included). The engine then writes each input straight into its slice of the
        output (:mod:`archstat.placement`). None otherwise."""
        return None

    def shares_input_storage(self, attrs: Mapping[str, Any]) -> bool:
        """True when the output needs no storage of its own: in place, or a view."""
        return self.is_view or self.writes_in_place(attrs)

    def training_extra_bytes(self, out_elements: int, itemsize: int,
                             attrs: Mapping[str, Any] | None = None) -> int:
        """Storage a training step needs beyond what inference counts for this layer's output.

        ``attrs`` (the layer's fields) lets a type count what only one setting keeps, such as
        the copy of the input an in-place layer saves for backward; without them a type
        counts the larger case.
        """
        return 0

    # -- engine kernels (filled in per family) -----------------------------------
    #: the algorithms the engine's kernels of this type can run, the reference (the lecture's
    #: algorithm, the default) first; () for a type with one way to run. Which of them apply to
    #: one layer says :meth:`algorithms`; the executor tells the kernel in ``RunContext.algorithm``
    algorithm_names: ClassVar[tuple[str, ...]] = ()

    def algorithms(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any]) -> tuple[str, ...]:
        """The algorithms of :attr:`algorithm_names` that can run this layer (the reference
        first), or () when there is no choice."""
        return ()

    def algorithm_work(self, algorithm: str, attrs: Mapping[str, Any]) -> float:
        """The multiplies ``algorithm`` does, as a fraction of the direct count the analysis'
        MACs give (Winograd F(2x2,3x3): 16/36): a rate of the direct FLOPs above the GEMM
        peak is then no measuring error, as long as this fraction of it stays below."""
        return 1.0

    def workspace_bytes(self, in_shapes: Sequence[Shape], attrs: Mapping[str, Any], itemsize: int,
                        algorithm: str | None = None, limit: int | None = None) -> int:
        """Bytes the inference forward kernel allocates beyond its output while it runs, at
        their peak (im2col's columns, Winograd's buffers, a padded copy of the input), for
        C-contiguous inputs of ``in_shapes`` (batch included) and ``algorithm`` (None: the
        reference), when the executor caps it at ``limit`` bytes (:attr:`RunContext.workspace`;
        a kernel that can shrink its blocks fits under the cap as far as its smallest block
        allows, others ignore it). The executor adds it to the live activations of the layer's
        step (:meth:`archstat.engine.Executor.predict_memory`). Default 0: the kernel allocates
        nothing but its output, or only cache-sized scratch."""
        return 0

    def forward(self, xs: Sequence[Any], params: Mapping[str, Any], attrs: Mapping[str, Any],
                ctx: "RunContext") -> tuple[Any, Any]:
        """Return ``(y, cache)``; ``cache`` is what ``backward`` needs."""
        raise NotImplementedError(f"no forward kernel for {self.name}")

    def backward(self, dy: Any, cache: Any) -> tuple[list[Any], dict[str, Any]]:
        """Return ``(dxs, dparams)``: gradients for each input and each parameter."""
        raise NotImplementedError(f"no backward kernel for {self.name}")


@dataclass
class RunContext:
    """What a kernel may need beyond its inputs: training flag and a random generator."""

    train: bool = False
    rng: Any = None
    buffers: dict[str, Any] = field(default_factory=dict)
    #: the caller keeps the cache for backward; False lets an in-place kernel skip saving
    #: what only backward needs (a copy of its input)
    keep_cache: bool = True
    #: the algorithm to run (one of the layer's ``algorithms``), None for the type's reference
    algorithm: str | None = None
    #: where the output goes (a slice of a concatenation's buffer, :mod:`archstat.placement`),
    #: None for a new array. A kernel that can write there does and returns it; otherwise the
    #: executor copies its output there.
    out: Any = None
    #: a cap in bytes on the kernel's workspace (:meth:`LayerType.workspace_bytes` with
    #: ``limit``), None for none: kernels with blocks take smaller ones to fit under it
    workspace: int | None = None
    #: ``(scale, shift)`` per output channel of the next layer, to fold into this one's
    #: weights and bias (:attr:`LayerType.absorbs_affine`), None for none
    affine: Any = None


# ------------------------------------------------------------------------- the registry

_REGISTRY: dict[str, LayerType] = {}

#: the ways PyTorch code runs a layer (``LayerType.torch_call``, a spec layer's ``call``)
TORCH_CALLS = ("module", "function", "torch", "method", "operator")


def register(cls: type[LayerType]) -> type[LayerType]:
    """Class decorator: instantiate the layer type and register it under ``cls.name``.

    Refuses a duplicate name, and a type without a counting rule.
    """
    if not cls.name or not cls.alias:
        raise AssertionError(f"{cls.__name__} needs a name and an alias")
    if cls.name in _REGISTRY:
        raise AssertionError(f"layer type {cls.name!r} is registered twice")
    cls.counting_rule()  # must exist
    _REGISTRY[cls.name] = cls()
    return cls


def get(type_name: Any, *, internal: bool = False) -> LayerType:
    """Look up a layer type by its spec name; ArchstatError with did-you-mean otherwise.

    The model's ``input`` is a registered type but not one a spec may name; only the graph
    builder asks for it (``internal=True``).
    """
    ltype = _REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if ltype is None:  # the families register on import: import them, then look again
        _load_families()
        ltype = _REGISTRY.get(type_name) if isinstance(type_name, str) else None
    if ltype is None or (ltype.min_inputs == 0 and not internal):
        names = [n for n, t in _REGISTRY.items() if t.min_inputs > 0]
        hint = did_you_mean(str(type_name), names)
        if ltype is not None:
            hint = "the model's input is implicit: set its size with the top-level 'input' key"
        raise ArchstatError(
            f"unknown layer type {short_repr(type_name)} (known types: {', '.join(sorted(names))})",
            field="type", hint=hint)
    return ltype


def all_types() -> dict[str, LayerType]:
    """Every registered layer type, by spec name, in registration order."""
    _load_families()
    return dict(_REGISTRY)


def _load_families() -> None:
    """Import every module of this package: the layer types and kernels register on import,
    so a new family module needs no list to be found."""
    global _LOADED
    if _LOADED:
        return
    import importlib
    import pkgutil

    package = __name__.rsplit(".", 1)[0]
    for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
        importlib.import_module(f"{package}.{info.name}")
    _LOADED = True


_LOADED = False


class Family(NamedTuple):
    """A family of layer types (one module of this package): ``label`` names it for people,
    ``rank`` orders families in tables, legends and colours (heavy ones first)."""

    name: str
    label: str
    rank: int


_FAMILIES: dict[str, Family] = {}


def declare_family(name: str, label: str, rank: int) -> str:
    """Declare a family (once, at the top of its module); returns ``name`` for the types'
    ``family`` attribute."""
    _FAMILIES[name] = Family(name, label, rank)
    return name


def families() -> dict[str, Family]:
    """Every family, by name, in rank order."""
    _load_families()
    return {f.name: f for f in sorted(_FAMILIES.values(), key=lambda f: f.rank)}
#: the functional kernels, by name (see :func:`kernel`)
_KERNELS: dict[str, Callable[..., Any]] = {}


def kernel(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator: ``fn`` is a functional kernel of the engine, re-exported as
    ``archstat.engine.<name>`` (``op(x, ...)``, ``op_backward(dy, ...)``). The one mark a new
    kernel needs; the engine's list is derived from it."""
    if _KERNELS.setdefault(fn.__name__, fn) is not fn:
        raise RuntimeError(f"two kernels named {fn.__name__!r}: {_KERNELS[fn.__name__].__module__} and {fn.__module__}")
    return fn


def kernels() -> dict[str, Callable[..., Any]]:
    """Every functional kernel, by name (the families are imported first)."""
    _load_families()
    return dict(_KERNELS)


# ----------------------------------------------------------------- shape helpers

def numel(shape: Shape) -> int:
    """Number of elements of a shape (exact int)."""
    return math.prod(shape)


#: bytes of input per block of a cache-blocked kernel: about the 1 MiB L2 cache of the
#: machines of shared/reference/perf-anchors.md (256 KiB and 4 MiB blocks measured slower
#: for the pools)
CACHE_BLOCK_BYTES = 2**20


@dataclass(frozen=True)
class CacheBlocks:
    """How :func:`cache_blocks` cuts an (N, C, ...) array: ``images`` whole images per block
    (``channels`` = C), or bands of ``channels`` channels of one image (``images`` = 1).
    Every block has that extent but the last of the batch, or of each image's bands, which
    may be smaller. Iterating gives the blocks; ``count`` and indexing need no listing."""

    n: int
    c: int
    images: int
    channels: int
    whole: bool    # blocks of whole images (else bands of channels)

    @classmethod
    def of(cls, shape: Shape, itemsize: int, block_bytes: int = CACHE_BLOCK_BYTES) -> "CacheBlocks":
        n, c = shape[:2]
        plane = max(1, numel(shape[2:]) * itemsize)
        if c * plane <= block_bytes:
            return cls(n, c, block_bytes // max(1, c * plane), c, True)
        return cls(n, c, 1, max(1, block_bytes // plane), False)

    @property
    def bands(self) -> int:
        """Blocks per image (1 when blocks are whole images)."""
        return 1 if self.whole else -(-self.c // self.channels)

    @property
    def count(self) -> int:
        """How many blocks (a Python int: no listing, any batch)."""
        return -(-self.n // self.images) if self.whole else self.n * self.bands

    def __iter__(self):
        return (self[j] for j in range(self.count))

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, j: int) -> tuple[slice, slice]:
        """Block ``j`` as ``(images, channels)`` slices."""
        if self.whole:
            n0 = j * self.images
            return slice(n0, min(self.n, n0 + self.images)), slice(None)
        i, band = divmod(j, self.bands)
        c0 = band * self.channels
        return slice(i, i + 1), slice(c0, min(self.c, c0 + self.channels))


def cache_blocks(shape: Shape, itemsize: int, block_bytes: int = CACHE_BLOCK_BYTES):
    """``(images, channels)`` slices cutting an (N, C, ...) array into blocks of about
    ``block_bytes``: several whole images when one is small, else bands of channels of one
    image (:class:`CacheBlocks`). A kernel that makes several passes over a block finds it
    still in cache."""
    return iter(CacheBlocks.of(shape, itemsize, block_bytes))


def affine_flops(macs: int, out_shape: Shape, bias: bool) -> int:
    """FLOPs of a layer that multiply-accumulates and may add a bias: 2 per MAC (a multiply
    and an add) plus one add per output element when it has a bias (conv2d,
    locally_connected2d, linear)."""
    return 2 * macs + (numel(out_shape) if bias else 0)


def require_rank(in_shape: Shape, rank: int, type_name: str, hint: str | None = None) -> None:
    """Raise a clear error when a layer gets a tensor of the wrong rank."""
    if len(in_shape) != rank:
        what = {4: "an image tensor (N, C, H, W)", 2: "flat features (N, F)"}[rank]
        raise ArchstatError(f"a {type_name} layer expects {what}, got shape {fmt_shape(in_shape)}",
                            hint=hint)


def fmt_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ")"


def check_declared(attrs: Mapping[str, Any], field_name: str, actual: int, what: str) -> None:
    """An explicit channel/feature count must agree with what the graph delivers."""
    declared = attrs.get(field_name)
    if declared is not None and declared != actual:
        raise ArchstatError(f"declared {declared} but the input has {actual} {what}",
                            field=field_name,
                            hint=f"set {field_name}: {actual}, or leave it out to infer it")


Kernel = Callable[..., Any]
