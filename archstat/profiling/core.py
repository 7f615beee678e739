"""``profile()``: measured per-layer times next to the analysis, with the roofline per layer.

A :class:`Profile` is an :class:`~archstat.analysis.Analysis` (same ``.layers`` columns,
same ``.totals`` keys) with the measured columns of :data:`PROFILE_COLUMNS` and totals of
:data:`PROFILE_TOTALS` added, plus the machine and calibration it was measured on.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..analysis import Analysis, analyze
from ..errors import ArchstatError
from ..graph import Model, load
from .calibration import (BUSY, Calibration, above_roof, calibrate, discard_cached, get_calibration,
                          load_average)
from .roofline import intensity, traffic_bytes
from .timing import Measurement, Progress, measure

#: measured per-layer columns, after the analysis' COLUMNS, with what each holds
PROFILE_COLUMNS: dict[str, str] = {
    "forward_ms": "forward time, median over the timed repeats (ms)",
    "forward_min_ms": "fastest forward time over the repeats (ms)",
    "forward_max_ms": "slowest forward time over the repeats (ms)",
    "backward_ms": "backward time, median over the repeats (ms; NaN unless profiled with backward)",
    "backward_min_ms": "fastest backward time (ms)",
    "backward_max_ms": "slowest backward time (ms)",
    "time_ms": "forward_ms + backward_ms (the backward counted as 0 when not profiled)",
    "share": "time_ms / the sum of time_ms over all layers (sums to 1)",
    "traffic_bytes": "minimum memory traffic: (inputs + params + buffers + output elements) x itemsize",
    "intensity": "arithmetic intensity: flops / traffic_bytes (FLOP/byte)",
    "gflops": "achieved forward rate: flops / forward time (GFLOP/s)",
    "peak_pct": "gflops as a percentage of the calibrated GEMM peak",
    "roofline_gflops": "attainable rate at this intensity: min(GEMM peak, intensity x bandwidth) (GFLOP/s)",
    "roofline_pct": "gflops as a percentage of roofline_gflops",
    "bound": "'compute' if intensity x bandwidth >= GEMM peak, else 'memory' ('' for the input)",
    "backward_gflops": "the backward FLOPs the engine does / backward time (GFLOP/s): the analysis' "
                       "backward_flops, plus the input gradients the engine computes though training needs "
                       "none (the image's)",
    "measured_live_bytes": "bytes allocated while the layer ran in the forward pass (tracemalloc) "
                           "+ the input: compare with live_bytes (the analysis' plan: at a batch norm "
                           "folded into its convolution or run in place, the measure is lower by that "
                           "batch norm's own output, which the engine does not make)",
    "algorithm": "the algorithm the engine ran the layer with ('im2col', 'winograd4', ...), '' for a "
                 "layer type with one way to run (archstat.engine.algorithms); at inference a batch norm "
                 "after a convolution says 'folded into <conv>' (its work ran there) or 'in place' "
                 "(archstat.engine.folding)",
    "work_fraction": "the multiplies that algorithm does / the direct count the MACs give (Winograd F(2x2,3x3) "
                     "4/9, F(4x4,3x3) 1/4, else 1): gflops and peak_pct are of the direct count, so they may "
                     "exceed the GEMM peak by 1 / work_fraction; the check for a rate above the roofs uses "
                     "peak_pct x work_fraction",
}

#: totals a profile adds to the analysis' totals
PROFILE_TOTALS: dict[str, str] = {
    "mode": "'inference' (forward) or 'training' (forward with caches, then backward)",
    "repeat": "timed repeats asked for", "warmup": "untimed warm-up passes", "seed": "weights and input seed",
    "repeats_done": "complete timed passes (fewer than repeat if interrupted)",
    "interrupted": "True when Ctrl-C stopped the run", "interrupted_at": "the pass it stopped in",
    "forward_ms": "end-to-end forward per batch in the median pass (by step time; the mean of the two "
                  "middle passes when their number is even) (ms)",
    "backward_ms": "end-to-end backward per batch in the median pass (ms; NaN for inference)",
    "step_ms": "forward_ms + backward_ms: the median pass's step time (ms)",
    "pass_layers_ms": "time inside the layers' kernels in the median pass (ms)",
    "pass_between_ms": "step_ms - pass_layers_ms: the executor between the layers in the median pass (ms)",
    "ms_per_image": "step_ms / batch", "images_per_s": "batch / step time",
    "layer_ms": "sum of the per-layer medians (ms)",
    "overhead_ms": "per pass, end-to-end time minus that pass's layer times, median: the executor "
                   "outside the layers (input checks, casts)",
    "gflops": "flops / forward_ms (GFLOP/s)", "peak_pct": "gflops as a % of the GEMM peak",
    "compute_bound_share": "share of layer time spent in compute-bound layers",
    "gemm_peak_gflops": "calibrated np.matmul peak (GFLOP/s)",
    "bandwidth_gbs": "calibrated np.copyto bandwidth, read + write (GB/s)",
    "ridge_intensity": "gemm_peak_gflops / bandwidth_gbs (FLOP/byte)",
    "predicted_peak_bytes": "Executor.predict_memory: params + buffers + the input + the largest of the "
                            "live activations plus the kernel's workspace at any step (training: the "
                            "analysis' training_memory_bytes, without backward's workspace)",
    "measured_peak_bytes": "params + buffers + input (+ output gradient) + the tracemalloc peak of "
                           "one untimed pass",
    "unpredicted_bytes": "measured_peak_bytes - predicted_peak_bytes: what the prediction does not count "
                         "(NumPy's small temporaries; in training, the backward kernels' workspace)",
    "load_average": "1-minute load average when timing started",
    "other_cpu_share": "share of the CPUs other processes used during the timed passes (/proc/stat)",
    "warnings": "sentences: a layer faster than the calibrated peak, a busy machine",
    "algorithm": "the algorithm choice asked for: 'reference', 'auto' or an algorithm's name (the per-layer "
                 "column says what each layer ran)",
    "workspace": "the cap on the convolutions' work buffers at inference: 'auto' (what keeps each step under "
                 "the activations' peak, at least a tenth of it), None (none) or bytes (archstat.engine.workspace)",
}


class Profile(Analysis):
    """What :func:`profile` returns: an Analysis whose ``.layers`` has the measured
    columns of :data:`PROFILE_COLUMNS` added and whose ``.totals`` has :data:`PROFILE_TOTALS`.

    Attributes: ``analysis`` (the symbolic one), ``machine`` (dict), ``calibration``
    (:class:`~archstat.profiling.calibration.Calibration`), ``measurement`` (the raw
    samples in seconds), ``interrupted`` (bool).
    """

    def __init__(self, analysis: Analysis, columns: dict[str, list[Any]], totals: dict[str, Any],
                 calibration: Calibration, measurement: Measurement):
        super().__init__(analysis.model, analysis.batch, analysis.dtype, analysis.input_shape, columns, totals)
        self.analysis = analysis
        self.calibration = calibration
        self.machine = calibration.machine
        self.measurement = measurement
        self.interrupted = measurement.interrupted

    def to_dict(self) -> dict[str, Any]:
        """Analysis.to_dict plus ``machine``, ``calibration`` and every timed sample
        (``samples_ms``); NaN becomes null."""
        data = super().to_dict()
        data["machine"] = self.machine
        cal = self.calibration.summary_dict()
        data["calibration"] = cal
        m = self.measurement
        data["samples_ms"] = {  # every timed sample, for anyone who wants more than the median
            "forward": {k: [1e3 * v for v in vs] for k, vs in m.forward.items()},
            "backward": {k: [1e3 * v for v in vs] for k, vs in m.backward.items()} if self.totals["mode"] == "training"
            else {},
            "forward_total": [1e3 * v for v in m.forward_total],
            "backward_total": [1e3 * v for v in m.backward_total]}
        return _json_safe(data)

    def __repr__(self) -> str:
        t = self.totals
        flag = " INTERRUPTED" if self.interrupted else ""
        return (f"<Profile {self.model.name!r} batch={self.batch} {self.dtype} {t['mode']}: "
                f"{t['step_ms']:.3g} ms per batch, {t['images_per_s']:.3g} images/s{flag}>")

    def _repr_html_(self) -> str:
        from ..report.notebook import profile_html
        return profile_html(self)

    def _repr_markdown_(self) -> str:
        from ..report.notebook import profile_markdown
        return profile_markdown(self)


def profile(model: Model | Any, batch: int = 1, *, repeat: int = 5, warmup: int = 1, backward: bool = False,
            dtype: str = "float32", input_shape: tuple[int, ...] | None = None, seed: int = 0,
            memory_limit: int | None = None, memory: bool = True, calibration: Calibration | None = None,
            progress: Progress | None = None, algorithm: str = "reference",
            workspace: str | int | None = "auto") -> Profile:
    """Time every layer of a model through the NumPy engine; compare with the analysis.

    Parameters
    ----------
    model : Model, spec path or mapping
    batch : batch size N.
    repeat : timed passes; per-layer times are their median, with min and max.
    warmup : untimed passes first (thread pools, page faults, caches).
    backward : also time the backward pass (the forward then runs in training mode and keeps
        its caches; the output gradient is seeded random numbers).
    dtype : 'float32' or 'float64', the engine's compute type.
    input_shape : (C, H, W), optional: override the spec's input size.
    seed : seeds the weights (He-initialised), the input and the output gradient.
    memory_limit : bytes, optional: refuse, before allocating anything but the weights, a run
        whose predicted peak (:meth:`Executor.predict_memory`) exceeds it.
    memory : run one extra untimed pass under tracemalloc for the measured peak memory.
    calibration : the roofs; default the cached calibration, else a quick one (then cached).
    progress : ``progress(done, total, label)``, called after every layer of every pass.
    algorithm : which algorithm runs the layers that have several: 'reference' (im2col + GEMM
        convolutions), 'auto' (the fastest for each layer's shape on this machine, measured once
        and cached) or an algorithm's name (see :class:`archstat.engine.Executor`); the
        per-layer ``algorithm`` column says what ran.
    workspace : the cap on each convolution's work buffers at inference: 'auto' (the default:
        what keeps its step under the activations' peak, at least a tenth of it), None (every
        kernel's default blocks) or bytes (:mod:`archstat.engine.workspace`).

    Returns
    -------
    Profile
        ``.layers`` (DataFrame: analysis columns + :data:`PROFILE_COLUMNS`), ``.totals``.
        On Ctrl-C, what was measured so far, with ``.interrupted`` True.

    Raises
    ------
    ArchstatError
        A bad argument, or a predicted peak over ``memory_limit``.
    """
    _check_counts(batch=batch, repeat=repeat, warmup=warmup)
    model = load(model)
    analysis = analyze(model, batch=batch, dtype=dtype, input_shape=input_shape)
    ex = make_executor(model, dtype, seed, memory_limit, [batch], input_shape, backward, algorithm, workspace)
    calibration = calibration or get_calibration(dtype, progress=progress)
    return run_profile(ex, analysis, calibration, repeat=repeat, warmup=warmup, backward=backward, seed=seed,
                       memory=memory, progress=progress)


def make_executor(model: Model, dtype: str, seed: int, memory_limit: int | None, batches, input_shape,
                  train: bool, algorithm: str = "reference", workspace: str | int | None = "auto"):
    """An Executor whose memory guard has accepted every batch in ``batches`` (refusing the
    first that does not fit, before any activation is allocated)."""
    from ..engine.executor import Executor

    ex = Executor(model, seed=seed, dtype=dtype, memory_limit=memory_limit, algorithm=algorithm,
                  workspace=workspace)
    shape = tuple(input_shape) if input_shape else model.input_shape
    for b in batches:
        ex._guard(b, shape, train)  # the executor's own check and message
    # checked once here: the per-pass check would re-run the analysis inside the timed region
    ex.memory_limit = None
    return ex


def run_profile(ex, analysis: Analysis, calibration: Calibration, *, repeat: int, warmup: int, backward: bool,
                seed: int, memory: bool = True, progress: Progress | None = None, offset: float = 0.0,
                total: float | None = None) -> Profile:
    """Measure with an existing executor (see :func:`profile`); ``offset``/``total`` place this
    run's passes on a progress bar shared with other runs."""
    batch, dtype = analysis.batch, analysis.dtype
    rng = np.random.default_rng([seed, batch, 7])
    x = rng.standard_normal((batch, *analysis.input_shape), dtype=np.dtype(dtype).type)
    dy = None
    if backward:
        shapes = {r["name"]: r["output_shape"] for r in analysis.rows()}
        outs = ex.model.outputs  # a training pass runs every layer, training-only ones too
        dy = {o: rng.standard_normal(shapes[o], dtype=np.dtype(dtype).type) for o in outs}
        dy = dy[outs[0]] if len(outs) == 1 else dy
    chosen = ex.algorithms(batch, backward, analysis.input_shape)   # an 'auto' choice measured before the timing
    folded = {}
    if not backward:   # batch norms after a convolution (archstat.engine.folding)
        folded = ex.folded(batch, analysis.input_shape)
        chosen.update({norm: f"folded into {conv}" if norm in folded else "in place"
                       for norm, conv in ex.fold_pairs.items()})
    load = load_average()
    m = measure(ex, x, train=backward, repeat=repeat, warmup=warmup, dy=dy, memory=memory,
                progress=progress, offset=offset, total=total)
    held = x.nbytes + (0 if dy is None else sum(a.nbytes for a in (dy.values() if isinstance(dy, dict) else [dy])))
    state = sum(a.nbytes for group in (ex.params, ex.buffers) for arrays in group.values() for a in arrays.values())
    predicted = ex.predict_memory(batch, backward, analysis.input_shape)
    args = dict(repeat=repeat, warmup=warmup, seed=seed, train=backward, held=held, state=state,
                predicted=predicted, load=load, chosen=chosen, choice=ex.algorithm, workspace=ex.workspace,
                folded=folded)
    p = _assemble(analysis, calibration, m, **args)
    if any(above_roof(pct * work) for pct, work in zip(p.column("peak_pct"), p.column("work_fraction"))) \
            and discard_cached(calibration):
        # the cached roofs were measured too low (on a busy machine): measure them again now,
        # for this run (cached only if this measurement is not disturbed itself)
        fresh = calibrate((dtype,), quick=True)
        p = _assemble(analysis, fresh, m, replaced=calibration, **args)
    return p


