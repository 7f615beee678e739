"""Shape family: the model ``input``, ``flatten``, ``dropout``, ``softmax``, ``permute``,
``split``, ``channel_shuffle`` and ``stochastic_depth``.

Kernels (in :mod:`.shape_kernels`, re-exported here): :func:`flatten`, :func:`dropout`,
:func:`softmax`, :func:`permute`, :func:`split`, :func:`channel_shuffle`,
:func:`stochastic_depth` and their ``*_backward``. Any float dtype; outputs keep the input's
dtype.
"""
from __future__ import annotations

from ..errors import ArchstatError
from .registry import (REQUIRED, declare_family, Field, fmt_shape, LayerType, numel, register, require_rank,
                       Window)
from .shape_kernels import (channel_shuffle, channel_shuffle_backward, dropout, dropout_backward,
                            flatten, flatten_backward, permute, permute_backward, softmax,
                            softmax_backward, softmax_workspace, split, split_backward, split_bounds,
                            stochastic_depth, stochastic_depth_backward)

FAMILY = declare_family("shape", "input / reshape", rank=6)



@register
class Input(LayerType):
    """The model's input tensor (N, C, H, W), named `input`; its size comes from the spec.

    Counts: MACs = 0. FLOPs = 0.
    """

    name = "input"
    alias = "input"
    family = FAMILY
    min_inputs = 0
    max_inputs = 0

    def output_shape(self, in_shapes, attrs):  # pragma: no cover - the graph sets it
        raise AssertionError("the input's shape comes from the spec")

    def flops(self, in_shapes, out_shape, attrs):
        return 0


@register
class Flatten(LayerType):
    """Flatten dimensions start_dim..end_dim into one, as torch.nn.Flatten (a view).

    Counts: MACs = 0. FLOPs = 0 (a reshape).
    """

    is_view = True  # a reshape: a view where the merged axes lie evenly in memory, else a copy

    name = "flatten"
    torch_call = "torch"
    alias = "flatten"
    family = FAMILY
    fields = (
        Field("start_dim", "int", 1, "first dimension to flatten"),
        Field("end_dim", "int", -1, "last dimension to flatten"),
    )

    def _dims(self, shape, attrs):
        rank = len(shape)
        start, end = attrs["start_dim"], attrs["end_dim"]
        for key, d in (("start_dim", start), ("end_dim", end)):
            if not -rank <= d < rank:
                raise ArchstatError(f"{d} is out of range for an input of rank {rank}", field=key)
        start, end = start % rank, end % rank
        if start == 0:
            raise ArchstatError("cannot flatten the batch dimension", field="start_dim",
                                hint="use start_dim: 1")
        if end < start:
            raise ArchstatError(f"end_dim {attrs['end_dim']} comes before start_dim "
                                f"{attrs['start_dim']}", field="end_dim")
        return start, end

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        start, end = self._dims(x, attrs)
        return tuple(x[:start]) + (numel(x[start:end + 1]),) + tuple(x[end + 1:])

    def view_strides(self, in_shape, in_strides, attrs):
        # NumPy's (and PyTorch's) reshape: the merged axes form one axis of evenly spaced
        # elements when each axis' stride is the next one's stride times its length (axes of
        # length 1 aside); otherwise the result is a copy
        start, end = self._dims(in_shape, attrs)
        axes = [a for a in range(start, end + 1) if in_shape[a] != 1]
        if any(in_strides[a] != in_strides[b] * in_shape[b] for a, b in zip(axes, axes[1:])):
            return None
        merged = in_strides[axes[-1]] if axes else 1
        return tuple(in_strides[:start]) + (merged,) + tuple(in_strides[end + 1:])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        return flatten(x, attrs["start_dim"], attrs["end_dim"]), x.shape

    def backward(self, dy, cache):
        return [flatten_backward(dy, cache)], {}

    def window(self, in_shapes, attrs):
        x = in_shapes[0]
        if len(x) == 4 and self._dims(x, attrs)[1] >= 2:
            return Window((x[2], x[3]), (1, 1), (0, 0))  # every pixel feeds the flat vector
        return None


@register
class Dropout(LayerType):
    """Dropout with probability p, as torch.nn.Dropout (identity at inference).

    Counts: MACs = 0. FLOPs = 0 at inference (identity). Backward (training): dy times the
    scaled mask, 1 per element.
    """

    is_view = True  # at inference PyTorch returns the input tensor itself

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        return numel(out_shape) if input_grads[0] and attrs["p"] > 0 else 0

    def training_extra_bytes(self, out_elements, itemsize, attrs=None):
        # training draws a new output and keeps a one-byte mask per element for backward
        return out_elements * (itemsize + 1)

    name = "dropout"
    alias = "drop"
    family = FAMILY
    fields = (
        Field("p", "float", 0.5, "probability of zeroing an element", minimum=0.0, maximum=1.0),
        Field("inplace", "bool", False, "overwrite the input (no new activation memory)"),
    )

    def output_shape(self, in_shapes, attrs):
        return tuple(in_shapes[0])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        y, mask = dropout(xs[0], attrs["p"], ctx.train, ctx.rng, self.writes_in_place(attrs))
        return y, (mask, attrs["p"])

    def backward(self, dy, cache):
        mask, p = cache
        return [dropout_backward(dy, mask, p)], {}


