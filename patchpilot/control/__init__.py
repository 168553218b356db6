"""patchpilot.control."""
