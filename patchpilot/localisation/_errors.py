"""The one exception type of the localiser: bad frames, bad checkpoints, bad presets."""

from __future__ import annotations

__all__ = ["LocaliserError"]


class LocaliserError(ValueError):
    """A frame, pixel size, preset or checkpoint the localiser cannot use.

    The message names what was wrong (the argument, the file, the key) and why.
    """
