"""``Analysis.layers``: a pandas DataFrame that keeps the analysis' exact values (tuples of ints
for shapes, tuples of names for inputs) but displays them as a report does: ``1x64x224x224``,
``conv1, conv2``, ``-`` for no inputs. Only the display changes (``repr``, ``_repr_html_``);
indexing, arithmetic and equality see the data as it is. Imported on first use (pandas).
"""
from __future__ import annotations

from typing import Any

import pandas as pd


def display_value(value: Any) -> Any:
    """A cell as shown: an int tuple as ``AxBxC``, a tuple of names joined by commas."""
    if isinstance(value, tuple):
        if not value:
            return "-"
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "x".join(str(v) for v in value)
        return ", ".join(str(v) for v in value)
    return value


class LayerFrame(pd.DataFrame):
    """A DataFrame whose tuple cells display readably (module docstring)."""

    @property
    def _constructor(self):
        return LayerFrame

    def for_display(self) -> pd.DataFrame:
        """A plain DataFrame copy with tuple cells as text (what ``repr`` shows)."""
        plain = pd.DataFrame(self)
        for column in plain.columns:
            if plain[column].dtype == object and plain[column].map(lambda v: isinstance(v, tuple)).any():
                plain[column] = plain[column].map(display_value)
        return plain

    def __repr__(self) -> str:
        return repr(self.for_display())

    def _repr_html_(self) -> str | None:
        return self.for_display()._repr_html_()

    def to_string(self, *args, **kwargs):  # noqa: D102 - DataFrame API
        return self.for_display().to_string(*args, **kwargs)
