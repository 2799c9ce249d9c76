"""mailflow: a procurement network's Interest Groups, run by email."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mailflow")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"

__all__ = ["__version__"]
