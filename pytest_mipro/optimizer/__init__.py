"""The MIPROv2 optimizer, split along its stages: bootstrap.py, propose.py, search.py."""

from .evaluate import Evaluate, EvaluationResult, ExampleResult
from .mipro import MIPROv2, OptimizationResult
from .search import TrialLog

__all__ = ["Evaluate", "EvaluationResult", "ExampleResult", "MIPROv2", "OptimizationResult", "TrialLog"]