@register
class Softmax(LayerType):
    """Softmax along a dimension (classes by default), as torch.nn.Softmax.

    Counts: MACs = 0. FLOPs = 3 per element (exp, add into the sum, divide); the
    max-subtraction for numerical stability is not counted.
    """

    name = "softmax"
    alias = "softmax"
    family = FAMILY
    fields = (Field("dim", "int", 1, "dimension that sums to one"),)

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        if not -len(x) <= attrs["dim"] < len(x) or attrs["dim"] % len(x) == 0:
            raise ArchstatError(f"dim {attrs['dim']} is not a feature dimension of shape {x}",
                                field="dim", hint="use dim: 1")
        return tuple(x)

    def mixing_axes(self, in_shapes, attrs):
        return (attrs["dim"] % len(in_shapes[0]),)  # each output reads its whole row

    def flops(self, in_shapes, out_shape, attrs):
        return 3 * numel(out_shape)

    def workspace_bytes(self, in_shapes, attrs, itemsize, algorithm=None, limit=None):
        return softmax_workspace(in_shapes[0], attrs["dim"], itemsize)

    def forward(self, xs, params, attrs, ctx):
        y = softmax(xs[0], attrs["dim"])
        return y, (y, attrs["dim"])

    def backward(self, dy, cache):
        y, dim = cache
        return [softmax_backward(dy, y, dim)], {}


@register
class Permute(LayerType):
    """Reorder the axes, as torch.permute / torchvision.ops.Permute: output axis i is input
    axis dims[i], the batch axis staying first (a view).

    Counts: MACs = 0. FLOPs = 0 (a view: the strides change, no element moves).

    Receptive field: pointwise; the analysis follows the image's H and W axes to where the
    permute moves them (:meth:`permutation`), so that a layer norm over the last axis of an
    (N, H, W, C) tensor, as in ConvNeXt's blocks, is known to mix channels, not the width.
    """

    is_view = True

    name = "permute"
    torch_call = "method"
    alias = "permute"
    family = FAMILY
    fields = (Field("dims", "ints", REQUIRED,
                    "new order of the axes: a permutation of 0..rank-1 that starts with 0 (batch)"),)

    def _dims(self, shape, attrs):
        rank, dims = len(shape), attrs["dims"]
        if len(dims) != rank or sorted(d % rank for d in dims if -rank <= d < rank) != list(range(rank)):
            raise ArchstatError(f"dims {list(dims)} is not a permutation of the {rank} axes of "
                                f"shape {fmt_shape(shape)}", field="dims",
                                hint=f"list each axis once, e.g. {[0, *range(2, rank), 1]}")
        dims = tuple(d % rank for d in dims)
        if dims[0] != 0:
            raise ArchstatError(f"dims {list(attrs['dims'])} moves the batch axis", field="dims",
                                hint="start dims with 0, e.g. [0, 2, 3, 1] for channels-last")
        return dims

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        return tuple(x[d] for d in self._dims(x, attrs))

    def permutation(self, in_shapes, attrs):
        return self._dims(in_shapes[0], attrs)

    def view_strides(self, in_shape, in_strides, attrs):
        return tuple(in_strides[d] for d in self._dims(in_shape, attrs))

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        dims = self._dims(xs[0].shape, attrs)
        return permute(xs[0], dims), dims

    def backward(self, dy, cache):
        return [permute_backward(dy, cache)], {}


@register
class Split(LayerType):
    """One piece of torch.chunk or torch.split along a dimension (channels by default), e.g.
    ShuffleNetV2's x.chunk(2, dim=1); a split into k pieces is k split layers reading the same
    input, each with its index (a view).

    Counts: MACs = 0. FLOPs = 0 (a view of the input).
    """

    is_view = True

    name = "split"
    torch_call = "method"
    alias = "split"
    family = FAMILY
    fields = (
        Field("dim", "int", 1, "dimension to cut (1: channels)"),
        Field("chunks", "int", None, "cut into pieces of ceil(size / chunks), as torch.chunk "
              "(the last piece smaller, so possibly fewer pieces than chunks)", minimum=1),
        Field("sizes", "ints", None, "cut into pieces of these sizes, as torch.split with a list "
              "(they must sum to the dimension's size)", minimum=1),
        Field("index", "int", REQUIRED, "which piece this layer outputs (0: the first)", minimum=0),
    )

    def check_attrs(self, attrs):
        if (attrs["chunks"] is None) == (attrs["sizes"] is None):
            raise ArchstatError("give exactly one of chunks (as torch.chunk) and sizes (as torch.split)",
                                field="chunks" if attrs["chunks"] is None else "sizes",
                                hint="e.g. chunks: 2 and index: 0 for the first half of the channels")

    def _piece(self, shape, attrs):
        """(dim, start, stop) of this layer's piece."""
        rank, dim = len(shape), attrs["dim"]
        if not -rank <= dim < rank:
            raise ArchstatError(f"dim {dim} is out of range for an input of rank {rank}", field="dim")
        dim %= rank
        if dim == 0:
            raise ArchstatError("cannot split the batch dimension", field="dim",
                                hint="use dim: 1 for channels")
        return (dim, *split_bounds(shape[dim], attrs["index"], attrs["chunks"], attrs["sizes"]))

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        dim, start, stop = self._piece(x, attrs)
        return tuple(x[:dim]) + (stop - start,) + tuple(x[dim + 1:])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def window(self, in_shapes, attrs):
        x = in_shapes[0]
        dim, start, _ = self._piece(x, attrs)
        if len(x) != 4 or dim < 2:
            return None
        # a piece of the image: output row r is input row start + r (a negative padding)
        shift = (-start, 0) if dim == 2 else (0, -start)
        return Window((1, 1), (1, 1), shift)

    def forward(self, xs, params, attrs, ctx):
        x = xs[0]
        dim, _, _ = self._piece(x.shape, attrs)
        args = (attrs["index"], attrs["chunks"], attrs["sizes"], dim)
        return split(x, *args), (x.shape, args)

    def backward(self, dy, cache):
        shape, args = cache
        return [split_backward(dy, shape, *args)], {}