def _engine_backward_flops(analysis: Analysis) -> dict[str, int]:
    """Backward FLOPs per layer as the engine runs them: it computes every input's gradient,
    the image's too, where the analysis counts only the gradients training needs."""
    model = analysis.model
    shapes = model.shapes(analysis.batch, analysis.input_shape)
    needs = dict(zip(analysis.layers["name"], analysis.layers["needs_grad"]))
    out = {}
    for layer, counted in zip(model.layers(), analysis.layers["backward_flops"]):
        if not layer.inputs:
            out[layer.name] = 0
            continue
        ins, y = [shapes[s] for s in layer.inputs], shapes[layer.name]
        bf = layer.type.backward_flops
        out[layer.name] = (int(counted) + bf(ins, y, layer.attrs, [True] * len(ins))
                           - bf(ins, y, layer.attrs, [needs[s] for s in layer.inputs]))
    return out


def _assemble(analysis: Analysis, cal: Calibration, m: Measurement, *, repeat: int, warmup: int, seed: int,
              train: bool, held: int, state: int, predicted: int, load: float | None = None,
              replaced: Calibration | None = None, chosen: Mapping[str, str] | None = None,
              choice: str = "reference", workspace: str | int | None = "auto",
              folded: Mapping[str, str] | None = None) -> Profile:
    rows = analysis.rows()
    roof = cal.roofline(analysis.dtype)
    cols: dict[str, list[Any]] = {k: [r[k] for r in rows] for k in rows[0]}
    new: dict[str, list[Any]] = {k: [] for k in PROFILE_COLUMNS}
    traffic = traffic_bytes(rows, analysis.dtype)
    engine_backward = _engine_backward_flops(analysis) if train else {}
    for r, nbytes in zip(rows, traffic):
        name, is_input = r["name"], not r["inputs"]
        # a training-only layer (an auxiliary head) does not run at inference: no times (NaN)
        fwd = _stats([] if is_input else m.forward.get(name, []), zero=is_input)
        bwd = _stats([] if is_input else m.backward.get(name, []), zero=is_input) if train else (math.nan,) * 3
        new["forward_ms"].append(fwd[0]); new["forward_min_ms"].append(fwd[1]); new["forward_max_ms"].append(fwd[2])
        new["backward_ms"].append(bwd[0]); new["backward_min_ms"].append(bwd[1]); new["backward_max_ms"].append(bwd[2])
        new["time_ms"].append(fwd[0] + (bwd[0] if train else 0.0))
        ai = intensity(r["flops"], nbytes)
        attainable = float(roof.attainable(ai))
        # a folded batch norm's work ran in its convolution: no rate of its own
        rate = math.nan if name in (folded or {}) else _rate(r["flops"], fwd[0])
        new["traffic_bytes"].append(nbytes)
        new["intensity"].append(ai)
        new["gflops"].append(rate)
        new["peak_pct"].append(100 * rate / roof.peak_gflops)
        new["roofline_gflops"].append(attainable)
        new["roofline_pct"].append(100 * rate / attainable if attainable > 0 else math.nan)
        new["bound"].append("" if is_input else roof.bound(ai))
        new["backward_gflops"].append(_rate(engine_backward[name], bwd[0]) if train else math.nan)
        if m.memory is None or not (is_input or name in m.memory.layers):
            new["measured_live_bytes"].append(None)
        else:  # the input (and dy) are allocated before the pass and held through it
            new["measured_live_bytes"].append(held + (0 if is_input else m.memory.layers[name]))
        algorithm = (chosen or {}).get(name, "")
        new["algorithm"].append(algorithm)
        layer = analysis.model.layer(name)
        new["work_fraction"].append(layer.type.algorithm_work(algorithm, layer.attrs) if algorithm else 1.0)
    layer_sum = float(np.nansum(new["time_ms"]))
    new["share"] = [t / layer_sum if layer_sum > 0 and not math.isnan(t) else (0.0 if layer_sum > 0 else math.nan)
                    for t in new["time_ms"]]
    cols.update(new)

    totals = dict(analysis.totals)
    fwd = _stats(m.forward_total)
    bwd = _stats(m.backward_total) if train else (math.nan,) * 3
    steps = [f + b for f, b in zip(m.forward_total, m.backward_total)] if train else m.forward_total
    step = _stats(steps)
    split = _median_pass(m, train)
    # the headline numbers are one pass's (the median step's), so that they add up: forward +
    # backward = step, and step = time inside the layers + time between them
    fwd = (split["forward"], *fwd[1:])
    bwd = (split["backward"], *bwd[1:]) if train else bwd
    step = (split["forward"] + split["backward"], *step[1:])
    batch = analysis.batch
    compute_time = sum(t for t, b in zip(new["time_ms"], new["bound"]) if b == "compute" and not math.isnan(t))
    totals.update({
        "mode": "training" if train else "inference", "repeat": repeat, "warmup": warmup, "seed": seed,
        "repeats_done": m.passes, "interrupted": m.interrupted, "interrupted_at": m.interrupted_at,
        "forward_ms": fwd[0], "forward_min_ms": fwd[1], "forward_max_ms": fwd[2],
        "backward_ms": bwd[0], "backward_min_ms": bwd[1], "backward_max_ms": bwd[2],
        "step_ms": step[0], "step_min_ms": step[1], "step_max_ms": step[2],
        "ms_per_image": step[0] / batch, "images_per_s": 1000 * batch / step[0] if step[0] > 0 else math.nan,
        "layer_ms": layer_sum, "overhead_ms": _overhead(m, train),
        "pass_layers_ms": split["layers"], "pass_between_ms": step[0] - split["layers"],
        "gflops": _rate(totals["flops"], fwd[0]), "peak_pct": 100 * _rate(totals["flops"], fwd[0]) / roof.peak_gflops,
        "compute_bound_share": compute_time / layer_sum if layer_sum > 0 else math.nan,
        "gemm_peak_gflops": roof.peak_gflops, "bandwidth_gbs": roof.bandwidth_gbs, "ridge_intensity": roof.ridge,
        "predicted_peak_bytes": predicted,
        "measured_peak_bytes": None if m.memory is None else state + held + m.memory.peak,
        "unpredicted_bytes": None if m.memory is None else state + held + m.memory.peak - predicted,
        "held_bytes": held, "state_bytes": state, "load_average": load, "other_cpu_share": m.other_cpu_share,
        "algorithm": choice, "workspace": workspace,
    })
    totals["warnings"] = _warnings(cols, totals, cal, replaced)
    return Profile(analysis, cols, totals, cal, m)




