"""JSON documents: every command's JSON output starts with ``schema`` (``archstat.<kind>/<n>``,
the number raised whenever a key changes meaning or goes away; new keys may appear without
it) and ``archstat_version`` (the version that wrote it)."""
from __future__ import annotations

import json
from typing import Any, Mapping

#: the schema version of each kind of document
SCHEMAS = {"analysis": 1, "compare": 1, "zoo": 1, "layer_types": 1, "conventions": 1, "explain": 1,
           "profile": 1, "sweep": 1, "ops_vs_time": 1, "calibration": 1, "space_rows": 1}


def dump(kind: str, payload: Mapping[str, Any]) -> str:
    """``payload`` as an indented JSON document of ``kind``, schema and version first."""
    from ..version import __version__
    return json.dumps({"schema": f"archstat.{kind}/{SCHEMAS[kind]}", "archstat_version": __version__,
                       **payload},
                      indent=2) + "\n"
