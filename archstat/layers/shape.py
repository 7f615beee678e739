"""Shape family: the model ``input``, ``flatten``, ``dropout`` and ``softmax``."""
from __future__ import annotations

from ..errors import ArchstatError
from .registry import Field, LayerType, Window, numel, register


@register
class Input(LayerType):
    """The model's input tensor (N, C, H, W), named `input`; its size comes from the spec.

    Counts: MACs = 0. FLOPs = 0.
    """

    name = "input"
    alias = "input"
    family = "shape"
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

    is_view = True

    name = "flatten"
    alias = "flatten"
    family = "shape"
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

    def flops(self, in_shapes, out_shape, attrs):
        return 0

    def window(self, in_shapes, attrs):
        x = in_shapes[0]
        if len(x) == 4 and self._dims(x, attrs)[1] >= 2:
            return Window((x[2], x[3]), (1, 1), (0, 0))  # every pixel feeds the flat vector
        return None


@register
class Dropout(LayerType):
    """Dropout with probability p, as torch.nn.Dropout (identity at inference).

    Counts: MACs = 0. FLOPs = 0 at inference (identity).
    """

    is_view = True  # at inference PyTorch returns the input tensor itself

    name = "dropout"
    alias = "drop"
    family = "shape"
    fields = (
        Field("p", "float", 0.5, "probability of zeroing an element", minimum=0.0, maximum=1.0),
        Field("inplace", "bool", False, "overwrite the input (no new activation memory)"),
    )

    def output_shape(self, in_shapes, attrs):
        return tuple(in_shapes[0])

    def flops(self, in_shapes, out_shape, attrs):
        return 0


@register
class Softmax(LayerType):
    """Softmax along a dimension (classes by default), as torch.nn.Softmax.

    Counts: MACs = 0. FLOPs = 3 per element (exp, add into the sum, divide); the
    max-subtraction for numerical stability is not counted.
    """

    name = "softmax"
    alias = "softmax"
    family = "shape"
    fields = (Field("dim", "int", 1, "dimension that sums to one"),)

    def output_shape(self, in_shapes, attrs):
        (x,) = in_shapes
        if not -len(x) <= attrs["dim"] < len(x) or attrs["dim"] % len(x) == 0:
            raise ArchstatError(f"dim {attrs['dim']} is not a feature dimension of shape {x}",
                                field="dim", hint="use dim: 1")
        return tuple(x)

    def flops(self, in_shapes, out_shape, attrs):
        return 3 * numel(out_shape)
