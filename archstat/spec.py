"""Architecture specs: safe YAML/JSON loading, arguments and derived values, validation.

A spec is data (``yaml.safe_load`` semantics: no tags, no object construction)::

    name: VGG-${config}
    family: vgg
    source: Simonyan & Zisserman 2014, Table 1
    args: {config: D, batch_norm: false}      # overridable: --arg config=E
    let:                                       # derived, in order; not overridable
      widths: {A: [64, M, 128, M], D: [64, 64, M, 128, 128, M]}
      plan: ${widths[config]}
    input: [3, 224, 224]                       # C, H, W (or [F]); may use variables
    blocks:
      conv_relu:                               # a reusable, parameterised block
        args: {out: required, k: 3, pad: "${k // 2}"}
        layers:
          - {name: "${name}", type: conv2d, out_channels: $out, kernel_size: $k, padding: $pad}
          - {name: "${name}_relu", type: relu, inplace: true}
    layers:
      - {block: conv_relu, name: "conv1_${i}", out: 64, repeat: 2}
      - {type: max_pool2d, kernel_size: 2, name: pool1}

Rules
-----
* Every entry of ``layers`` is a layer (``type:`` and its fields) or a block instance
  (``block:`` and its arguments). Both accept ``name``, ``inputs``, ``repeat``, ``when``,
  ``unless`` and ``training_only``.
* ``inputs`` (a name or a list) defaults to the previous layer; the first layer reads
  ``input``. Inside a block, ``input`` is the block's input and names refer first to the
  block's own layers. A block instance's name stands for its last layer.
* Layer names default to a short alias and a counter (``conv1``, ``relu2``). Names are
  letters, digits, ``_ . - /`` (``features.0``, ``layer1.0.conv1``: torchvision's module
  paths). Inside a block instance called ``b``, a layer ``x`` is called ``b.x``, unless its
  name uses ``${name}``, which makes it a sibling of the instance (``conv1_1``,
  ``conv1_1_relu``). When a layer and a block instance share a name, the name means the
  layer; name the instance's last layer to mean its output.
* ``repeat: n`` stacks n copies (n >= 0), each reading the previous one; ``${i}`` is the
  copy's number (1..n); a repeated name without ``${i}`` gets ``_1`` .. ``_n``. An entry
  without ``repeat`` sees the ``i`` of the copy it is part of (1 at the top level).
* Substitution (:mod:`archstat.expr`): ``${expression}`` evaluates safe arithmetic
  (``${c * 2}``, ``features.${i - 1}``, ``${make_divisible(c * width, 8)}``,
  ``${widths[stage]}``); ``$var`` is a variable; ``$$`` a literal dollar. A value that is
  exactly one expression keeps its type (a number, a list); inside text it is formatted.
* Variables: the top-level ``args`` (defaults, overridden by ``load(path, args={...})`` or
  ``--arg name=value``) and ``let`` (derived values, evaluated in order, each seeing the
  ones before) are visible everywhere, blocks included. A block sees, on top of them, its
  own ``args`` (a default may be an expression of the arguments before it), its ``let``,
  ``name`` (the instance's name) and ``i`` (the repeat copy).
* ``when: <bool>`` / ``unless: <bool>`` keep or drop an entry (``when: ${stride == 1}``), for
  each copy of a repeated entry with that copy's ``i`` (``when: ${i % 2 == 1}``).
* ``training_only: true`` marks an entry (for a block, all its layers) as a branch that runs
  only in training, such as an auxiliary classifier: its parameters count, but inference
  MACs, FLOPs and memory leave it out, and no layer that runs at inference may read it.
* ``shares: <layer>`` makes a layer use another layer's parameters and buffers, as a module
  that a network calls twice: one set of parameters (counted once, at the layer named), two
  layers' work. Both must be of the same type with the same parameter shapes. ``shares:
  {bias: <layer>}`` shares named tensors only (a tensor that a file stores once and two layers
  read: tied weights), each of the same shape as the other layer's tensor of that name.
* ``call: function`` (or ``module``, ``torch``, ``method``, ``operator``) records how the
  PyTorch source runs a layer where that differs from its type's usual way (``F.relu(x)``
  instead of an ``nn.ReLU`` module, ``torch.relu(x)``; ``add`` is usually ``x + y``). It changes no count of archstat's own;
  peer tools' conventions read it (tools that hook modules do not see function calls).
* ``space`` declares a design space over the top-level ``args`` (``width: {choice: [8, 16]}``,
  ``depth: {int: [1, 4]}``, ``{range: [lo, hi, step]}``, ``{uniform: [lo, hi]}``,
  ``{loguniform: [lo, hi]}``; :mod:`archstat.space.declare`); the spec loads with its defaults,
  and ``archstat space`` / ``archstat search`` sample, enumerate and search it.
* ``input``, ``name`` and ``family`` may use the variables too (``family`` defaults to the
  file's name: it groups models in ``archstat zoo`` and colours them in plots). Top-level keys starting with
  ``x-`` are ignored: a place for YAML anchors (``x-conv: &conv {...}``, then ``<<: *conv``).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from . import expr
from .errors import ArchstatError, did_you_mean, short_repr
from .layers import registry
from .layers.registry import MAX_INT
from .space.declare import parse_space
from .spec_io import read_spec_data

TOP_LEVEL_KEYS = ("name", "family", "description", "source", "notes", "input", "accuracy", "args", "space",
                  "let", "blocks", "layers")
ACCURACY_KEYS = ("top1", "top5", "source", "approximate")
INPUT_NAME = "input"
#: names a spec may not give to an argument or derived value
RESERVED_NAMES = ("i", "name")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_REQUIRED_ARG = "required"


@dataclass
class LayerRecord:
    """One expanded layer: its unique name, registered type, validated attrs and inputs."""

    name: str
    type: registry.LayerType
    attrs: dict[str, Any]
    inputs: tuple[str, ...]
    index: int
    training_only: bool = False
    #: tensors this layer uses from other layers: ``{tensor: owner layer}`` (``"*"`` for all of
    #: them: a module called twice), or None
    shares: dict[str, str] | None = None
    #: how the source PyTorch code runs it, where that differs from its type's usual way
    #: (``registry.TORCH_CALLS``), or None
    call: str | None = None


@dataclass
class Spec:
    """A loaded, expanded and validated spec (before the graph is built).

    ``args`` holds every argument's value (defaults with the overrides applied);
    ``variables`` adds the derived ``let`` values.
    """

    file: str
    name: str
    description: str
    source: str
    notes: str
    input_shape: tuple[int, ...]
    accuracy: dict[str, Any] | None
    family: str = ""
    args: dict[str, Any] = field(default_factory=dict)
    defaults: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    layers: list[LayerRecord] = field(default_factory=list)
    #: the design space the spec declares (``space:``): ``{argument: Dimension}``
    space: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------- top level

def load_spec(source: str | os.PathLike | Mapping[str, Any], args: Mapping[str, Any] | None = None,
              label: str | None = None) -> Spec:
    """Read, expand and validate a spec from a path (YAML or JSON) or a mapping.

    ``args`` override the spec's top-level ``args`` (model-wide variables with defaults,
    e.g. ``{aux: false}`` to drop an auxiliary head); unknown names are an error. ``label``
    is how messages name the spec (default: its path).

    Raises
    ------
    ArchstatError
        For anything wrong in the spec, naming the file, layer and field.
    """
    from .spec_expand import expand

    memo = _memo_key(source, args, label)
    if memo is not None and memo in _EXPANDED:
        return dataclasses.replace(_EXPANDED[memo])
    data, label = read_spec_data(source, label)
    if data is None:
        raise ArchstatError("the spec is empty", file=label,
                            hint="a spec is a mapping with 'input' and a 'layers' list (the README's 'Spec format' shows one)")
    if not isinstance(data, Mapping):
        raise ArchstatError(f"a spec must be a mapping with a 'layers' list, got {type(data).__name__}",
                            file=label)
    for key in data:
        if isinstance(key, str) and key.startswith("x-"):
            continue  # a home for YAML anchors
        if key not in TOP_LEVEL_KEYS:
            hint = did_you_mean(str(key), TOP_LEVEL_KEYS)
            if key == "models":
                hint = "this looks like the zoo index (specs/zoo.yaml), not a spec: name a model instead"
            raise ArchstatError(f"unknown top-level key (allowed: {', '.join(TOP_LEVEL_KEYS)}, and x-* for "
                                "YAML anchors)", file=label, field=str(key), hint=hint)
    texts = {}
    for key in ("description", "source", "notes"):
        texts[key] = _text(data.get(key, ""), label, key)
    accuracy = _parse_accuracy(data.get("accuracy"), label)
    blocks = data.get("blocks") or {}
    if not isinstance(blocks, Mapping):
        raise ArchstatError("expected a mapping of block name to block", file=label, field="blocks")
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise ArchstatError("expected a non-empty list of layers", file=label, field="layers")
    defaults = _declared_args(data.get("args"), label)
    space = parse_space(data.get("space"), defaults, label)
    values = _override_args(defaults, args, data.get("let"), label)
    steps = expr.Budget()  # every expression of this spec draws on it: no spec can hang the loader
    variables = derive(data.get("let"), values, label, steps=steps)

    def top(key: str, default: Any = "") -> Any:
        return substitute_value(data.get(key, default), variables, label, None, key, steps)

    name = _text(top("name"), label, "name") or (Path(label).stem if label != "<dict>" else "model")
    family = _text(top("family"), label, "family") or ("" if isinstance(source, Mapping) else Path(source).stem)
    input_shape = parse_input_shape(top("input", None), label)
    spec = Spec(file=label, name=name, input_shape=input_shape, accuracy=accuracy, family=family,
                args=values, defaults=defaults, variables=variables, space=space, **texts)
    spec.layers = expand(label, blocks, layers, variables, steps, parsed=not isinstance(source, Mapping))
    if memo is not None:
        if len(_EXPANDED) >= 32:
            _EXPANDED.pop(next(iter(_EXPANDED)))
        _EXPANDED[memo] = spec
        return dataclasses.replace(spec)
    return spec


#: expanded specs by (file, modification time, size, arguments): loading the same model again
#: rebuilds only its graph. A cache of a pure function of the key; callers get a copy of the
#: Spec, and its layer records are never changed after expansion.
_EXPANDED: dict[tuple[Any, ...], Spec] = {}


def _memo_key(source: Any, args: Mapping[str, Any] | None, label: str | None) -> tuple[Any, ...] | None:
    if isinstance(source, Mapping):
        return None
    try:
        stat = os.stat(source)
        given = tuple(sorted((str(k), type(v).__name__, repr(v)) for k, v in (args or {}).items()))
    except (OSError, TypeError, ValueError):
        return None  # not a file (read_spec_data says so), or arguments that are not plain values
    return (os.path.realpath(source), stat.st_mtime_ns, stat.st_size, given, label)


def _text(value: Any, label: str, key: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ArchstatError("expected text", file=label, field=key)
    return str(value)


def _declared_args(declared: Any, label: str) -> dict[str, Any]:
    """The spec's ``args`` and their defaults; every top-level argument needs one."""
    declared = declared or {}
    if not isinstance(declared, Mapping):
        raise ArchstatError("expected a mapping of argument name to default value", file=label, field="args")
    for name, default in declared.items():
        _check_variable_name(name, label, "args")
        if default == _REQUIRED_ARG or default is None:
            raise ArchstatError(f"top-level argument {name!r} needs a default value", file=label,
                                field=f"args.{name}")
        if isinstance(default, str) and "$" in default:
            raise ArchstatError(f"the default of top-level argument {name!r} must be a plain value",
                                file=label, field=f"args.{name}",
                                hint="compute derived values under 'let', from the arguments")
    return dict(declared)


