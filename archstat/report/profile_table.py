"""Render profiles, sweeps, operations-vs-time studies and calibrations as text.

Formats as :mod:`archstat.report.table` (whose table helpers are used here): ``table``
(terminal), ``md``, ``html``, ``csv`` (exact values of every column, machine and run
settings in leading ``#`` comment lines: read with ``pandas.read_csv(path, comment="#")``)
and ``json``. Every format records the machine and the calibrated roofs. Returns text;
only the CLI prints.
"""
from __future__ import annotations

import html
import math
import textwrap
from typing import Any, Sequence

from .fit import columns_of, fit, render as render_cols
from .table import _csv, md_table
from .units import human, human_bytes, shape_str, thousands
from .json_out import dump

FORMATS = ("table", "md", "csv", "json", "html")
UNITS_NOTE = ("Units: ms = milliseconds; GFLOP/s = 10^9 FLOP per second; FLOP/B = FLOPs per byte; "
              "K/M/G = 10^3/10^6/10^9; kB/MB/GB = 10^3/10^6/10^9 bytes.")


# ---------------------------------------------------------------------- numbers

def ms(v: float | None) -> str:
    """Milliseconds with about 3 significant figures; '-' when not measured."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    if v >= 1:
        return f"{v:.2f}"
    return f"{v:.3f}"


def _peak_cell(pct: float, work: float = 1.0) -> str:
    """% of the GEMM peak; ``!`` marks a layer measured above the roofs (see the warning): its
    multiplies (``work``: the fraction of the direct count its algorithm does) above the peak."""
    from ..profiling.calibration import above_roof
    return _pct(pct) + ("!" if above_roof(pct * work) else "")


def adding(*parts: float) -> list[str]:
    """``parts`` and their sum as text with one number of decimals (3 significant figures of the
    largest), the sum printed as the sum of the printed parts, so that what is shown adds up."""
    if any(math.isnan(v) for v in parts):
        return ["-"] * (len(parts) + 1)
    top = max(abs(sum(parts)), *map(abs, parts))
    decimals = 0 if top >= 100 else 1 if top >= 10 else 2 if top >= 1 else 3
    smallest = min((abs(v) for v in parts if v), default=0.0)
    while smallest and decimals < 3 and round(smallest, decimals) == 0:
        decimals += 1  # a part that is not zero does not print as 0
    rounded = [round(v, decimals) for v in parts]
    return [f"{v:,.{decimals}f}" for v in (*rounded, sum(rounded))]


def _range(lo: float, hi: float) -> str:
    return "-" if math.isnan(lo) else f"{ms(lo)}-{ms(hi)}"


def _num(v: float | None, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if v == 0:
        return "0"
    return f"{v:.{digits}g}" if abs(v) < 10 ** digits else f"{v:,.0f}"


def _pct(v: float | None) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:.1f}%" if v < 10 else f"{v:.0f}%"


def _mb(v: int | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else human_bytes(v)


# ---------------------------------------------------------------------- machine

def machine_lines(machine: dict[str, Any], cal) -> list[tuple[str, str]]:
    """The machine and its calibrated roofs, as (label, text) pairs, for every report."""
    from ..profiling.calibration import describe_blas

    mem = f", {human_bytes(machine['memory_bytes'])} RAM" if machine.get("memory_bytes") else ""
    peaks = ", ".join(f"{v:.0f} GFLOP/s {k}" for k, v in sorted(cal.gemm_gflops.items()))
    where = f"cached {cal.measured_at}" if cal.source == "cache" else f"measured {cal.measured_at}"
    if cal.other_cpu_share is not None:
        where += f", other processes using {100 * cal.other_cpu_share:.0f}% of the CPUs"
    kind = "quick calibration" if cal.quick else "calibration"
    return [
        ("Machine", f"{machine.get('cpu')}, {machine.get('cores')} cores{mem}; {machine.get('system')}; "
                    f"Python {machine.get('python')}, NumPy {machine.get('numpy')}, {describe_blas(machine)}"),
        ("Roofs", f"GEMM peak {peaks} (best np.matmul, {cal.gemm_size}x{cal.gemm_size}); memory "
                  f"{cal.bandwidth_gbs:.1f} GB/s (best np.copyto of {human_bytes(cal.copy_bytes)}, read + write, "
                  f"one thread); {kind}, {where}"),
    ]


def _csv_comments(pairs: Sequence[tuple[str, str]]) -> str:
    return "".join(f"# {k}: {v}\n" for k, v in pairs)


def _kv_text(pairs: Sequence[tuple[str, str]], wrap: int | None = None) -> list[str]:
    """Label-value lines, the labels a column; each wrapped under its text at ``wrap``."""
    width = max(len(k) for k, _ in pairs)
    if wrap is None:
        return [f"{k:<{width}}  {v}" for k, v in pairs]
    out = []
    for k, v in pairs:
        if wrap - width - 2 >= 30:
            out += textwrap.wrap(f"{k:<{width}}  {v}", wrap, subsequent_indent=" " * (width + 2))
        else:
            out += textwrap.wrap(f"{k}: {v}", wrap, subsequent_indent="  ")
    return out


def _render(fmt: str, title: str, head: list[tuple[str, str]], table, tail: list[tuple[str, str]],
            notes: Sequence[str], width: int | None = None, steps=(), cards=(), figures=None) -> str:
    """The shared layout of table/md/html: title, head pairs, the table, tail pairs, notes.
    ``width`` fits the terminal table (``steps``: :func:`.fit.fit`); the page shows ``cards``
    (headline numbers) first and embeds ``figures()`` (a list of HTML figures, drawn only for
    the page)."""
    if fmt == "table":
        wrap = min(100, width) if width else 100
        cols, fitted = fit(columns_of(*table), width, steps)
        lines = textwrap.wrap(title, wrap) + _kv_text(head, wrap) + ["", render_cols(cols, table[3] is not None)]
        lines += textwrap.wrap(fitted, wrap) + [""]
        if tail:
            lines += _kv_text(tail, wrap)
        for n in notes:
            lines += textwrap.wrap(n, wrap)
        return "\n".join(lines) + "\n"
    if fmt == "md":
        lines = [f"# {title}", ""] + [f"- **{k}**: {v}" for k, v in head] + ["", md_table(*table), ""]
        lines += [f"- **{k}**: {v}" for k, v in tail]
        return "\n".join(lines + [""] + list(notes)) + "\n"
    if fmt == "html":
        from . import html_page as H
        parts = [f"<h1>{html.escape(title)}</h1>"]
        if cards:
            parts.append(H.cards(cards))
        if tail:
            parts.append(H.definitions(tail))
        if figures is not None:
            parts += ["<h2>Figures</h2>", *figures()]
        parts += ["<h2>Measurements</h2>", H.table(*table)]
        parts += [H.note(n) for n in notes]
        parts += ["<h2>Machine and run</h2>", H.definitions(head)]
        parts.append('<footer><p class="note">Generated by archstat.</p></footer>')
        return H.page(title, parts)
    raise ValueError(fmt)


# ---------------------------------------------------------------------- profile

def _run_line(p) -> str:
    t = p.totals
    what = "training step (forward with caches + backward)" if t["mode"] == "training" else "inference (forward)"
    line = (f"batch {p.batch}, {p.dtype}, {what}; median of {t['repeats_done']} timed "
            f"repeat{'s' if t['repeats_done'] != 1 else ''} after {t['warmup']} warm-up; seed {t['seed']}")
    if t.get("other_cpu_share") is not None:
        line += f"; other processes used {100 * t['other_cpu_share']:.0f}% of the CPUs meanwhile"
    if p.interrupted:
        line += f"; INTERRUPTED during {t['interrupted_at']} (asked for {t['repeat']} repeats)"
    return line


def profile_summary(p) -> list[tuple[str, str]]:
    """The totals explained, as (label, text) pairs."""
    t = p.totals
    train = t["mode"] == "training"
    if train:
        f, b, step = adding(t["forward_ms"], t["backward_ms"])
        time_line = (f"forward {f} ms + backward {b} ms = {step} ms per batch in the median pass "
                     f"(forward {_range(t['forward_min_ms'], t['forward_max_ms'])} ms, backward "
                     f"{_range(t['backward_min_ms'], t['backward_max_ms'])} ms over the passes)")
    else:
        time_line = (f"forward {ms(t['forward_ms'])} ms per batch in the median pass "
                     f"({_range(t['forward_min_ms'], t['forward_max_ms'])} ms over the passes)")
    time_line += f"; {ms(t['ms_per_image'])} ms per image, {_num(t['images_per_s'])} images/s"
    inside, between, whole = adding(t["pass_layers_ms"], t["pass_between_ms"])
    pairs = [
        ("Time", time_line),
        ("Where it went", f"in the median pass, {inside} ms inside the layers + {between} ms in the executor "
                          f"between them = {whole} ms; the table's per-layer medians add up to "
                          f"{ms(t['layer_ms'])} ms (each layer's median comes from its own passes)"),
        ("Throughput", f"forward {_num(t['gflops'])} GFLOP/s achieved ({thousands(t['flops'])} FLOPs), "
                       f"{_pct(t['peak_pct'])} of the GEMM peak; compute-bound layers take "
                       f"{_pct(100 * t['compute_bound_share'])}"
                       f" of the time (ridge at {t['ridge_intensity']:.1f} FLOP/B)"),
    ]
    if t["measured_peak_bytes"] is not None:
        cap = t.get("workspace", "auto")
        capped = ("the convolutions' capped to keep each step under the activations' peak" if cap == "auto"
                  else "on their default blocks" if cap is None else
                  f"the convolutions' capped at {human_bytes(cap)} each")
        predicted = ("the analysis' training-memory estimate with SGD" if train else
                     f"weights {human_bytes(t['param_bytes'] + t['buffer_bytes'])} + the input, the live "
                     f"activations and the kernels' workspace ({capped}) at the step where they peak")
        extra = t["unpredicted_bytes"]
        if extra >= 0:
            why = (f"{human_bytes(extra)} more: " + ("the backward kernels' workspace and temporaries, which the "
                                                     "estimate does not count" if train else
                                                     "NumPy's small temporaries, which the prediction does not count"))
        elif train:
            why = (f"{human_bytes(-extra)} less: the estimate holds every layer's output and the largest "
                   "gradient at once, the engine frees some sooner")
        else:
            why = (f"{human_bytes(-extra)} less: some kernels' workspace is a bound (NumPy's buffers in the "
                   "pools)")
        pairs.append(("Memory", f"measured peak {human_bytes(t['measured_peak_bytes'])} (tracemalloc, one untimed "
                                f"pass, + weights and input) vs predicted {human_bytes(t['predicted_peak_bytes'])} "
                                f"({predicted}): {why}"))
    else:
        pairs.append(("Memory", f"not measured; predicted peak {human_bytes(t['predicted_peak_bytes'])}"))
    pairs += [("Warning", w) for w in t.get("warnings", ())]
    return pairs


def _profile_table(p):
    t = p.totals
    train = t["mode"] == "training"
    rows = [r for r in p.rows() if r["inputs"]]
    headers = ["Layer", "Type", "Output", "MACs", "Fwd ms", "min-max"]
    if train:
        headers += ["Bwd ms", "min-max"]
    headers += ["Share", "GFLOP/s", "% peak", "FLOP/B", "Roof", "Bound"]
    aligns = ["<", "<", ">", ">", ">", ">"] + ([">", ">"] if train else []) + [">", ">", ">", ">", ">", "<"]
    algorithms = any(r.get("algorithm") for r in rows)   # a layer the engine can run more than one way
    if algorithms:
        headers.append("Algorithm")
        aligns.append("<")
    body = []
    for r in rows:
        row = [r["name"], r["type"], shape_str(r["output_shape"]), human(r["macs"]) if r["macs"] else "-",
               ms(r["forward_ms"]), _range(r["forward_min_ms"], r["forward_max_ms"])]
        if train:
            row += [ms(r["backward_ms"]), _range(r["backward_min_ms"], r["backward_max_ms"])]
        row += [_pct(100 * r["share"]), _num(r["gflops"]),
                _peak_cell(r["peak_pct"], r["work_fraction"]) if r["flops"] else "-",
                _num(r["intensity"], 2) if r["flops"] else "-", _num(r["roofline_gflops"]) if r["flops"] else "-",
                r["bound"] if r["flops"] else "-"]
        if algorithms:
            row.append(r["algorithm"] or "-")
        body.append(row)
    layer_fwd = sum(r["forward_ms"] for r in rows if r["forward_ms"] == r["forward_ms"])
    total = ["Total", "", "", human(t["macs"]), ms(layer_fwd), ""]
    if train:
        total += [ms(sum(r["backward_ms"] for r in rows if r["backward_ms"] == r["backward_ms"])), ""]
    total += ["100%", _num(t["gflops"]), _pct(t["peak_pct"]), "", "", ""]
    if algorithms:
        total.append(t.get("algorithm", ""))
    return headers, aligns, body, total


def _profile_notes(p) -> list[str]:
    return ["Columns: times are medians over the repeats (min-max beside); Share = (forward + backward) / all layers; "
            "GFLOP/s = forward FLOPs / forward time (FLOPs = 2 per MAC + elementwise work); % peak of the np.matmul "
            "peak; FLOP/B = FLOPs / minimum bytes moved (inputs + weights + output, each once); Roof = "
            "min(peak, FLOP/B x bandwidth) in GFLOP/s; Bound = which roof limits the layer."
            + (" Algorithm = what the engine ran where a layer can run several ways (--algorithm), '-' where "
               "it runs one way; Winograd multiplies fewer than the MACs count, so its GFLOP/s may pass the "
               "peak." if any(p.column("algorithm")) else ""),
            UNITS_NOTE]


#: the order in which the profile table gives up columns to fit a width (see :mod:`.fit`)
PROFILE_FIT = (("drop", "min-max", 0), ("drop", "min-max", 0), ("drop", "Roof", 0), ("drop", "FLOP/B", 0),
               ("drop", "Output", 0), ("drop", "% peak", 0), ("shorten", "Layer", 24), ("cut", "Type", 12),
               ("drop", "MACs", 0), ("shorten", "Layer", 12))
SWEEP_FIT = (("drop", "min-max", 0), ("drop", "% peak", 0), ("drop", "Predicted peak", 0), ("drop", "GFLOP/s", 0))
OPS_FIT = (("drop", "FLOPs", 0), ("cut", "Model", 16))


def _profile_cards(p) -> list[tuple[str, str, str]]:
    t = p.totals
    step = t["forward_ms"] + (t["backward_ms"] if t["mode"] == "training" else 0.0)
    cards = [("Training step" if t["mode"] == "training" else "Forward pass", f"{ms(step)} ms",
              f"batch {p.batch}, median pass"),
             ("Per image", f"{ms(t['ms_per_image'])} ms", f"{_num(t['images_per_s'])} images/s"),
             ("Throughput", f"{_num(t['gflops'])} GFLOP/s", f"{_pct(t['peak_pct'])} of the GEMM peak")]
    if t["measured_peak_bytes"] is not None:
        cards.append(("Peak memory", human_bytes(t["measured_peak_bytes"]),
                      f"predicted {human_bytes(t['predicted_peak_bytes'])}"))
    cards.append(("MACs", human(t["macs"]), thousands(t["macs"])))
    return cards


def _embedded(draw, captions: dict[str, str]):
    """For the page: draw the figures as SVG into a temporary folder and embed them."""
    def figures() -> list[str]:
        from .html_page import figures_of
        return figures_of(draw, lambda path: next((v for k, v in captions.items() if path.stem.endswith(k)),
                                                  path.stem))
    return figures


def render_profile(p, fmt: str = "table", width: int | None = None) -> str:
    """One profile: per-layer table, totals explained, machine and roofs."""
    if fmt == "json":
        return dump("profile", p.to_dict())
    head = machine_lines(p.machine, p.calibration) + [("Run", _run_line(p))]
    if fmt == "csv":
        from ..analysis import COLUMNS
        from ..profiling.core import PROFILE_COLUMNS
        comments = [("archstat profile", f"{p.model.name} ({p.model.file})"), *head, *profile_summary(p)]
        return _csv_comments(comments) + _csv(p.rows(), [*COLUMNS, *PROFILE_COLUMNS])
    title = f"{p.model.name}: input {shape_str(p.input_shape)}, measured through the NumPy engine"
    from . import profile_plots
    figures = _embedded(lambda path: profile_plots.profile_figures(p, path),
                        {"_roofline": "Roofline: each layer's achieved GFLOP/s against its arithmetic intensity, "
                                      "under the calibrated roofs.",
                         "_ops": "Each layer's MACs against its measured time.",
                         "figure": "Time per layer, forward" + (" and backward" if p.totals["mode"] == "training"
                                                               else "") + "."})
    return _render(fmt, title, head, _profile_table(p), profile_summary(p), _profile_notes(p), width,
                   PROFILE_FIT, _profile_cards(p), figures)


# ---------------------------------------------------------------------- sweep

def render_sweep(s, fmt: str = "table", width: int | None = None) -> str:
    """Time per image and peak memory against batch size."""
    from ..profiling.studies import SWEEP_COLUMNS

    if fmt == "json":
        return dump("sweep", s.to_dict())
    first = next(iter(s.profiles.values()), None)
    what = "training step (forward + backward)" if s.mode == "training" else "inference (forward)"
    run = f"{what}, {s.dtype}" + (f"; median of {first.totals['repeat']} repeats after {first.totals['warmup']} "
                                   f"warm-up per batch size" if first else "")
    if s.interrupted:
        run += "; INTERRUPTED: the last batch size shown may be partial"
    head = machine_lines(s.machine, s.calibration) + [("Run", run)]
    rows = s.rows()
    if fmt == "csv":
        return _csv_comments([("archstat sweep", s.model.name), *head]) + _csv(rows, list(SWEEP_COLUMNS))
    headers = ["Batch", "ms/batch", "min-max", "ms/image", "images/s", "GFLOP/s", "% peak", "Predicted peak",
               "Measured peak"]
    aligns = [">"] * len(headers)
    body = [[str(r["batch"]), ms(r["step_ms"]), _range(r["step_min_ms"], r["step_max_ms"]), ms(r["ms_per_image"]),
             _num(r["images_per_s"]), _num(r["gflops"]), _pct(r["peak_pct"]), _mb(r["predicted_peak_bytes"]),
             _mb(r["measured_peak_bytes"])] for r in rows]
    tail = []
    done = [r for r in rows if r["ms_per_image"] == r["ms_per_image"]]
    if len(done) >= 2:
        a, b = done[0], done[-1]
        tail.append(("Scaling", f"from batch {a['batch']} to {b['batch']}: time per image x"
                                f"{b['ms_per_image'] / a['ms_per_image']:.2f}, memory x"
                                f"{(b['measured_peak_bytes'] or math.nan) / (a['measured_peak_bytes'] or math.nan):.2f}"
                                " (weights are paid once; activations grow with the batch)"))
    from ..profiling.calibration import BUSY
    busy = [r["other_cpu_share"] for r in rows if r["other_cpu_share"] is not None]
    if busy and max(busy) > BUSY:
        tail.append(("Warning", f"other processes used up to {100 * max(busy):.0f}% of the CPUs while timing: "
                                "absolute times are inflated; compare ratios, or re-run when the machine is idle"))
    notes = ["Predicted peak: weights + the input, live activations and kernel workspace at their peak step "
             "(training: the analysis' training-memory estimate); measured: tracemalloc over one untimed pass + "
             "weights and input.", UNITS_NOTE]
    from . import sweep_plots
    figures = _embedded(lambda path: [sweep_plots.batch_sweep(s, path)],
                        {"figure": "Time per image and peak memory against batch size."}) if s.profiles else None
    return _render(fmt, f"{s.model.name}: time and memory vs batch size", head, (headers, aligns, body, None),
                   tail, notes, width, SWEEP_FIT, figures=figures)


# ---------------------------------------------------------------------- ops vs time

def render_ops_time(o, fmt: str = "table", width: int | None = None) -> str:
    """Several models: MACs vs measured forward time, with the linear fits."""
    from ..profiling.studies import LAYER_KEYS

    if fmt == "json":
        return dump("ops_vs_time", o.to_dict())
    head = machine_lines(o.machine, o.calibration)
    first = o.profiles[0] if o.profiles else None
    run = f"inference, batch {o.batch}"
    if first:
        run += f", {first.dtype}, median of {first.totals['repeat']} repeats"
    if o.interrupted:
        run += "; INTERRUPTED: later models were not measured"
    head.append(("Run", run))
    if fmt == "csv":
        return _csv_comments([("archstat profile", "operations vs time"), *head]) + _csv(
            o.layer_rows, LAYER_KEYS)
    headers = ["Model", "MACs", "FLOPs", "Forward ms", "ms/image", "GFLOP/s"]
    aligns = ["<"] + [">"] * 5
    body = [[r["model"], human(r["macs"]), human(r["flops"]), ms(r["forward_ms"]),
             ms(r["ms_per_image"]), _num(r["gflops"])] for r in o.model_rows]
    tail = [(f"Fit over {k}", _fit_text(f)) for k, f in o.fits.items()]
    from ..profiling.calibration import BUSY
    busy = [p.totals["other_cpu_share"] for p in o.profiles if p.totals["other_cpu_share"] is not None]
    if busy and max(busy) > BUSY:
        tail.append(("Warning", f"other processes used up to {100 * max(busy):.0f}% of the CPUs while timing: "
                                "the points scatter more than they would on an idle machine"))
    claim = "operation count predicting time linearly"
    notes = ["Canziani, Paszke & Culurciello 2016 (arXiv:1605.07678) report that operation count predicts "
             "inference time about linearly. Here, " + "; ".join(
                 f"over {k}, {f.verdict(claim)}" for k, f in o.fits.items()) + ".", UNITS_NOTE]
    from . import profile_plots
    figures = _embedded(lambda path: [profile_plots.ops_vs_time(o, path)],
                        {"figure": "MACs against measured forward time, with the linear fits."}) if o.profiles else None
    return _render(fmt, "Operations vs measured time", head, (headers, aligns, body, None), tail, notes, width,
                   OPS_FIT, figures=figures)


def _fit_text(f) -> str:
    if f.n < 2 or math.isnan(f.slope):
        return f"too few points ({f.n})"
    text = (f"time = {f.slope * 1e9:.3g} ms per GMAC x MACs {'+' if f.intercept >= 0 else '-'} "
            f"{abs(f.intercept):.3g} ms; R^2 = {f.r2:.3f} over {f.n} points")
    if not math.isnan(f.slope_ci[0]):
        text += f"; 95% CI: slope {f.slope_ci[0] * 1e9:.3g} to {f.slope_ci[1] * 1e9:.3g} ms per GMAC"
    if not math.isnan(f.r2_ci[0]):
        text += f", R^2 {f.r2_ci[0]:.2f} to {f.r2_ci[1]:.2f}"
    return text


# ---------------------------------------------------------------------- calibration

def render_calibration(cal, fmt: str = "table") -> str:
    """A calibration: machine, peaks, each figure's spread over its runs, cache file."""
    if fmt == "json":
        return dump("calibration", cal.to_dict())
    lines = [f"archstat calibration ({'quick' if cal.quick else 'full'}, {cal.source})"]
    pairs = machine_lines(cal.machine, cal)
    for key, runs in cal.runs.items():
        unit = "GB/s" if key == "copy" else "GFLOP/s"
        what = "np.copyto" if key == "copy" else f"np.matmul {key.split('_', 1)[1]}"
        if runs:
            runs_sorted = sorted(runs)
            pairs.append((what, f"best {max(runs):.1f} {unit}, median {runs_sorted[len(runs) // 2]:.1f}, worst "
                                f"{min(runs):.1f} over {len(runs)} runs"))
    pairs.append(("Ridge", ", ".join(f"{k}: {cal.ridge(k):.1f} FLOP/B" for k in sorted(cal.gemm_gflops))
                  + " (layers below it are memory-bound)"))
    pairs.append(("Took", f"{cal.seconds:.1f} s" if cal.seconds else "-"))
    pairs.append(("Cache", cal.path or cal.cache_note or "not saved"))
    return "\n".join(lines + _kv_text(pairs)) + "\n"
