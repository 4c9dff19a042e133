"""pytest-mipro: optimize LLM prompts with MIPROv2, lock the winners, gate CI on them.

Importing this package is cheap: litellm and optuna load on first use.
"""

from __future__ import annotations

from .config import configure, context
from .data import load_examples
from .errors import (
    BudgetExceeded,
    ConfigError,
    LMError,
    LockfileError,
    MiproError,
    ParseError,
    SignatureError,
)
from .example import Example, Prediction
from .lm import LM, Budget, Usage, UsageCounter, register_fake_model
from .optimizer import MIPROv2
from .optimizer.evaluate import Evaluate, EvaluationResult, ExampleResult
from .program import ChainOfThought, Module, Predict
from .signature import InputField, OutputField, Signature

__version__ = "0.1.0"

__all__ = [
    "LM",
    "Budget",
    "BudgetExceeded",
    "ChainOfThought",
    "ConfigError",
    "Evaluate",
    "EvaluationResult",
    "Example",
    "ExampleResult",
    "InputField",
    "LMError",
    "LockfileError",
    "MIPROv2",
    "MiproError",
    "Module",
    "OutputField",
    "ParseError",
    "Predict",
    "Prediction",
    "Signature",
    "SignatureError",
    "Usage",
    "UsageCounter",
    "configure",
    "context",
    "load_examples",
    "register_fake_model",
]