def _check_variable_name(name: Any, label: str, where: str) -> None:
    if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or name in RESERVED_NAMES:
        raise ArchstatError(f"{short_repr(name)} cannot be a variable name (reserved, or not an identifier)", file=label, field=where)


def _override_args(declared: Mapping[str, Any], given: Mapping[str, Any] | None, let: Any,
                   label: str) -> dict[str, Any]:
    values = dict(declared)
    for name, value in (given or {}).items():
        if name not in declared:
            derived = isinstance(let, Mapping) and name in let
            raise ArchstatError(
                f"the spec has no argument {name!r}"
                + (" (it is derived under 'let' from the arguments)" if derived else "")
                + (f" (its arguments: {', '.join(declared)})" if declared else " (it takes none)"),
                file=label, field="args", hint=None if derived else did_you_mean(str(name), declared))
        default = declared[name]
        if not _same_kind(value, default):
            kind = {bool: "true or false", int: "an integer", float: "a number", str: "text",
                    list: "a list", dict: "a mapping"}.get(type(default), type(default).__name__)
            raise ArchstatError(f"argument {name!r} expects {kind}, like its default {default!r}, got "
                                f"{short_repr(value)}", file=label, field=f"args.{name}")
        values[name] = value
    return values


def _same_kind(value: Any, default: Any) -> bool:
    """An argument keeps its default's kind: an integer stays an integer (50.0 is not a depth),
    a number may be any finite number (a width of 2 is 2.0), the rest keep their type."""
    if isinstance(default, bool) or isinstance(value, bool):
        return type(value) is type(default)
    if isinstance(default, int):
        return isinstance(value, int)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and math.isfinite(value)
    return type(value) is type(default)


