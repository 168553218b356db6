"""patchpilot.acquisition."""
