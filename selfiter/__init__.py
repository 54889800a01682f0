"""selfiter: learned iterative solvers for non-linear least squares (Self-Iterative Regression)."""

__version__ = "0.1.0"
