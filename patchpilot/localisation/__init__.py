"""patchpilot.localisation."""