@register
class ChannelShuffle(LayerType):
    """ShuffleNet's channel shuffle, as torch.nn.ChannelShuffle (torchvision's shufflenetv2
    channel_shuffle): (N, C, H, W) viewed as (N, groups, C / groups, H, W), the two channel
    axes transposed, copied back to (N, C, H, W) (a new tensor).

    Counts: MACs = 0. FLOPs = 0 (a copy, no arithmetic).
    """

    name = "channel_shuffle"
    torch_call = "function"
    alias = "shuffle"
    family = FAMILY
    fields = (Field("groups", "int", REQUIRED, "number of channel groups (must divide C)", minimum=1),)

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        require_rank(x, 4, self.name)
        if x[1] % attrs["groups"]:
            raise ArchstatError(f"{x[1]} channels do not divide into {attrs['groups']} groups",
                                field="groups", hint="use a divisor of the channel count")
        return tuple(x)

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        return channel_shuffle(xs[0], attrs["groups"]), attrs["groups"]

    def backward(self, dy, cache):
        return [channel_shuffle_backward(dy, cache)], {}


@register
class StochasticDepth(LayerType):
    """Stochastic depth (Huang et al. 2016), as torchvision.ops.StochasticDepth: in training
    each sample ('row') or the whole batch ('batch') is zeroed with probability p and the
    survivors scaled by 1 / (1 - p); the identity at inference (a view, like dropout).

    Counts: MACs = 0. FLOPs = 0 at inference (identity). Backward (training): dy times the
    scaled noise, 1 per element.

    Training memory: a new output (``training_extra_bytes``; none when p = 0, where
    torchvision returns the input); the noise, N values in 'row' mode or one in 'batch'
    mode, is not counted.
    """

    is_view = True  # at inference torchvision returns the input tensor itself

    def backward_flops(self, in_shapes, out_shape, attrs, input_grads, forward=None):
        return numel(out_shape) if input_grads[0] and attrs["p"] > 0 else 0

    def training_extra_bytes(self, out_elements, itemsize, attrs=None):
        return 0 if attrs is not None and attrs["p"] == 0 else out_elements * itemsize

    name = "stochastic_depth"
    alias = "sdepth"
    family = FAMILY
    fields = (
        Field("p", "float", REQUIRED, "probability of zeroing a sample (or the batch)",
              minimum=0.0, maximum=1.0),
        Field("mode", "choice", "row", "'row': one draw per sample; 'batch': one for the batch",
              choices=("row", "batch")),
    )

    def output_shape(self, in_shapes, attrs):
        return tuple(in_shapes[0])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        return stochastic_depth(xs[0], attrs["p"], attrs["mode"], ctx.train, ctx.rng)

    def backward(self, dy, cache):
        return [stochastic_depth_backward(dy, cache)], {}


@register
class Opaque(LayerType):
    """A node of an imported model that archstat has no layer type for, passed through with the
    output shape the foreign file states (``--allow-unknown``). Not counted, not runnable.

    Counts: MACs = 0. FLOPs = 0: not counted (reports list these layers as not counted).
    """

    name = "opaque"
    alias = "opaque"
    family = FAMILY
    counted = False
    min_inputs = 1
    max_inputs = None
    fields = (Field("op", "text", REQUIRED, "the foreign operator (an ONNX op type, a PyTorch module class)"),
              Field("output_shape", "shape", REQUIRED, "the output's shape for one sample, as the foreign "
                    "file states it (without the batch axis)", minimum=0))

    def output_shape(self, in_shapes, attrs):
        return (in_shapes[0][0], *attrs["output_shape"])

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def forward(self, xs, params, attrs, ctx):
        raise ArchstatError(f"archstat has no kernel for the foreign operator {attrs['op']!r} (imported "
                            "with --allow-unknown): the model can be analysed but not run",
                            hint="replace the node, or run the model where it comes from")

    def backward(self, dy, cache):  # pragma: no cover - forward refuses to run
        raise AssertionError("an opaque layer never runs")
