"""patchpilot: image-guided closed-loop control of several patch pipettes."""

__version__ = "0.1.0"
