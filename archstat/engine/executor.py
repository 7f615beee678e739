"""The graph executor: runs a :class:`~archstat.graph.Model` forward and backward in NumPy.

Every layer runs through its registered type (``layer.type.forward`` / ``.backward``), in
``model.order``. Memory follows the analysis: at inference each tensor is released once its
last consumer has run, by :func:`archstat.analysis.liveness` (the plan the analysis reports
as ``peak_activation_bytes``); in-place layers write over their input and views (flatten,
dropout at inference) allocate nothing. One economy goes further, on by default: a batch
norm after a convolution nothing else reads is folded into it or writes over its output
(:mod:`archstat.engine.folding`), which only lowers the peak; ``fold=False`` follows the
analysis' plan exactly, and :meth:`Executor.predict_memory` follows whichever runs.

Quick use::

    import archstat
    y = archstat.run("lenet5", x)                               # inference, He-initialised
    res = archstat.backward(model, x, labels=labels)            # loss and every gradient
    ex = archstat.Executor(model, seed=0, dtype="float64")      # keeps weights between calls
    out = ex.forward(x, train=True); grads = ex.backward(dout)

Weight initialisation (deterministic, independent of layer order): each parameter draws
from its own generator, seeded by ``(seed, crc32(layer name), crc32(parameter name))``, and
the layer's type gives each value (``LayerType.initial_param`` / ``initial_buffer``). By default weights of layers that
do multiply-accumulates are He (Kaiming) uniform, variance 2 / fan-in with fan-in = MACs per
output element (C_in/groups * kH * kW for conv2d, in_features for linear; He et al. 2015,
Eq. 10; torch.nn.init.kaiming_uniform_ with mode='fan_in', nonlinearity='relu'); other
weights (batch norm's scale) are 1; biases 0; running means 0 and running variances 1.
Types override it: layer_scale starts at its ``init``, the layer norms at weight 1, bias 0.
"""
from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, NamedTuple

import numpy as np

from ..analysis import analyze, liveness
from ..errors import ArchstatError, did_you_mean
from ..graph import Model, load
from ..layers.loss import softmax_cross_entropy
from ..layers.outbuf import is_same_view
from ..layers.registry import RunContext, Shape, fmt_shape
from ..spec import INPUT_NAME
from . import folding, workspace as caps_of
from .algorithms import check_choice, choose
from .state import StateLayout, name_hash

__all__ = ["BackwardResult", "Executor", "backward", "run"]

#: dtypes the NumPy kernels compute in
ENGINE_DTYPES = ("float32", "float64")

#: ``hook(name, output, live)``: called after each layer runs, before anything is freed;
#: ``live`` maps every tensor the executor holds at that moment (read-only)
Hook = Callable[[str, np.ndarray, Mapping[str, np.ndarray]], None]

#: ``hook(name, dy, pending)``: called after each layer's backward kernel has run (and its
#: input gradients have been accumulated); ``dy`` is the gradient of that layer's output it
#: consumed, ``pending`` maps every gradient still waiting for its layer (read-only)
BackwardHook = Callable[[str, np.ndarray, Mapping[str, np.ndarray]], None]


#: at most this many predictions correct the memory-limit hint's linear estimate of the batch
#: that fits (it is off by one or two where workspace caps and blocks do not scale with the batch)
_HINT_STEPS = 16


