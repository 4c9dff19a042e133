"""Signatures: the named input and output fields of one prompt, plus its instructions.

Two forms, as in DSPy:

    Signature("question, context -> answer")

    class Triage(Signature):
        \"\"\"Route the ticket to billing, technical or account.\"\"\"
        ticket: str = InputField(desc="the customer's message")
        team: str = OutputField(desc="billing, technical or account")
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from .errors import SignatureError

_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Field:
    """One input or output field of a signature."""

    name: str
    kind: str  # "input" or "output"
    desc: str = ""
    prefix: str = ""

    @property
    def label(self) -> str:
        """The label that precedes the field's value in a prompt ("Ticket:")."""
        return self.prefix or _default_label(self.name)


@functools.lru_cache(maxsize=1024)  # every prompt rendered and every reply parsed asks for each field's label
def _default_label(name: str) -> str:
    words = name.replace("_", " ").strip()
    return words[:1].upper() + words[1:] + ":"


@dataclass(frozen=True)
class _FieldDecl:
    kind: str
    desc: str = ""
    prefix: str = ""


def InputField(*, desc: str = "", prefix: str = "") -> Any:  # named like dspy.InputField
    """Declare an input field in a class-form signature."""
    return _FieldDecl("input", desc, prefix)


def OutputField(*, desc: str = "", prefix: str = "") -> Any:  # named like dspy.OutputField
    """Declare an output field in a class-form signature."""
    return _FieldDecl("output", desc, prefix)


class Signature:
    """Input and output fields plus instructions; immutable once built.

    ``Signature("a, b -> c", instructions="...")`` parses the string form. Subclasses
    declare fields with :func:`InputField` / :func:`OutputField` and use the docstring
    as the instructions; instantiate them with no arguments.
    """

    _class_fields: ClassVar[tuple[Field, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields = []
        for name, value in list(vars(cls).items()):
            if isinstance(value, _FieldDecl):
                fields.append(Field(name, value.kind, value.desc, value.prefix))
                delattr(cls, name)
        if fields:
            # A subclass extends the fields it inherits (a redeclared name replaces the old one).
            names = {f.name for f in fields}
            inherited = tuple(f for f in cls._class_fields if f.name not in names)
            cls._class_fields = inherited + tuple(fields)

    def __init__(
        self,
        spec: str | None = None,
        instructions: str | None = None,
        *,
        fields: tuple[Field, ...] | None = None,
    ) -> None:
        if fields is None:
            fields = _parse_spec(spec) if spec is not None else type(self)._class_fields
        if spec is None and not fields:
            raise SignatureError(
                f"{type(self).__name__} declares no fields: pass a string such as "
                "'question -> answer' or declare InputField/OutputField attributes"
            )
        _check_fields(fields, spec)
        self.fields: tuple[Field, ...] = tuple(fields)
        if instructions is None:
            doc = type(self).__doc__ if type(self) is not Signature else None
            instructions = _clean_doc(doc) if doc else _default_instructions(self.fields)
        self.instructions: str = instructions

    @property
    def input_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.kind == "input")

    @property
    def output_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.kind == "output")

    @property
    def input_names(self) -> list[str]:
        return [f.name for f in self.input_fields]

    @property
    def output_names(self) -> list[str]:
        return [f.name for f in self.output_fields]

    def with_instructions(self, instructions: str) -> Signature:
        return Signature(instructions=instructions, fields=self.fields)

    def prepend_output(self, name: str, desc: str = "", prefix: str = "") -> Signature:
        """A copy with a new output field placed before the existing outputs."""
        new = Field(name, "output", desc, prefix)
        inputs, outputs = self.input_fields, self.output_fields
        return Signature(instructions=self.instructions, fields=inputs + (new,) + outputs)

    def with_field(self, name: str, **changes: Any) -> Signature:
        fields = tuple(replace(f, **changes) if f.name == name else f for f in self.fields)
        return Signature(instructions=self.instructions, fields=fields)

    def spec(self) -> str:
        """The string form, e.g. ``"question, context -> answer"``."""
        return f"{', '.join(self.input_names)} -> {', '.join(self.output_names)}"

    def to_dict(self) -> dict[str, Any]:
        """Data form for lockfiles and saved programs."""
        return {
            "spec": self.spec(),
            "fields": [
                {k: v for k, v in (("name", f.name), ("kind", f.kind), ("desc", f.desc), ("prefix", f.prefix)) if v}
                for f in self.fields
            ],
        }

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Signature) and (self.fields, self.instructions) == (
            other.fields,
            other.instructions,
        )

    def __hash__(self) -> int:
        return hash((self.fields, self.instructions))

    def __repr__(self) -> str:
        return f"Signature({self.spec()!r}, instructions={self.instructions!r})"


def ensure_signature(value: str | Signature | type[Signature], instructions: str | None = None) -> Signature:
    """Accept the string form, a Signature subclass or an instance."""
    if isinstance(value, Signature):
        return value.with_instructions(instructions) if instructions is not None else value
    if isinstance(value, type) and issubclass(value, Signature):
        sig = value()
        return sig.with_instructions(instructions) if instructions is not None else sig
    if isinstance(value, str):
        return Signature(value, instructions)
    raise SignatureError(
        f"signature must be a string like 'question -> answer' or a Signature class, got {type(value).__name__}"
    )


def _parse_spec(spec: str) -> tuple[Field, ...]:
    if spec.count("->") != 1:
        raise SignatureError(f"signature {spec!r} must contain exactly one '->' between inputs and outputs")
    left, right = spec.split("->")
    inputs = [n.strip() for n in left.split(",") if n.strip()]
    outputs = [n.strip() for n in right.split(",") if n.strip()]
    if not outputs:
        raise SignatureError(f"signature {spec!r} has no output field after '->'")
    for name in inputs + outputs:
        name = name.split(":")[0].strip()
        if not _FIELD_NAME.match(name):
            raise SignatureError(f"signature {spec!r}: {name!r} is not a valid field name")
    return tuple(Field(_bare(n), "input") for n in inputs) + tuple(Field(_bare(n), "output") for n in outputs)


def _bare(name: str) -> str:
    """The field name of ``name`` or ``name: type`` (a type is accepted and ignored)."""
    return name.split(":")[0].strip()


def _check_fields(fields: tuple[Field, ...], spec: str | None) -> None:
    names = [f.name for f in fields]
    dupes = sorted({n for n in names if names.count(n) > 1})
    where = f"signature {spec!r}" if spec else "signature"
    if dupes:
        raise SignatureError(f"{where} repeats the field(s) {', '.join(dupes)}")
    if not any(f.kind == "output" for f in fields):
        raise SignatureError(f"{where} has no output field")


def _default_instructions(fields: tuple[Field, ...]) -> str:
    ins = ", ".join(f"`{f.name}`" for f in fields if f.kind == "input")
    outs = ", ".join(f"`{f.name}`" for f in fields if f.kind == "output")
    return f"Given the fields {ins}, produce the fields {outs}." if ins else f"Produce the fields {outs}."


def _clean_doc(doc: str) -> str:
    lines = [line.strip() for line in doc.strip().splitlines()]
    return "\n".join(lines)
