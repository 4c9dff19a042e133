"""Language models: every call goes through litellm (see client.LM)."""

from __future__ import annotations

from .budget import Budget
from .client import LM, Completion, Usage, UsageCounter
from .fake import register_fake_model, unregister_fake_model
from .local import DEFAULT_MODEL as LOCAL_MODEL

__all__ = [
    "LM",
    "LOCAL_MODEL",
    "Budget",
    "Completion",
    "Usage",
    "UsageCounter",
    "default_lm",
    "register_fake_model",
    "unregister_fake_model",
]


_DEFAULT: list[LM] = []  # one shared instance, so its usage counts add up


def default_lm() -> LM:
    """The configured task LM, else the embedded local model when its extra is installed."""
    from .. import config
    from ..errors import ConfigError
    from . import local

    lm = config.current().lm
    if lm is not None:
        return lm
    if local.is_available():
        if not _DEFAULT:
            _DEFAULT.append(LM(LOCAL_MODEL))
        return _DEFAULT[0]
    raise ConfigError("no language model is configured, and " + local.INSTALL_HINT)
