"""entraclaw: act as a Microsoft Entra Agent User with a key that never leaves the machine."""

from entraclaw._version import __version__

__all__ = ["__version__"]
