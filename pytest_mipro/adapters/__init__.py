"""Adapters render prompts into messages and parse replies into output fields."""

from .base import Adapter
from .fields import FieldsAdapter

__all__ = ["Adapter", "FieldsAdapter"]
