"""PyTorch modules in: ``read_torch(module, input_shape=(3, 224, 224))`` returns an
:class:`~archstat.importers.Imported` whose spec ``archstat.load`` builds like any other.

How (one module each): :mod:`.torch_trace` traces the module with torch.fx (why fx and not
torch.export: see there) in eval mode, and again in training mode for the branches that run
only in training, and runs both graphs on PyTorch's meta device to learn every value's shape;
:mod:`.torch_graph` walks the graph and names the layers (module paths: ``layer1.0.conv1``);
:mod:`.torch_modules` and :mod:`.torch_ops` map modules and functions onto the registry's
layer types. torch is imported when ``read_torch`` is called, never before: archstat does not
depend on it.

What the spec holds, beside the layers: ``training_only: true`` on layers that only the
training graph runs (GoogLeNet's and Inception-v3's auxiliary heads), ``opaque`` layers for
what archstat has no type for (with ``allow_unknown``), and notes on anything a reader of the
numbers should know: a module called twice (its later layers share the first's parameters:
``shares``, so they count once), parameters no traced call reads, the tracing itself.
"""
from __future__ import annotations

from typing import Any

from ..errors import ArchstatError, short_repr
from . import Imported

#: buffers PyTorch keeps that archstat does not count (batch norm's step counter)
_UNCOUNTED_BUFFERS = ("num_batches_tracked",)


def read_torch(module: Any, *, input_shape: Any, batch: int = 1, allow_unknown: bool = False) -> Imported:
    """Translate a PyTorch module into an archstat spec and its weights.

    Parameters
    ----------
    module : torch.nn.Module
        Imported in eval mode (its own mode flags are left as they were). Its forward takes
        one tensor (N, C, H, W); further arguments must have defaults.
    input_shape : (C, H, W)
        One sample's shape, the spec's ``input``.
    batch : int
        The batch size of the example the shapes are traced with.
    allow_unknown : bool
        Pass modules and operations archstat has no type for through as uncounted ``opaque``
        layers (listed in ``Imported.uncounted``) instead of raising.

    Returns
    -------
    Imported
        ``spec``: layers named by module path; ``weights``: ``{layer: {name: ndarray}}``,
        copies of the module's tensors in the registry's layouts (none for a module on the
        meta device); ``notes``; ``uncounted``.

    Raises
    ------
    ArchstatError
        torch is missing; the arguments are wrong; fx cannot trace the module; or a module or
        operation has no archstat layer type (naming its module path, class or function and
        input shapes) and ``allow_unknown`` is false.
    """
    torch = _require_torch()
    label, shape = _check_arguments(module, input_shape, batch, torch)
    tr, failure = _translate(_traceable(module, torch), label, shape, batch, allow_unknown)
    _mark_shared(tr)
    weights, on_meta = _weights(tr, torch)
    notes = _notes(tr, module, on_meta, failure)
    spec = {"name": label, "source": f"the PyTorch module {type(module).__module__}.{type(module).__qualname__}, "
                                     f"imported by archstat with torch.fx (torch {torch.__version__})",
            "notes": " ".join(notes), "input": list(shape), "layers": tr.ordered_layers()}
    names = {name: path for path, name in tr.namer.renamed.items()}
    return Imported(spec=spec, weights=weights, notes=notes, uncounted=tr.uncounted, names=names)


def supported() -> dict[str, list[str]]:
    """The module classes and the functions / tensor methods that ``read_torch`` maps."""
    _require_torch()
    from .torch_ops import supported as names
    return names()


# ---------------------------------------------------------------------- steps

def _require_torch():
    """The torch module, or an error that says how to install it."""
    try:
        import torch
    except ImportError:
        raise ArchstatError("reading PyTorch modules needs torch",
                            hint="pip install torch (archstat itself does not depend on it)") from None
    return torch


def _check_arguments(module: Any, input_shape: Any, batch: Any, torch) -> tuple[str, tuple[int, ...]]:
    """(the label errors name: the module's class, the input shape) after checking them all."""
    from ..spec import parse_input_shape

    if not isinstance(module, torch.nn.Module):
        raise ArchstatError(f"expected a torch.nn.Module, got {short_repr(module)}", field="module")
    label = type(module).__name__
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise ArchstatError(f"expected input_shape (C, H, W), got {short_repr(input_shape)}", file=label,
                            field="input_shape")
    shape = parse_input_shape(list(input_shape), label)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchstatError(f"batch must be a positive integer, got {short_repr(batch)}", file=label, field="batch")
    return label, shape


