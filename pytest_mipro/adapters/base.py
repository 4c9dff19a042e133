"""The adapter contract: signature + demos + inputs -> chat messages; reply text -> fields."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..signature import Signature

Messages = list[dict[str, Any]]


class Adapter(Protocol):
    """Turns one prediction request into messages and the model's reply back into fields.

    ``parse`` raises :class:`pytest_mipro.errors.ParseError` when the reply lacks an output
    field; the caller turns that into a failed prediction, never a crash.
    """

    def format(
        self, signature: Signature, demos: Sequence[Mapping[str, Any]], inputs: Mapping[str, Any]
    ) -> Messages: ...

    def parse(self, signature: Signature, reply: str) -> dict[str, str]: ...
