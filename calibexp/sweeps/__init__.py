"""Sweeps: a grid of configs, trained by any number of workers through the run registry."""

from calibexp.sweeps.spec import SweepSpec, load_sweep

__all__ = ["SweepSpec", "load_sweep"]