class Executor:
    """Runs a model with fixed weights; keeps the caches of a training pass for backward.

    Parameters
    ----------
    model : Model, spec path or mapping
    weights : {layer: {name: array}}, optional
        Parameters (``weight``, ``bias``) and buffers (``running_mean``, ``running_var``)
        to use, as PyTorch's layouts; any not given are initialised (see the module doc).
        Shapes must equal the registry's ``param_shapes`` / ``buffer_shapes``.
    seed : int >= 0
        Seeds the weight initialisation and the dropout masks.
    dtype : {'float32', 'float64'}
        Dtype of the weights and of every computation; inputs are cast to it.
    memory_limit : int, optional
        Bytes. A pass whose predicted peak (:meth:`predict_memory`) exceeds it is refused
        before anything is allocated.
    algorithm : str
        Which algorithm runs the layers that have several (:mod:`archstat.engine.algorithms`):
        ``'reference'`` (the default: im2col + GEMM for every convolution), ``'auto'`` (the
        fastest measured on this machine for each layer's shape, cached), or an algorithm's
        name (``'winograd4'``: wherever it applies). :meth:`algorithms` says what ran.
    place : bool
        At inference, let concatenations hold their inputs (:mod:`archstat.placement`: no
        copies, a lower peak, as the analysis predicts); False runs every concatenation as a
        copy (for comparisons: the analysis' peak then no longer applies).
    workspace : 'auto', None or int
        At inference, a cap on each convolution's work buffers (im2col's columns, Winograd's
        tiles; :mod:`archstat.engine.workspace`): ``'auto'`` (the default) gives each what keeps
        its step under the activations' peak, at least a tenth of that peak; None lets every
        kernel run its default blocks; a number caps each at that many bytes.
    fold : bool
        At inference, fold each batch norm into the convolution before it when nothing else
        reads that convolution's output (:mod:`archstat.engine.folding`: no pass of its own
        over the output, and no array of its own), where that pays and does not raise the
        peak, and else runs it in place over that output. A hook then sees a folded
        convolution's output already normalised (:meth:`folded` says where), and an in-place
        one's array written over by the batch norm after the hook returns (as with any
        in-place layer). False runs every batch norm on its own.

    Attributes
    ----------
    params, buffers : {layer: {name: ndarray}}, the live arrays (update them in place to train).
    plan : the :class:`~archstat.analysis.LivenessPlan` that frees tensors.
    input_grad : gradient with respect to the input after :meth:`backward`.

    Raises
    ------
    ArchstatError
        For a bad dtype, seed or limit, or weights naming an unknown layer or field or
        having the wrong shape (with did-you-mean).
    """

    def __init__(self, model: Model | Any, weights: Mapping[str, Mapping[str, Any]] | None = None,
                 seed: int = 0, dtype: str = "float32", memory_limit: int | None = None,
                 algorithm: str = "reference", place: bool = True, workspace: str | int | None = "auto",
                 fold: bool = True):
        self.model = load(model)
        self.dtype = _engine_dtype(dtype)
        self.algorithm = check_choice(algorithm)
        self.workspace = caps_of.check_setting(workspace)
        self._algorithms: dict[tuple[Any, ...], dict[str, str]] = {}
        self.seed = _count(seed, "seed", "a non-negative integer", minimum=0)
        self.memory_limit = None if memory_limit is None else _count(
            memory_limit, "memory_limit", "a positive number of bytes", minimum=1)
        #: ``{batch norm: convolution}`` folded (or run in place) at inference
        self._pairs = folding.pairs(self.model) if fold else {}
        #: the liveness plans of inference (training-only layers skipped) and of training
        self.plans = {False: liveness(self.model, place=bool(place), in_place=frozenset(self._pairs)),
                      True: liveness(self.model, training=True)}
        self.plan = self.plans[False]
        # an inference pass that keeps its caches does not place concatenations' inputs
        self._cached_plan = (liveness(self.model, place=False) if self.plan.placement or self._pairs
                             else self.plan)
        self._regions: dict[tuple[Any, ...], dict[str, tuple[str, tuple[slice, ...]]]] = {}
        self._steps: dict[tuple[Any, ...], _Steps] = {}
        self._folds: dict[tuple[Any, ...], dict[str, str]] = {}   # (input shape, choices known) -> folds
        # an in-place layer whose storage is the input would write over the caller's array
        self._writes_input = any(self.model.layer(n).type.writes_in_place(self.model.layer(n).attrs)
                                 for n in self.plans[True].members[INPUT_NAME][1:])
        self.layout = StateLayout(self.model, self.dtype, self.memory_limit)
        # the caller's weights, else those the model came with (an imported file's), else initialised
        self.params, self.buffers = self.layout.initial(
            weights if weights is not None else (self.model.weights or {}), self.seed)
        # dropout masks: one generator per layer, independent of the weights' streams
        self._rngs = {name: np.random.default_rng([self.seed, name_hash(name), 1])
                      for name in self.model.order}
        self._checked_inputs: dict[tuple[int, ...], dict[str, Shape]] = {}
        self._predicted: dict[tuple[Any, ...], int] = {}
        self._caches: dict[str, Any] | None = None
        self._out_shapes: dict[str, Shape] = {}
        self.input_grad: np.ndarray | None = None

    # ------------------------------------------------------------------ weights
    def _state_of(self, name: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The parameters and buffers a layer runs on: its own and those it shares (the
        holder's arrays, so updates made through either layer are seen by both)."""
        params, buffers = self.params.get(name, {}), self.buffers.get(name, {})
        ties = self.model.ties.get(name)
        if not ties:
            return params, buffers
        params, buffers = dict(params), dict(buffers)
        for tensor, owner in ties.items():
            if tensor in self.params.get(owner, {}):
                params[tensor] = self.params[owner][tensor]
            else:
                buffers[tensor] = self.buffers[owner][tensor]
        return params, buffers

    def state(self) -> dict[str, dict[str, np.ndarray]]:
        """Copies of every parameter and buffer, ``{layer: {name: array}}``: what ``weights=``
        accepts, so ``Executor(model, weights=ex.state())`` reproduces this executor."""
        out: dict[str, dict[str, np.ndarray]] = {}
        for group in (self.params, self.buffers):
            for layer, arrays in group.items():
                out.setdefault(layer, {}).update({k: v.copy() for k, v in arrays.items()})
        return out

    # ------------------------------------------------------------------ memory
    def predict_memory(self, batch: int, train: bool = False,
                       input_shape: tuple[int, ...] | None = None) -> int:
        """Predicted peak bytes of one pass, from the analysis (nothing is allocated).

        Inference: parameters + buffers + the input + the largest, over the layers, of the
        activations live while the layer runs (this executor's liveness plan, with its folded
        batch norms, :meth:`_step_bytes`; a folded convolution adds its scaled weights;
        the input, the caller's, counts through the whole pass, in this executor's dtype: an
        input of another dtype is cast, and the caller's array is then extra) plus the workspace its
        kernel allocates for the algorithm this executor runs it with, under its cap
        (``LayerType.workspace_bytes``: im2col's columns, Winograd's buffers; the caps of
        :mod:`archstat.engine.workspace`; with ``algorithm='auto'``, where this machine's
        cache does not know the choice yet, the largest of the layer's algorithms: nothing
        is measured or allocated).
        Training: the analysis' ``training_memory_bytes`` with plain SGD (activations kept
        for backward, parameters and their gradients, buffers, the largest transient
        gradient); backward kernels' workspace is not included.
        """
        shape = tuple(input_shape) if input_shape is not None else self.model.input_shape
        # the same pass is guarded on every forward: analyse once, and again once this executor
        # knows the algorithms it runs at this shape (until then the largest workspace counts)
        key = (batch, bool(train), shape, ((batch, *shape), False) in self._algorithms)
        if key not in self._predicted:
            totals = analyze(self.model, batch=batch, dtype=self.dtype.name, input_shape=input_shape,
                             optimizer="sgd").totals
            self._predicted[key] = int(totals["training_memory_bytes"] if train else
                                       totals["param_bytes"] + totals["buffer_bytes"]
                                       + self._peak_with_workspace(batch, input_shape))
        return self._predicted[key]

    def _peak_with_workspace(self, batch: int, input_shape: tuple[int, ...] | None) -> int:
        """The inference peak of the input, activations and kernel workspace together (bytes).

        The input is the caller's array: it stays allocated through the pass even after the
        plan lets it go, so it counts at every step (an executor whose in-place layer would
        write over it works on a copy, which the plan counts besides). Each kernel's workspace
        is counted at its cap (:meth:`_step_bytes`). Nothing is measured: a layer whose
        ``auto`` choice is not known yet counts its largest workspace."""
        shapes = self._shapes(batch, input_shape)
        folded = self._folded_at(shapes)
        return self._step_bytes(shapes).given + max(self._step_peaks(shapes, folded).values(), default=0)

    def _step_peaks(self, shapes: Mapping[str, Shape], folded: Mapping[str, str]) -> dict[str, int]:
        """``{layer: bytes}`` each step of an inference pass holds at its peak besides the
        caller's input: the plan's live storage plus the workspace its kernel allocates under its
        cap for the algorithm that runs it (the largest of the layer's, where an ``auto``
        choice is not known yet: nothing is measured), with the batch norms ``folded`` into
        their convolutions (which then also hold their scaled weights)."""
        steps = self._step_bytes(shapes)
        chosen = self._algorithms.get((shapes[INPUT_NAME], False)) or choose(
            self.model, shapes, self.algorithm, dtype=self.dtype.name, train=False, measure=False, caps=steps.caps)
        absorbs = set(folded.values())
        peaks = {}
        for name, held in steps.live.items():
            if name in folded:     # applied by its convolution: nothing runs
                peaks[name] = held
                continue
            layer = self.model.layer(name)
            in_shapes = [shapes[src] for src in layer.inputs]
            attrs = layer.type.absorbed_attrs(layer.attrs) if name in absorbs else layer.attrs
            options = [chosen[name]] if name in chosen else layer.type.algorithms(in_shapes, layer.attrs) or [None]
            made = self._absorb_bytes(name, shapes) if name in absorbs else 0
            cap = self._cap(steps.caps.get(name), made)
            work = max(layer.type.workspace_bytes(in_shapes, attrs, self.dtype.itemsize, option, cap)
                       for option in options)
            peaks[name] = held + work + made   # with the scaled weights and bias, made for the call
        return peaks

    def _absorb_bytes(self, conv: str, shapes: Mapping[str, Shape]) -> int:
        layer = self.model.layer(conv)
        return layer.type.absorb_bytes([shapes[src] for src in layer.inputs], layer.attrs, self.dtype.itemsize)

    @staticmethod
    def _cap(cap: int | None, made: int) -> int | None:
        """A convolution's workspace cap less the scaled weights it makes for a folded batch
        norm: the step stays where the cap puts it."""
        return cap if cap is None or not made else max(0, cap - made)

    def workspace_caps(self, batch: int = 1, input_shape: tuple[int, ...] | None = None) -> dict[str, int]:
        """``{layer: bytes}``: the cap on each layer's kernel workspace in an inference pass at
        this batch (and input) size (:mod:`archstat.engine.workspace`; empty for
        ``workspace=None``)."""
        return dict(self._step_bytes(self._shapes(batch, input_shape)).caps)

    def _step_bytes(self, shapes: Mapping[str, Shape]) -> "_Steps":
        """What each step of an inference pass (:attr:`plan`) holds at these shapes, besides the
        caller's input and the kernel's workspace: the liveness plan's live storage
        (:meth:`LivenessPlan.peak`), and the output's own array where the kernel of a tensor
        that lives in a concatenation's buffer cannot write there (``LayerType.writes_out``:
        it is copied in); also the input's bytes, and each step's workspace cap
        (:func:`archstat.engine.workspace.caps`)."""
        key = shapes[INPUT_NAME]
        if key not in self._steps:
            plan, itemsize = self.plan, self.dtype.itemsize
            _, during = plan.peak({owner: math.prod(shapes[owner]) * itemsize for owner in plan.members})
            given = math.prod(shapes[INPUT_NAME]) * itemsize
            in_plan = not self._writes_input    # the plan's input storage is the caller's array
            placed = plan.placement
            live = {}
            for name in plan.order[1:]:
                copied = (name in placed.slots and name not in placed.views and self.model.storage[name] == name
                          and not self.model.layer(name).type.writes_out)
                live[name] = during[name] - (given if in_plan else 0) + (
                    math.prod(shapes[name]) * itemsize if copied else 0)
                if INPUT_NAME in plan.free_after[name]:
                    in_plan = False
            self._steps[key] = _Steps(live, given, caps_of.caps(self.workspace, live))
        return self._steps[key]

    def _guard(self, batch: int, input_shape: tuple[int, ...], train: bool) -> None:
        if self.memory_limit is None:
            return
        need = self.predict_memory(batch, train, input_shape)
        if need <= self.memory_limit:
            return
        fits = self._largest_batch(batch, need, train, input_shape)
        hint = (f"use a smaller batch (at most {fits} fits)" if fits >= 1
                else "even a batch of 1 does not fit: use a smaller input or a larger limit")
        mode = "training" if train else "inference"
        raise ArchstatError(
            f"predicted peak memory of {mode} at batch {batch} is {need:,} bytes, over memory_limit "
            f"{self.memory_limit:,} bytes", file=self.model.file, field="memory_limit", hint=hint)

    def _largest_batch(self, batch: int, need: int, train: bool, input_shape: tuple[int, ...]) -> int:
        """The largest batch whose predicted peak is within ``memory_limit`` (0: not even one),
        given that ``batch`` needs ``need``: first as if every byte beyond the weights scaled
        with the batch (need(b) = fixed + b * per_sample), then moved a batch at a time while
        the prediction itself disagrees (workspace caps and blocks do not scale exactly)."""
        one = self.predict_memory(1, train, input_shape)
        per_sample = max((need - one) // max(batch - 1, 1), 1) if batch > 1 else one
        fits = min(max((self.memory_limit - (one - per_sample)) // per_sample, 0), batch - 1)

        def within(b: int) -> bool:
            return b == 0 or self.predict_memory(b, train, input_shape) <= self.memory_limit
        for _ in range(_HINT_STEPS):
            if not within(fits):
                fits -= 1
            elif fits + 1 < batch and within(fits + 1):
                fits += 1
            else:
                break
        return fits

    # ------------------------------------------------------------------ forward
    def _check_input(self, x: Any) -> tuple[np.ndarray, dict[str, Shape]]:
        arr = np.asarray(x)
        spec = self.model.input_shape
        expected = "(N, " + ", ".join(str(s) for s in spec) + ")"
        if arr.ndim != len(spec) + 1 or arr.shape[0] < 1:
            raise ArchstatError(f"the input has shape {fmt_shape(arr.shape)}; the model expects "
                                f"{expected}", file=self.model.file, layer=INPUT_NAME,
                                hint=("add the batch axis: x[None] (archstat keeps NCHW by design: PyTorch's "
                                      "conv and pool accept (C, H, W), but a flatten then reads C as the batch)")
                                if arr.shape == spec else None)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise ArchstatError(f"the input must be numbers, got dtype {arr.dtype}",
                                file=self.model.file, layer=INPUT_NAME)
        return arr.astype(self.dtype, copy=False), self._shapes(arr.shape[0], arr.shape[1:])

    def _shapes(self, batch: int, input_shape: tuple[int, ...] | None) -> dict[str, Shape]:
        """Every tensor's shape (batch included) at this input size (None: the spec's), after
        checking once per size that every layer's weights fit it (ArchstatError naming the
        layer otherwise)."""
        spec = self.model.input_shape
        expected = "(N, " + ", ".join(str(s) for s in spec) + ")"
        in_shape = tuple(int(s) for s in (spec if input_shape is None else input_shape))
        if in_shape not in self._checked_inputs:
            shapes = self.model.shapes(1, in_shape)
            for layer in self.model.layers():
                if not layer.inputs:
                    continue
                ins = [shapes[src] for src in layer.inputs]
                for field, shape in layer.type.param_shapes(ins, layer.attrs).items():
                    have = self.layout.params[self.model.ties.get(layer.name, {}).get(field, layer.name)][field]
                    if tuple(shape) != have:
                        raise ArchstatError(
                            f"at input size {fmt_shape(in_shape)} this layer needs a {field} of shape "
                            f"{fmt_shape(shape)}, but its weights are {fmt_shape(have)} (made for the "
                            f"spec's input {fmt_shape(spec)})", file=self.model.file,
                            layer=layer.name, field=field,
                            hint=f"run at input size {expected}, or load the spec at this size")
            self._checked_inputs[in_shape] = shapes
        return {k: (batch, *s[1:]) for k, s in self._checked_inputs[in_shape].items()}

    def forward(self, x: Any, train: bool = False, hook: Hook | None = None,
                keep_cache: bool | None = None) -> np.ndarray | dict[str, np.ndarray]:
        """Run the model on a batch.

        Parameters
        ----------
        x : array (N, *input_shape)
            Cast to the executor's dtype (never written to). Another spatial size works when
            every layer's shape rule and parameter shapes allow it.
        train : bool
            Training mode: batch statistics in batch norm (running statistics updated in
            place), dropout masks drawn. Keeps the caches for :meth:`backward`.
        hook : callable, optional
            ``hook(name, output, live)`` after each layer (see :data:`Hook`).
        keep_cache : bool, optional
            Keep the caches (default: ``train``). ``train=False, keep_cache=True`` gives the
            gradients of the inference function (running statistics, no dropout).

        Returns
        -------
        The output array, or ``{name: array}`` when the model has several outputs.

        Raises
        ------
        ArchstatError
            A wrong input shape, a layer that does not fit this input size, or a predicted
            peak over ``memory_limit``.
        """
        given = x
        x, shapes = self._check_input(given)
        self._guard(x.shape[0], x.shape[1:], train)
        keep = train if keep_cache is None else bool(keep_cache)
        self._caches = None
        caches: dict[str, Any] = {}
        if self._writes_input and isinstance(given, np.ndarray) and np.may_share_memory(x, given):
            x = x.copy()  # an in-place layer would write over the caller's array
        values: dict[str, np.ndarray] = {INPUT_NAME: x}
        live = MappingProxyType(values)
        if hook is not None:
            hook(INPUT_NAME, x, live)
        x = None   # held by ``values`` alone: a copy (or cast) made here goes when the plan frees it
        plan = self.plans[True] if train else self._cached_plan if keep else self.plan
        chosen = self._chosen(shapes, bool(train))
        # the inference plan's caps, also for a pass that keeps its caches: the same blocks,
        # so the same rounding, whichever plan frees the tensors
        caps = {} if train else self._step_bytes(shapes).caps
        placed = plan.placement
        regions = self._placed_regions(plan, shapes) if placed else {}
        pairs = self._pairs if plan is self.plan else {}     # batch norms after a convolution
        folded = self._folded_at(shapes) if pairs else {}
        absorbs = {conv: bn for bn, conv in folded.items()}
        roots: dict[str, np.ndarray] = {}   # the buffers of concatenations that hold their inputs
        self._free(values, INPUT_NAME, plan, roots)
        ran = []
        for name in plan.order[1:]:
            layer = self.model.layer(name)
            ran.append(layer)
            for owner in plan.allocate[name]:
                if owner in placed.hosts:
                    roots[owner] = np.empty(shapes[owner], self.dtype)
            if name in placed.views or name in folded:
                # its inputs already lie side by side in a buffer; or its convolution applied it
                if name in folded:
                    values[name] = y = values[layer.inputs[0]]
                else:
                    root, index = regions[name]
                    values[name] = y = roots[root][index]
                if hook is not None:
                    hook(name, y, live)
                self._free(values, name, plan, roots)
                continue
            xs = [values[src] for src in layer.inputs]
            if keep and layer.type.writes_in_place(layer.attrs) and any(
                    np.may_share_memory(a, xs[0]) for c in caches.values() for a in _arrays(c)):
                xs[0] = xs[0].copy()  # an earlier layer's cache still needs the old values
            params, buffers = self._state_of(name)
            where = regions.get(name)
            out = xs[0] if name in pairs else None if where is None else roots[where[0]][where[1]]
            affine = None
            if name in absorbs:   # the batch norm after it, as a scale and shift of its output
                norm = self.model.layer(absorbs[name])
                affine = norm.type.inference_affine(*self._state_of(norm.name), norm.attrs, self.dtype)
            cap = self._cap(caps.get(name), self._absorb_bytes(name, shapes) if affine is not None else 0)
            ctx = RunContext(train=train, rng=self._rngs[name], buffers=buffers, keep_cache=keep,
                             algorithm=chosen.get(name), out=out, workspace=cap, affine=affine)
            try:
                y, cache = layer.type.forward(xs, params, layer.attrs, ctx)
            except ArchstatError as exc:
                raise exc.with_context(file=self.model.file, layer=name)
            if y.shape != shapes[name] or y.dtype != self.dtype:
                raise _contract_error(self.model, layer, "forward", "output", y, shapes[name], self.dtype)
            if plan.storage[name] in roots:
                y = self._into_place(y, out, name, plan, roots, regions)
            elif not y.flags.c_contiguous and self.model.contiguous[name] and self.model.storage[name] == name:
                # a new tensor in its input's strided layout (NumPy's elementwise ops keep a
                # permuted input's order): C order, as the storage plan and later views expect
                y = np.ascontiguousarray(y)
            values[name] = y
            if keep:
                caches[name] = cache
            if hook is not None:
                hook(name, y, live)
            self._free(values, name, plan, roots)
            # a cache not kept (batch norm's holds its input) and the step's arrays go now, not
            # when the next layer's kernel returns: the plan has freed what they hold
            xs = y = cache = out = None
        out_names = self.model.outputs if train else self.model.inference_outputs
        outputs = {name: values[name] for name in out_names}
        if keep:
            self._caches = caches
            self._ran = ran
            self._out_shapes = {name: shapes[name] for name in out_names}
            self._ran_shapes = shapes
        return outputs[out_names[0]] if len(outputs) == 1 else outputs

    def _chosen(self, shapes: Mapping[str, Shape], train: bool) -> dict[str, str]:
        key = (shapes[INPUT_NAME], train)
        if key not in self._algorithms:
            caps = None if train else self._step_bytes(shapes).caps
            self._algorithms[key] = choose(self.model, shapes, self.algorithm, dtype=self.dtype.name, train=train,
                                           caps=caps)
        return self._algorithms[key]

    def algorithms(self, batch: int = 1, train: bool = False,
                   input_shape: tuple[int, ...] | None = None) -> dict[str, str]:
        """``{layer: algorithm}`` for the layers that have a choice, as a pass at this batch
        size (and input size) runs them; with ``algorithm='auto'`` this measures what the
        machine's cache does not know yet."""
        return dict(self._chosen(self._shapes(batch, input_shape), bool(train)))

    def _folded_at(self, shapes: Mapping[str, Shape]) -> dict[str, str]:
        """The pairs folded at these shapes: where the fold pays in time
        (:func:`archstat.engine.folding.pays`) and the convolution's step, with its scaled
        weights and the workspace of its new bias, stays within the peak of the pass with
        every batch norm in place: folding never raises the peak."""
        key = (shapes[INPUT_NAME], (shapes[INPUT_NAME], False) in self._algorithms)
        if key not in self._folds:
            folds = {norm: conv for norm, conv in self._pairs.items()
                     if folding.pays(self.model, conv, shapes, self.dtype.itemsize)}
            if folds:
                unfolded = self._step_peaks(shapes, {})
                ceiling = max(unfolded.values())
                with_folds = self._step_peaks(shapes, folds)
                folds = {norm: conv for norm, conv in folds.items() if with_folds[conv] <= ceiling}
            self._folds[key] = folds
        return self._folds[key]

    def folded(self, batch: int = 1, input_shape: tuple[int, ...] | None = None) -> dict[str, str]:
        """``{batch norm: convolution}``: the batch norms an inference pass at this batch (and
        input) size folds into the convolution before it (:mod:`archstat.engine.folding`);
        :attr:`fold_pairs` not listed here run in place over the convolution's output."""
        return dict(self._folded_at(self._shapes(batch, input_shape)))

    @property
    def fold_pairs(self) -> dict[str, str]:
        """``{batch norm: convolution}``: the batch norms that at inference are folded into the
        convolution before them or run in place over its output (empty with ``fold=False``)."""
        return dict(self._pairs)

    def _free(self, values: dict[str, np.ndarray], name: str, plan: Any,
              roots: dict[str, np.ndarray]) -> None:
        for owner in plan.free_after[name]:
            for member in plan.members[owner]:
                values.pop(member, None)
            roots.pop(owner, None)

    def _placed_regions(self, plan: Any, shapes: Mapping[str, Shape]) -> dict[str, tuple[str, tuple[slice, ...]]]:
        """``{name: (root, index)}`` for the tensors the placement puts in a root's buffer
        (placed storages, view and host concatenations) at these shapes."""
        key = (shapes[INPUT_NAME], id(plan))
        if key not in self._regions:
            placed = plan.placement
            regions = {}
            for name in plan.order:
                if name in placed.slots or name in placed.hosts:
                    root, axis, start, stop = placed.region(name, shapes)
                    regions[name] = (root, (slice(None),) * axis + (slice(start, stop),))
            self._regions[key] = regions
        return self._regions[key]

    def _into_place(self, y: np.ndarray, out: np.ndarray | None, name: str, plan: Any,
                    roots: dict[str, np.ndarray], regions: Mapping[str, tuple[str, tuple[slice, ...]]]) -> np.ndarray:
        """A tensor that lives in a concatenation's buffer: the kernel's output if it wrote
        there (or in place into a tensor there), else copied to its place."""
        if out is None:   # an in-place layer or a view of a placed tensor
            if np.may_share_memory(y, roots[plan.storage[name]]):
                return y
            out = roots[plan.storage[name]][regions[self.model.storage[name]][1]]
        if y is not out and not is_same_view(y, out):
            np.copyto(out, y)
        return out

    # ------------------------------------------------------------------ backward
    def backward(self, dy: Any, hook: BackwardHook | None = None) -> dict[str, dict[str, np.ndarray]]:
        """Backpropagate through the last forward pass that kept its caches.

        Parameters
        ----------
        dy : array, or {output name: array}
            Gradient of the loss with respect to the output (for several outputs, a dict;
            missing outputs count as zero). E.g. ``softmax_cross_entropy(out, labels)[1]``.
        hook : callable, optional
            ``hook(name, dy, pending)`` after each layer, in reverse execution order (see
            :data:`BackwardHook`); the profiler times layers with it.

        Returns
        -------
        ``{layer: {param: gradient}}`` for every parameter of the model, in its shape and the
        executor's dtype. The input's gradient is left in :attr:`input_grad`. The caches are
        released, so each forward pass supports one backward.
        """
        if self._caches is None:
            raise ArchstatError("backward needs the caches of a forward pass: call "
                                "forward(x, train=True) (or keep_cache=True) first",
                                file=self.model.file)
        caches, self._caches = self._caches, None
        pending: dict[str, np.ndarray] = {}
        out_names = list(self._out_shapes)
        given = dy if isinstance(dy, Mapping) else {out_names[0]: dy}
        if not isinstance(dy, Mapping) and len(out_names) > 1:
            raise ArchstatError(f"the model has {len(out_names)} outputs: give dy as a dict "
                                f"{{name: array}} over {', '.join(out_names)}",
                                file=self.model.file)
        for name, g in given.items():
            if name not in self._out_shapes:
                raise ArchstatError(f"{name!r} is not an output of the model (outputs: "
                                    f"{', '.join(out_names)})", file=self.model.file,
                                    hint=did_you_mean(str(name), out_names))
            g = np.asarray(g)
            if g.shape != self._out_shapes[name]:
                raise ArchstatError(f"dy has shape {fmt_shape(g.shape)}, the output has "
                                    f"{fmt_shape(self._out_shapes[name])}", file=self.model.file,
                                    layer=name)
            pending[name] = g.astype(self.dtype, copy=False)
        for name in out_names:
            if name not in pending:
                pending[name] = np.zeros(self._out_shapes[name], self.dtype)
        grads: dict[str, dict[str, np.ndarray]] = {}
        for layer in reversed(self._ran):
            g = pending.pop(layer.name)
            dxs, dparams = layer.type.backward(g, caches.pop(layer.name))
            if len(dxs) != len(layer.inputs):
                raise ArchstatError(f"the backward kernel of {layer.type.name} returned {len(dxs)} input "
                                    f"gradients for {len(layer.inputs)} inputs", file=self.model.file,
                                    layer=layer.name, hint=_BUG_HINT)
            for src, dx in zip(layer.inputs, dxs):
                want = self._ran_shapes[src]
                if dx.shape != want or dx.dtype != self.dtype:
                    raise _contract_error(self.model, layer, "backward", f"gradient of input {src!r}", dx, want,
                                          self.dtype)
                # never in place: kernels may hand back dy itself or views of it
                pending[src] = dx if src not in pending else pending[src] + dx
            ties = self.model.ties.get(layer.name, {})
            for k, value in self._state_of(layer.name)[0].items():   # a shared tensor's gradients add up at its holder
                if k not in dparams or dparams[k].shape != value.shape:
                    raise _contract_error(self.model, layer, "backward", f"gradient of {k!r}", dparams.get(k),
                                          value.shape, self.dtype)
                g_k = dparams[k].astype(self.dtype, copy=False)
                mine = grads.setdefault(ties.get(k, layer.name), {})
                mine[k] = g_k if k not in mine else mine[k] + g_k
            if hook is not None:
                hook(layer.name, g, MappingProxyType(pending))
        self.input_grad = pending.pop(INPUT_NAME)
        return grads


_BUG_HINT = "a bug in that layer type's kernel (archstat/layers/): please report it with the spec"


class _Steps(NamedTuple):
    """An inference pass's bytes by step (:meth:`Executor._step_bytes`)."""

    live: dict[str, int]     # step -> activation bytes live while it runs, besides the caller's input
    given: int               # the caller's input
    caps: dict[str, int]     # step -> workspace cap (empty: none)


def _contract_error(model: Model, layer: Any, which: str, what: str, got: Any, shape: Shape,
                    dtype: np.dtype) -> ArchstatError:
    """The kernel contract broken: an array of another shape or dtype than the analysis says."""
    found = "nothing" if got is None else f"shape {fmt_shape(got.shape)} {got.dtype}"
    return ArchstatError(f"the {which} kernel of {layer.type.name} returned {found} as its {what}; "
                         f"expected shape {fmt_shape(shape)} {np.dtype(dtype).name}", file=model.file,
                         layer=layer.name, hint=_BUG_HINT)


# --------------------------------------------------------------------- functions

class BackwardResult(NamedTuple):
    """What :func:`backward` returns."""

    #: the forward output (array, or {name: array} for several outputs)
    output: Any
    #: {layer: {param: gradient}} for every parameter
    grads: dict[str, dict[str, np.ndarray]]
    #: gradient with respect to the input x
    input_grad: np.ndarray
    #: the mean softmax cross-entropy when labels were given, else None
    loss: float | None


def run(model: Model | Any, x: Any, train: bool = False,
        weights: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
        memory_limit: int | None = None, dtype: str | None = None,
        algorithm: str = "reference") -> np.ndarray | dict[str, np.ndarray]:
    """One forward pass of ``model`` on ``x`` (see :class:`Executor` for the arguments).

    ``dtype`` defaults to x's when that is float32 or float64, else float32.

    Examples
    --------
    >>> y = run({"input": [4], "layers": [{"type": "linear", "out_features": 2}]},
    ...         np.ones((3, 4)))
    >>> y.shape, y.dtype
    ((3, 2), dtype('float64'))
    """
    ex = Executor(model, weights=weights, seed=seed, dtype=dtype or _dtype_of(x),
                  memory_limit=memory_limit, algorithm=algorithm)
    return ex.forward(x, train=train, keep_cache=False)


def backward(model: Model | Any, x: Any, dy: Any = None, labels: Any = None, *, train: bool = True,
             weights: Mapping[str, Mapping[str, Any]] | None = None, seed: int = 0,
             memory_limit: int | None = None, dtype: str | None = None,
             algorithm: str = "reference") -> BackwardResult:
    """Forward and backward pass: the output, the loss and every gradient.

    Give exactly one of ``dy`` (the gradient with respect to the output: an array, or a dict
    for several outputs) or ``labels`` ((N,) class indices: the loss is then the mean softmax
    cross-entropy of the output taken as logits, so the model should end before any softmax;
    training-only outputs such as auxiliary classifiers get no gradient from it).
    ``train=False`` differentiates the inference function (running statistics, no dropout).
    The other arguments are :class:`Executor`'s.

    Returns
    -------
    BackwardResult ``(output, grads, input_grad, loss)``.

    Examples
    --------
    >>> spec = {"input": [4], "layers": [{"type": "linear", "out_features": 3}]}
    >>> res = backward(spec, np.ones((2, 4)), labels=np.array([0, 2]),
    ...                weights={"fc1": {"weight": np.zeros((3, 4))}})
    >>> sorted(res.grads["fc1"]), round(res.loss, 4)       # all logits 0: loss = ln 3
    (['bias', 'weight'], 1.0986)
    """
    if (dy is None) == (labels is None):
        raise ArchstatError("give exactly one of dy (the output's gradient) or labels "
                            "(for softmax cross-entropy)", field="dy" if dy is None else "labels")
    ex = Executor(model, weights=weights, seed=seed, dtype=dtype or _dtype_of(x),
                  memory_limit=memory_limit, algorithm=algorithm)
    out = ex.forward(x, train=train, keep_cache=True)
    loss = None
    if labels is not None:
        main = ex.model.inference_outputs
        if len(main) != 1:
            raise ArchstatError(f"labels need a single output, the model has {len(main)}: "
                                f"{', '.join(main)}", field="labels", hint="give dy as a dict instead")
        # the loss of the model's output; training-only heads (auxiliary classifiers) get no
        # gradient from it: give dy as a dict to weight their losses in
        logits = out[main[0]] if isinstance(out, dict) else out
        loss, dy = softmax_cross_entropy(logits, labels)
        if isinstance(out, dict):
            dy = {main[0]: dy}
    grads = ex.backward(dy)
    return BackwardResult(out, grads, ex.input_grad, loss)


# --------------------------------------------------------------------- helpers

def _count(value: Any, field: str, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ArchstatError(f"{field} must be {what}, got {value!r}", field=field)
    return int(value)


def _engine_dtype(dtype: Any) -> np.dtype:
    name = np.dtype(dtype).name if isinstance(dtype, (type, np.dtype)) else dtype
    if name not in ENGINE_DTYPES:
        raise ArchstatError(f"the engine computes in {' or '.join(ENGINE_DTYPES)}, not {dtype!r}",
                            field="dtype", hint=did_you_mean(str(name), ENGINE_DTYPES))
    return np.dtype(name)


def _dtype_of(x: Any) -> str:
    name = getattr(getattr(x, "dtype", None), "name", None)
    return name if name in ENGINE_DTYPES else "float32"


def _arrays(obj: Any) -> Iterator[np.ndarray]:
    """Every ndarray in a (nested) cache."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _arrays(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _arrays(item)
