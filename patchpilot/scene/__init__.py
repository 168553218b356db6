"""The two-photon scene renderer (shared by the simulated camera and synthetic training data)."""
