"""Scientifica PatchStar / MicroStar controllers over a serial port.

``_wire.py`` speaks the protocol over a ``Transport`` (pyserial by default), ``driver.py`` is
the ``Manipulator``, ``simulator.py`` a controller on a pseudo-terminal for tests and benches.
"""

from patchpilot.hardware.scientifica._wire import (
    ScientificaDisconnected,
    ScientificaErrorReply,
    ScientificaGarbled,
    ScientificaTimeout,
    ScientificaWire,
    SerialTransport,
    Transport,
    connect,
)
from patchpilot.hardware.scientifica.driver import ScientificaManipulator

__all__ = [
    "ScientificaDisconnected",
    "ScientificaErrorReply",
    "ScientificaGarbled",
    "ScientificaManipulator",
    "ScientificaTimeout",
    "ScientificaWire",
    "SerialTransport",
    "Transport",
    "connect",
]
