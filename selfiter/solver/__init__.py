"""Iterative solvers sharing one loop (Algorithm 2): learned, cascaded, Gauss-Newton."""

from selfiter.solver.base import IterativeSolver, SolveResult
from selfiter.solver.gauss_newton import GaussNewtonSolver
from selfiter.solver.learned import (CascadeSolver, LearnedModel, LearnedSolver, SIRSolver,
                                     make_solver)

__all__ = ["IterativeSolver", "SolveResult", "LearnedModel", "LearnedSolver", "SIRSolver",
           "CascadeSolver", "GaussNewtonSolver", "make_solver"]