def _warnings(cols: Mapping[str, list[Any]], totals: Mapping[str, Any], cal: Calibration,
              replaced: Calibration | None = None) -> list[str]:
    """Self-consistency checks a careful reader would make, as sentences."""
    out = []

    def busy_text(c: Calibration) -> str:
        return (f" while others used {100 * c.other_cpu_share:.0f}% of the CPUs"
                if c.other_cpu_share is not None else "")

    if replaced is not None:
        out.append(f"a layer ran above the cached roofs (measured {replaced.measured_at}{busy_text(replaced)}): "
                   "that calibration was discarded and the roofs measured again for this run"
                   + (f" ({cal.cache_note})" if cal.cache_note else " and cached"))
    over = [(pct, name) for name, pct, work in zip(cols["name"], cols["peak_pct"], cols["work_fraction"])
            if above_roof(pct * work)]
    if over:
        pct, name = max(over)
        out.append(f"{len(over)} layer{'s' if len(over) > 1 else ''} ran above the calibrated GEMM peak "
                   f"({name}: {pct:.0f}%; marked ! in % peak): the roofs (measured {cal.measured_at}"
                   f"{busy_text(cal)}) are too low for this run; run 'archstat calibrate' on an idle machine")
    busy = totals.get("other_cpu_share")
    if busy is not None and busy > BUSY:
        out.append(f"other processes used {100 * busy:.0f}% of the CPUs while timing: absolute times are "
                   "inflated (BLAS threads suffer most); compare ratios within one run, re-run when idle, or "
                   "use --threads 1")
    if cal.disturbed and not over:
        out.append(f"other processes used {100 * cal.other_cpu_share:.0f}% of the CPUs during calibration: "
                   "the roofs may be low; run 'archstat calibrate' again when the machine is idle")
    return out