def _translate(traced, label: str, shape: tuple[int, ...], batch: int, allow_unknown: bool):
    """(the Translator after both passes, why the training graph failed or None).

    The eval graph gives every layer that runs at inference; the nodes of the training graph
    that compute nothing the (live) eval graph computes are the training-only layers."""
    from .torch_graph import Translator, has_tensor
    from .torch_names import Namer
    from .torch_trace import live_nodes, match_training_graph, output_nodes, propagate, side_branches, trace

    eval_gm = trace(traced, False, label)
    values = propagate(eval_gm, (batch, *shape), label)
    training, failure = _training_graph(traced, batch, shape, label)
    graphs = [eval_gm] + ([training[0]] if training else [])
    tr = Translator(traced, label, Namer(_paths(graphs)), allow_unknown)
    live = live_nodes(eval_gm.graph)
    tr.run(eval_gm, values, [n for n in eval_gm.graph.nodes if n in live], batch=batch)
    if training:
        train_gm, train_values = training
        matched = {t: e for t, e in match_training_graph(eval_gm.graph, train_gm.graph).items() if e in live}
        branches, differing = side_branches(train_gm.graph, matched, output_nodes(eval_gm.graph))
        tr.seed(matched)
        tr.run(train_gm, train_values, branches, batch=max(batch, 2), training_only=True)
        tr.training_differs = [n.name for n in differing if has_tensor(train_values.get(n.name))]
    return tr, failure


def _traceable(module, torch):
    """The module to trace: a module archstat maps as a whole (``nn.Conv2d`` on its own) inside
    a container, so that it stays one layer (named after its class) instead of being traced
    into the functions its forward calls."""
    from .torch_modules import MODULES
    from .torch_trace import qualname

    if qualname(type(module)) not in MODULES:
        return module
    from collections import OrderedDict
    return torch.nn.Sequential(OrderedDict([(type(module).__name__.lower(), module)]))


def _training_graph(module, batch: int, shape: tuple[int, ...], label: str):
    """((graph, values), None) of the module in training mode, or (None, why it failed).

    Batch norm refuses one value per channel in training: the shapes of this graph are
    traced with a batch of at least 2."""
    from .torch_trace import propagate, trace

    try:
        gm = trace(module, True, label)
        return (gm, propagate(gm, (max(batch, 2), *shape), label)), None
    except ArchstatError as exc:
        return None, exc.message


def _paths(graphs) -> set[str]:
    """Every module path and tensor attribute the graphs name (reserved for those layers)."""
    return {str(n.target) for gm in graphs for n in gm.graph.nodes if n.op in ("call_module", "get_attr")}


def _weights(tr, torch) -> tuple[dict[str, dict[str, Any]], bool]:
    """Copies of the layers' tensors as arrays (one array per tensor, however many layers
    hold it); True when some were on the meta device (no values to copy)."""
    arrays: dict[int, Any] = {}
    weights: dict[str, dict[str, Any]] = {}
    on_meta = False
    for layer, tensors in tr.tensors.items():
        for name, tensor in tensors.items():
            if tensor.is_meta:
                on_meta = True
                continue
            if id(tensor) not in arrays:
                t = tensor.detach().to("cpu")
                if t.dtype == torch.bfloat16:   # NumPy has no bfloat16
                    t = t.float()
                arrays[id(tensor)] = t.numpy().copy()
            weights.setdefault(layer, {})[name] = arrays[id(tensor)]
    return weights, on_meta


# ---------------------------------------------------------------------- notes

def _notes(tr, module, on_meta: bool, failure: str | None) -> list[str]:
    """What a reader of the numbers should know about this import, one sentence each."""
    notes = ["Traced with torch.fx in eval mode; layer names are the module paths of named_modules(), "
             "functional operations are named after the module that runs them (layer1.0.add)."]
    if tr.namer.renamed:
        pairs = [f"{path!r} is {name}" for path, name in tr.namer.renamed.items()]
        notes.append(f"Module paths that are not valid layer names (characters beyond letters, digits and _ . - /, "
                     f"or the reserved 'input') are renamed: {_some(pairs)}.")
    notes += _shared_notes(tr) + _training_notes(tr, failure) + _uncounted_notes(tr, module)
    notes += [f"{text} ({_some(layers)})." for text, layers in tr.notes.items()]
    if on_meta:
        notes.append("The module's tensors are on the meta device: the import carries no weights.")
    return notes


def _training_notes(tr, failure: str | None) -> list[str]:
    only = [e["name"] for e in tr.layers if e.get("training_only")]
    notes = []
    if only:
        notes.append(f"{len(only)} layers run only in training ({_some(only)}): traced from the module in "
                     "training mode and marked training_only; their parameters count, their MACs and FLOPs do not.")
    if failure:
        notes.append(f"The module could not be traced in training mode ({failure}): branches that run only in "
                     "training, if it has any, are missing, and their parameters with them.")
    if tr.training_differs:
        notes.append(f"In training mode the module computes more than its inference graph and its side branches "
                     f"(fx nodes {_some(tr.training_differs)}: stochastic depth or dropout written as Python code, "
                     "for instance); the spec describes inference, and those nodes are no layers.")
    return notes


