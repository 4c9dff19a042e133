"""The default adapter: "Label: value" lines, which both chat and base models follow.

Messages for ``ticket -> team`` with one demo::

    system:    <instructions>
    user:      Ticket: my card was charged twice
    assistant: Team: billing
    user:      Ticket: the app crashes on login
               Team:

The last user message ends with the first output label, so a chat model answers with the
value and a base model, reading the flattened transcript, continues the pattern the demos
set. Parsing therefore treats the reply as the text that follows that label.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ParseError
from ..signature import Field, Signature
from .base import Messages

# Starts the system line that lists the output labels of a multi-output signature; the local
# provider reads it to write any label a base model leaves out (lm/local.py).
OUTPUT_ORDER = "Write each output on its own line after its label, in this order: "


class FieldsAdapter:
    """Renders demos as user/assistant pairs of labelled lines; parses labelled replies."""

    def format(
        self, signature: Signature, demos: Sequence[Mapping[str, Any]], inputs: Mapping[str, Any]
    ) -> Messages:
        messages: Messages = [{"role": "system", "content": self.system_text(signature)}]
        for demo in demos:
            messages.extend(self._demo_messages(signature, demo))
        first_output = signature.output_fields[0]
        query = _labelled(signature.input_fields, inputs)
        messages.append({"role": "user", "content": f"{query}\n{first_output.label}"})
        return messages

    def system_text(self, signature: Signature) -> str:
        lines = [signature.instructions.strip()]
        described = [f for f in signature.fields if f.desc]
        if described:
            # "- team: ..." rather than "Team: ...": a base model copies a line shaped like the
            # open output label, so descriptions must not look like answers.
            lines.append("\n".join(f"- {f.name}: {f.desc}" for f in described))
        if len(signature.output_fields) > 1:
            lines.append(OUTPUT_ORDER + ", ".join(f.label for f in signature.output_fields))
        return "\n\n".join(line for line in lines if line)

    def _demo_messages(self, signature: Signature, demo: Mapping[str, Any]) -> Messages:
        outputs = [f for f in signature.output_fields if _has_value(demo, f.name)]
        if not outputs or not all(_has_value(demo, f.name) for f in signature.input_fields):
            return []  # a demo must show every input and at least one output
        return [
            {"role": "user", "content": _labelled(signature.input_fields, demo)},
            {"role": "assistant", "content": _labelled(outputs, demo)},
        ]

    def parse(self, signature: Signature, reply: str) -> dict[str, str]:
        outputs = signature.output_fields
        text = reply.strip()
        if not _starts_with_label(text, outputs[0]):
            text = f"{outputs[0].label} {text}"
        values = _split_labelled(text, outputs, stop_labels=[f.label for f in signature.input_fields])
        missing = [f.name for f in outputs if not values.get(f.name)]
        if missing:
            raise ParseError(f"reply has no value for {', '.join(missing)}", reply=reply)
        return values


def _has_value(record: Mapping[str, object], name: str) -> bool:
    return name in record and record[name] is not None and str(record[name]) != ""


def _labelled(fields: Sequence[Field], record: Mapping[str, object]) -> str:
    return "\n".join(f"{f.label} {_as_text(record[f.name])}" for f in fields if f.name in record)


def _as_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return "; ".join(map(str, value))
    return str(value).strip()


def _starts_with_label(text: str, field: Field) -> bool:
    return text.lower().startswith(field.label.lower())


def _split_labelled(text: str, outputs: Sequence[Field], stop_labels: Sequence[str]) -> dict[str, str]:
    """Find each output label at a line start; a value runs to the next label or the end.

    A line that starts with an input label (the model inventing the next example) ends the reply.
    """
    pattern = _label_pattern(tuple(f.label for f in outputs) + tuple(stop_labels))
    by_label = {f.label.lower(): f.name for f in outputs}
    values: dict[str, str] = {}
    matches = list(pattern.finditer(text))
    for i, match in enumerate(matches):
        name = by_label.get(match.group(1).lower())
        if name is None:
            break  # an input label: the model started another example
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        if name not in values:
            values[name] = text[match.end() : end].strip()
    return values


@functools.lru_cache(maxsize=256)  # one per signature in practice; every reply parsed needs it
def _label_pattern(labels: tuple[str, ...]) -> re.Pattern[str]:
    """Any of ``labels`` at the start of a line (after blanks), case-insensitive."""
    return re.compile(r"^\s*(" + "|".join(re.escape(label) for label in labels) + ")", re.IGNORECASE | re.MULTILINE)