def _median_pass(m: Measurement, train: bool) -> dict[str, float]:
    """Forward, backward and time inside the layers (ms) of the median pass by step time (the
    mean of the two middle passes when their number is even); NaN when no pass completed."""
    n = m.passes
    if n == 0:
        return {"forward": math.nan, "backward": math.nan if train else 0.0, "layers": math.nan}
    steps = [m.forward_total[i] + (m.backward_total[i] if train else 0.0) for i in range(n)]
    order = sorted(range(n), key=steps.__getitem__)
    middle = [order[(n - 1) // 2], order[n // 2]]

    def mean(values) -> float:
        return sum(values) / len(values)

    layers = [sum(v[i] for v in m.forward.values()) + (sum(v[i] for v in m.backward.values()) if train else 0.0)
              for i in middle]
    return {"forward": 1e3 * mean([m.forward_total[i] for i in middle]),
            "backward": 1e3 * mean([m.backward_total[i] for i in middle]) if train else 0.0,
            "layers": 1e3 * mean(layers)}


def _overhead(m: Measurement, train: bool) -> float:
    """Median over complete passes of (end-to-end - the sum of that pass's layer intervals), ms."""
    per_pass = []
    for i in range(m.passes):
        inside = sum(v[i] for v in m.forward.values())
        total = m.forward_total[i]
        if train:
            inside += sum(v[i] for v in m.backward.values())
            total += m.backward_total[i]
        per_pass.append(total - inside)
    return _stats(per_pass)[0]


def _stats(samples, zero: bool = False) -> tuple[float, float, float]:
    """(median, min, max) in ms of samples in seconds; NaN when there are none."""
    if zero:
        return (0.0, 0.0, 0.0)
    if not samples:
        return (math.nan,) * 3
    arr = np.asarray(samples) * 1e3
    return (float(np.median(arr)), float(arr.min()), float(arr.max()))


def _rate(flops: int, ms: float) -> float:
    """GFLOP/s from FLOPs and milliseconds: flops / (ms * 1e6); 0 for no FLOPs, NaN for no time."""
    if math.isnan(ms):
        return math.nan
    if flops == 0:
        return 0.0
    return flops / (ms * 1e6) if ms > 0 else math.nan


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        low = 0 if name == "warmup" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ArchstatError(f"{name} must be an integer >= {low}, got {value!r}", field=name)


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and math.isnan(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj
