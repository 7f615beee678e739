"""The version of archstat: its one home (pyproject.toml reads it, the package and the JSON
documents report it)."""

__version__ = "0.1.0"