def derive(let: Any, values: Mapping[str, Any], label: str, where: str = "let",
           layer: str | None = None, steps: expr.Budget | None = None) -> dict[str, Any]:
    """``values`` plus each ``let`` entry, evaluated in order (each sees the ones before)."""
    variables = dict(values)
    if let is None:
        return variables
    if not isinstance(let, Mapping):
        raise ArchstatError("expected a mapping of name to value or expression", file=label, layer=layer,
                            field=where)
    for name, value in let.items():
        _check_variable_name(name, label, where)
        if name in values:
            raise ArchstatError(f"{name!r} is both an argument and a derived value", file=label, layer=layer,
                                field=f"{where}.{name}", hint="rename one of them")
        variables[name] = substitute_value(value, variables, label, layer, f"{where}.{name}", steps)
    return variables


def substitute_value(value: Any, variables: Mapping[str, Any], label: str, layer: str | None,
                     field: str, steps: expr.Budget | None = None) -> Any:
    """Substitute every ``${...}`` and ``$var`` in a (nested) value; ArchstatError on failure."""
    from .spec_values import substitute
    return substitute(value, variables, label, layer, field, steps=steps)


def parse_input_shape(value: Any, label: str) -> tuple[int, ...]:
    """``input: [C, H, W]`` (or ``[F]``): positive integers."""
    if value is None:
        raise ArchstatError("missing the input size", file=label, field="input",
                            hint="add e.g. 'input: [3, 224, 224]' (channels, height, width)")
    if (not isinstance(value, (list, tuple)) or len(value) not in (1, 3)
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_INT for v in value)):
        raise ArchstatError(f"expected [C, H, W] (or [F]) of positive integers up to {MAX_INT:,}, got "
                            f"{short_repr(value)}", file=label, field="input")
    return tuple(int(v) for v in value)


def _parse_accuracy(value: Any, label: str, where: str = "accuracy") -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ArchstatError("expected a mapping like {top1: 71.6, top5: 90.4, source: ...}",
                            file=label, field=where)
    out = {}
    for key, v in value.items():
        if key not in ACCURACY_KEYS:
            raise ArchstatError(f"unknown accuracy key (allowed: {', '.join(ACCURACY_KEYS)})",
                                file=label, field=f"{where}.{key}", hint=did_you_mean(str(key), ACCURACY_KEYS))
        if key in ("top1", "top5"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 100:
                raise ArchstatError(f"expected a percentage between 0 and 100, got {v!r}",
                                    file=label, field=f"{where}.{key}")
            v = float(v)
        elif key == "approximate":
            if not isinstance(v, bool):
                raise ArchstatError("expected true or false", file=label, field=f"{where}.{key}")
        else:
            v = str(v)
        out[key] = v
    return out


parse_accuracy = _parse_accuracy
