"""Localiser architectures: the paper's coarse-to-fine network and the real-time CNN."""
