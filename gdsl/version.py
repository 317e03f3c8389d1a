"""The version of gdsl (one place: the package, the command line and pyproject read it)."""

__version__ = "0.1.0"
