"""Writing a Model back out as a readable spec (``archstat.save``, ``archstat import``).

The spec lists every layer on one line, with its name, its type, the fields whose value is
not the type's default, and its inputs where it does not read the layer before it; blocks and
arguments are not reconstructed (a family spec's expansion is written out flat). Weights are
left out. Loading the written spec gives the same graph, shapes and counts; a test checks this
for every model of the zoo.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .outfile import write_file
from .graph import Model, load
from .layers.fields import INFERRED, REQUIRED
from .spec import INPUT_NAME
from .spec_io import parse_value


def spec_data(model: Model) -> dict[str, Any]:
    """The spec of a model as plain data: what :func:`save` writes."""
    model = load(model)
    data: dict[str, Any] = {"name": model.name}
    if model.family:
        data["family"] = model.family
    for key in ("description", "source", "notes"):
        text = getattr(model, key)
        if text:
            data[key] = text
    data["input"] = list(model.input_shape)
    layers, previous = [], INPUT_NAME
    for layer in list(model.layers())[1:]:
        entry: dict[str, Any] = {"name": layer.name, "type": layer.type.name}
        for f in layer.type.fields:
            value = layer.attrs.get(f.name)
            if value is None and (f.default is INFERRED or f.default is None):
                continue   # inferred from the graph, or unset; a declared value is written
            if f.default not in (REQUIRED, INFERRED, None) and value == f.normalise(f.default):
                continue   # the type's default
            entry[f.name] = _plain(value)
        if layer.inputs != (previous,):
            entry["inputs"] = layer.inputs[0] if len(layer.inputs) == 1 else list(layer.inputs)
        if layer.training_only:
            entry["training_only"] = True
        if layer.call and layer.call != layer.type.torch_call:
            entry["call"] = layer.call
        if layer.shares:
            entry["shares"] = layer.shares["*"] if set(layer.shares) == {"*"} else dict(layer.shares)
        layers.append(entry)
        previous = layer.name
    data["layers"] = layers
    return data


def spec_text(model: Model) -> str:
    """The spec as YAML text: top-level keys, then one flow mapping per layer."""
    data = spec_data(model)
    head = {k: v for k, v in data.items() if k != "layers"}
    lines = [yaml.dump(head, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True,
                       default_flow_style=None).rstrip(), "layers:"]
    for entry in data["layers"]:
        text = yaml.dump(entry, Dumper=_Dumper, sort_keys=False, default_flow_style=True, width=10**6,
                         allow_unicode=True).strip()
        lines.append(f"  - {text}")
    return "\n".join(lines) + "\n"


def save(model: Model, path: str | os.PathLike) -> Path:
    """Write the model's spec to ``path`` (YAML; JSON when the name ends in .json) and return
    the path. The written spec loads back into the same graph and counts; weights are not
    written."""
    import json

    path = Path(path)
    if path.suffix.lower() == ".json":
        text = json.dumps(spec_data(model), indent=2) + "\n"
    else:
        text = spec_text(model)
    return write_file(path, text, field="path")


def _plain(value: Any) -> Any:
    """A field value as a spec writes it: a pair of equal sides as one number, tuples as lists."""
    if isinstance(value, tuple):
        if len(value) == 2 and value[0] == value[1] and not isinstance(value[0], (tuple, list)):
            return value[0]
        return [_plain(v) for v in value]
    return value


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, quoting any text that archstat's YAML 1.2 loader would read as
    something else (``010``, ``0x1f``, ``1e5``), so that names and text survive the round trip."""


def _represent_str(dumper: yaml.SafeDumper, text: str) -> Any:
    style = None
    if len(text) > 80 and "\n" not in text:
        style = ">"   # a paragraph: folded, as the packaged specs write their descriptions
    elif text == "" or parse_value(text) != text or not isinstance(parse_value(text), str):
        style = "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _represent_str)
