"""Foreign models in: ONNX files and PyTorch modules, translated into archstat specs.

An importer reads a foreign graph and returns an :class:`Imported`: a spec in memory (plain
data, exactly what a YAML spec holds, so that ``archstat.load(imported.spec)`` builds the same
Model as any spec, and ``archstat.save`` writes it out readably) and the weights it found, in
the registry's layouts. Importers stop there: after ``load``, a model from ONNX or PyTorch is
the same object as one from YAML (DESIGN.md).

The foreign libraries (``onnx``, ``torch``) are optional: each importer imports its library
when it is called, and says how to install it when it is missing.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: file suffixes an importer reads: (module of archstat.importers, its reading function)
SUFFIXES = {".onnx": ("onnx_import", "read_onnx")}


@dataclass
class Imported:
    """What an importer returns.

    ``spec``: an archstat spec as plain data (``name``, ``source``, ``notes``, ``input`` as
    ``[C, H, W]``, ``layers``: dicts with ``name``, ``type``, the type's fields and ``inputs``).
    Layer names are the foreign graph's (ONNX node names, PyTorch module paths).
    ``weights``: ``{layer name: {parameter or buffer name: ndarray}}`` in the registry's
    shapes (conv ``[C_out, C_in/groups, kH, kW]``, linear ``[out, in]``, batch norm's
    ``weight``, ``bias``, ``running_mean``, ``running_var``).
    ``notes``: what the import did that a reader of the numbers should know (batch norm folded
    into the convolutions by the exporter, constants folded, layers not counted), one sentence
    each; they end up in the spec's ``notes``.
    ``uncounted``: the foreign nodes passed through without counts (``allow_unknown``), as
    ``{"name", "op", "inputs", "output_shape"}`` dicts.
    ``names``: ``{layer name: the foreign graph's name}`` where the two differ (an ONNX node
    name with characters a layer name cannot hold; a module path renamed).
    """

    spec: dict[str, Any]
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    uncounted: list[dict[str, Any]] = field(default_factory=list)
    names: dict[str, str] = field(default_factory=dict)


def importer_for(path: str) -> tuple[str, str] | None:
    """The importer (module, function) for a file path, by its suffix; None for a spec file."""
    from pathlib import Path
    return SUFFIXES.get(Path(path).suffix.lower())


def read_file(path: Any, *, input_shape: tuple[int, ...] | None = None, allow_unknown: bool = False) -> Imported:
    """Read a foreign model file with the importer for its suffix."""
    import importlib
    from pathlib import Path

    from ..errors import ArchstatError, did_you_mean

    found = importer_for(str(path))
    if found is None:  # pragma: no cover - callers ask importer_for first
        raise ArchstatError("not a model file archstat imports", file=str(path),
                            hint=f"archstat imports {', '.join(SUFFIXES)} files")
    path = Path(path)
    if not path.is_file():
        if path.exists():
            raise ArchstatError("not a regular file", file=str(path))
        try:
            nearby = [p.name for p in path.parent.iterdir() if p.suffix.lower() == path.suffix.lower()]
        except OSError:
            nearby = []
        raise ArchstatError("no such file", file=str(path), hint=did_you_mean(path.name, nearby))
    module, function = found
    reader = getattr(importlib.import_module(f"{__name__}.{module}"), function)
    return reader(path, input_shape=input_shape, allow_unknown=allow_unknown)