def _uncounted_notes(tr, module) -> list[str]:
    """The opaque layers (one note per op), and the parameters no layer holds."""
    by_op: dict[str, list[str]] = {}
    for item in tr.uncounted:
        by_op.setdefault(item["op"], []).append(item["name"])
    notes = []
    for op, names in by_op.items():
        count = sum(tr.opaque_params.get(name, 0) for name in names)
        one = len(names) == 1
        whose = "its" if one else "their"
        what = f"{whose} {count:,} parameter values and operations" if count else f"{whose} operations"
        notes.append(f"{'Layer ' + names[0] if one else f'{len(names)} layers ({_some(names)})'}, {op}, "
                     f"{'has' if one else 'have'} no archstat layer type and pass{'es' if one else ''} through "
                     f"uncounted: {what} are missing from the totals.")
    unread = _unread(tr, module)
    for where, group in (("are read only by operations that pass through uncounted",
                          [(n, t) for n, t in unread if id(t) in tr.attr_reads]),
                         ("are read by no traced call and are not counted",
                          [(n, t) for n, t in unread if id(t) not in tr.attr_reads])):
        if group:
            notes.append(f"{sum(t.numel() for _, t in group):,} parameter and buffer values {where}: "
                         f"{_some([name for name, _ in group])}.")
    return notes


def _mark_shared(tr) -> None:
    """Tensors held by several layers count once, at the first (the spec key ``shares``): a
    module called twice gets ``shares: <first layer>``; a tensor tied between two modules gets
    ``shares: {weight: <first layer>}`` where both hold it under the same name (and are of one
    type, or it is a vector). The later layers keep no copy of what they share."""
    entries = {e["name"]: e for e in tr.layers}
    whole: dict[frozenset[int], str] = {}
    for entry in tr.layers:
        name = entry["name"]
        tensors = tr.tensors.get(name)
        if not tensors:
            continue
        key = frozenset(id(t) for t in tensors.values())
        owner = whole.get(key)
        if owner is not None and entries[owner]["type"] == entry["type"]:
            entry["shares"] = owner
            tied = dict(tensors)
        else:
            whole.setdefault(key, name)
            tied = {}
            for field, tensor in tensors.items():
                holder = tr.uses[id(tensor)][0]
                if holder != name and tr.tensors[holder].get(field) is tensor and (
                        entries[holder]["type"] == entry["type"] or tensor.dim() == 1):
                    entry.setdefault("shares", {})[field] = holder
                    tied[field] = tensor
        for field, tensor in tied.items():
            del tensors[field]
            tr.uses[id(tensor)].remove(name)
        if not tensors:
            del tr.tensors[name]


def _shared_notes(tr) -> list[str]:
    """What sharing says: the layers that run a module an earlier layer runs, those that tie some
    tensors to an earlier layer's, and any tensor still held by several layers (counted twice)."""
    notes = []
    whole = [f"{e['name']} -> {e['shares']}" for e in tr.layers if isinstance(e.get("shares"), str)]
    if whole:
        notes.append(f"{len(whole)} layers run a module that an earlier layer runs too, on its parameters "
                     f"(shares: {_some(whole)}): they count once.")
    some = [f"{e['name']}.{field} -> {owner}" for e in tr.layers if isinstance(e.get("shares"), dict)
            for field, owner in e["shares"].items()]
    if some:
        notes.append(f"{len(some)} tensors are tied to an earlier layer's (shares: {_some(some)}): they count once.")
    groups: dict[tuple[str, ...], int] = {}
    sizes = {id(t): t.numel() for tensors in tr.tensors.values() for t in tensors.values()}
    for key, layers in tr.uses.items():
        if len(layers) > 1:
            groups[tuple(layers)] = groups.get(tuple(layers), 0) + sizes[key]
    for layers, count in groups.items():
        notes.append(f"Layers {', '.join(layers)} hold some of the same tensors ({count:,} values, a parameter tied "
                     f"between modules under different names or layouts): the totals count them once per layer "
                     f"({count * (len(layers) - 1):,} too many).")
    return notes


def _unread(tr, module) -> list[tuple[str, Any]]:
    """The module's parameters and counted buffers that no layer holds (opaque modules aside)."""
    held = set(tr.uses)
    for opaque in tr.opaque_modules:
        held.update(id(t) for t in [*opaque.parameters(), *opaque.buffers()])
    named = [*module.named_parameters(), *((n, b) for n, b in module.named_buffers()
                                           if n.rsplit(".", 1)[-1] not in _UNCOUNTED_BUFFERS)]
    return [(name, t) for name, t in named if id(t) not in held]


def _some(names: list[str], limit: int = 6) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")
