"""patchpilot.panel."""
