"""What the controller needs from the imaging side (implemented by the experiment wiring).

The controller never imports ``acquisition``: images reach it through ``Imaging`` (blocking
snapshots, used by calibration) and through ``Controller.on_frame`` (every live frame, used by
tracking and correction). ``patchpilot.acquisition.imaging.Imaging`` satisfies this protocol.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from patchpilot.types import Frame, TipDetection

__all__ = ["Imaging"]


@runtime_checkable
class Imaging(Protocol):
    """Localised images at a chosen focus.

    ``focus_um`` is the sample z of the focal plane (µm, see ``patchpilot.types``). Setting it
    asks for later frames to be taken there; it returns at once.
    """

    @property
    def focus_um(self) -> float: ...

    @focus_um.setter
    def focus_um(self, value: float) -> None: ...

    def snap(self, focus_um: float | None = None) -> tuple[Frame, list[TipDetection]]:
        """The first frame taken wholly after this call (at ``focus_um`` if given), with the
        tips the localiser found in it.

        Raises
        ------
        ValueError
            ``focus_um`` is not finite or outside the focus travel (nothing moved).
        TimeoutError
            No such frame arrived in time (the implementation's timeout).
        """
        ...
