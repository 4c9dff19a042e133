"""Stage 2: grounded instruction proposals written by the prompt model.

Each proposal sees (switches permitting) a summary of the training data, a description of
the program and of the predictor's role in it, up to three bootstrapped demos and a random
prompting tip. Better than the reference: descriptions are made once per run instead of
once per proposal, no proposal is thrown away (slot 0 is the original instruction, so
only the new ones are requested), a reply that does not parse loses one candidate
instead of crashing the run, and a predictor's proposals are requested ``num_threads`` at a
time (their random draws are made in order first, so the candidates do not depend on it).
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
import random
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import config
from ..errors import BudgetExceeded
from ..example import Example
from ..lm import LM
from ..program import Module, Predict
from ..signature import InputField, OutputField, Signature
from ._threads import alongside, run_in_threads

log = logging.getLogger("pytest_mipro")

TIPS = {
    "none": "",
    "creative": "Don't be afraid to be creative when creating the new instruction!",
    "simple": "Keep the instruction clear and concise.",
    "description": "Make sure your instruction is very informative and descriptive.",
    "high_stakes": "The instruction should include a high stakes scenario in which the LM must solve the task!",
    "persona": 'Include a persona that is relevant to the task in the instruction (ie. "You are a ...")',
}
DEMOS_IN_CONTEXT = 3
MAX_SUMMARY_BATCHES = 10
COMPLETE_STREAK = 5


class DescribeData(Signature):
    """Given several examples from a dataset, write observations about trends that hold for most or all of them.
    Consider topic, content, syntax and conciseness, and guess what task the dataset is for. Be creative."""

    examples: str = InputField(desc="sample examples from the dataset")
    observations: str = OutputField(desc="a few sentences of observations")


class DescribeMoreData(Signature):
    """Given earlier observations and a new batch of examples, add observations not yet covered.
    If there is nothing new to add, answer COMPLETE."""

    prior_observations: str = InputField(desc="observations so far")
    examples: str = InputField(desc="new examples from the dataset")
    observations: str = OutputField(desc="new observations, or COMPLETE")


class SummarizeObservations(Signature):
    """Summarize the observations about a dataset in two or three sentences."""

    observations: str = InputField(desc="observations about the dataset")
    summary: str = OutputField(desc="a two or three sentence summary")


class DescribeProgram(Signature):
    """Below is the code of a language-model program and an example of its input. Describe what the program does and what task it solves."""

    program_code: str = InputField(desc="the program's code")
    program_example: str = InputField(desc="an example the program runs on")
    program_description: str = OutputField(desc="what the program does, in a few sentences")


class DescribeModule(Signature):
    """Given a program's code and description, describe the role of one of its modules in the program."""

    program_code: str = InputField(desc="the program's code")
    program_description: str = InputField(desc="what the program does")
    module: str = InputField(desc="the module to describe")
    module_description: str = OutputField(desc="the module's role, in one or two sentences")


class ProposeInstruction(Signature):
    """Use the information below to learn about a task a language model performs, then write a new instruction
    that will prompt the language model to perform this task well."""

    dataset_description: str = InputField(desc="a description of the task's data")
    program_code: str = InputField(desc="the code of the program the prompt belongs to")
    program_description: str = InputField(desc="what the program does")
    module: str = InputField(desc="the module the instruction is for")
    module_description: str = InputField(desc="the module's role in the program")
    task_demos: str = InputField(desc="example inputs and outputs of this module")
    basic_instruction: str = InputField(desc="the current instruction")
    tip: str = InputField(desc="a suggestion for writing the instruction")
    proposed_instruction: str = OutputField(desc="the new instruction")


@dataclass
class ProposerSwitches:
    program_aware: bool = True
    data_aware: bool = True
    tip_aware: bool = True
    fewshot_aware: bool = True


@dataclass
class GroundedProposer:
    """Asks ``prompt_model`` for instruction candidates for every predictor of a program."""

    prompt_model: LM
    program: Module
    trainset: Sequence[Example]
    rng: random.Random
    switches: ProposerSwitches = field(default_factory=ProposerSwitches)
    view_data_batch_size: int = 10
    init_temperature: float = 1.0
    num_threads: int = 1
    failed_proposals: int = 0
    _prepared: tuple[dict[str, str], dict[str, str]] | None = field(default=None, init=False, repr=False)
    _program_code: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        # Read here, in the thread that builds the proposer, not in prepare(), which runs on
        # a background thread: inspect.getsource parses the module with ast.parse, and on
        # CPython 3.11 two threads parsing at once can fail with "SystemError: AST
        # constructor recursion depth mismatch" (the parser's depth counter is shared).
        self._program_code = program_source(self.program) if self.switches.program_aware else ""

    def prepare(self) -> None:
        """Ask the prompt model about the data, the program and each predictor's role, once.

        These questions draw no random numbers and do not depend on the demos, so they can
        run while the demos are bootstrapped (a chain of calls that would otherwise wait for
        them); :meth:`propose` asks them itself when they have not been asked.
        """
        if self._prepared is None:
            # Two independent chains of calls: the data (observations, then their summary)
            # and the program (its description, then each module's role, which needs no data).
            if self.num_threads > 1:
                with alongside(functools.partial(self._program_and_roles, self.num_threads - 1)) as program:
                    summary = self._data_description()
                description, roles = program.result()
            else:
                summary, (description, roles) = self._data_description(), self._program_and_roles(1)
            context = {"dataset_description": summary, "program_code": self._program_code, "program_description": description}
            self._prepared = (context, roles)

    def propose(self, demo_sets: dict[str, list[list[Example]]], num_candidates: int) -> dict[str, list[str]]:
        """``num_candidates`` instructions per predictor, the original first; fewer if the budget runs out."""
        named = self.program.named_predictors()
        candidates = {name: [p.instructions] for name, p in named}
        try:
            self.prepare()
            assert self._prepared is not None
            context, roles = self._prepared
            for name, predictor in named:
                sets = demo_sets.get(name, [])
                requests = [
                    self._proposal_request(predictor, context, roles[name], _bootstrapped_demos(sets, i))
                    for i in range(1, num_candidates)
                ]
                for text in self._proposals(requests):
                    if not text:
                        self.failed_proposals += 1
                    elif text not in candidates[name]:
                        candidates[name].append(text)
        except BudgetExceeded:
            log.warning("budget spent while proposing instructions; searching with the candidates so far")
        return candidates

    def _data_description(self) -> str:
        return self.dataset_summary() if self.switches.data_aware else ""

    def _program_and_roles(self, threads: int) -> tuple[str, dict[str, str]]:
        """The program's description, then each predictor's role in it, asked on up to ``threads`` threads."""
        description = self._program_description() if self.switches.program_aware else ""
        named = self.program.named_predictors()
        describe = [functools.partial(self._module_description, predictor, description) for _, predictor in named]
        return description, {name: text for (name, _), text in zip(named, self._in_parallel(describe, threads), strict=True)}

    def _program_description(self) -> str:
        example = _example_text(self.trainset[0]) if self.trainset else ""
        return self._ask(DescribeProgram, program_code=self._program_code, program_example=example)

    def _in_parallel(self, questions: Sequence[Callable[[], str]], threads: int) -> list[str]:
        """Each question's answer, in order; asked at once on up to ``threads`` threads."""
        if threads <= 1 or len(questions) <= 1:
            return [ask() for ask in questions]
        futures = run_in_threads(lambda ask: ask(), questions, min(threads, len(questions)))
        return [future.result() for future in futures]  # a spent budget raises, as it would in order

    def dataset_summary(self) -> str:
        """Observations over batches of ``view_data_batch_size`` examples, condensed to a few sentences."""
        size = max(1, self.view_data_batch_size)
        batches = [self.trainset[i : i + size] for i in range(0, len(self.trainset), size)][:MAX_SUMMARY_BATCHES]
        if not batches:
            return ""
        observations = self._ask(DescribeData, examples=_batch_text(batches[0]))
        complete = 0
        for batch in batches[1:]:
            more = self._ask(DescribeMoreData, prior_observations=observations, examples=_batch_text(batch))
            if "COMPLETE" in more.upper() or not more:
                complete += 1
                if complete >= COMPLETE_STREAK:
                    break
                continue
            observations = f"{observations}\n{more}"
        return self._ask(SummarizeObservations, observations=observations) or observations

    def _module_description(self, predictor: Predict, program_description: str) -> str:
        if not self.switches.program_aware:
            return ""
        return self._ask(
            DescribeModule,
            program_code=self._program_code,
            program_description=program_description,
            module=_module_text(predictor),
        )

    def _proposal_request(
        self, predictor: Predict, context: dict[str, str], role: str, demos: list[Example]
    ) -> tuple[Signature, int, dict[str, str]]:
        """One proposal's signature, sample id and inputs, with its random draws (tip, sample) made now."""
        tip_key = self.rng.choice(sorted(TIPS)) if self.switches.tip_aware else "none"
        sample_id = self.rng.randint(0, 10**9)
        inputs = {
            **context,
            "module": _module_text(predictor) if self.switches.program_aware else "",
            "module_description": role,
            "task_demos": _demos_text(predictor, demos) if self.switches.fewshot_aware else "",
            "basic_instruction": predictor.instructions,
            "tip": TIPS[tip_key],
        }
        return _without_empty_fields(ProposeInstruction(), inputs), sample_id, {k: v for k, v in inputs.items() if v}

    def _proposals(self, requests: list[tuple[Signature, int, dict[str, str]]]) -> Iterator[str]:
        """The proposed instructions ("" for a reply that did not parse), in request order."""
        lm = self.prompt_model.copy(temperature=self.init_temperature)

        def ask(request: tuple[Signature, int, dict[str, str]]) -> str:
            signature, sample_id, inputs = request
            return strip_prefix(self._ask(signature, lm=lm, sample_id=sample_id, **inputs))

        if self.num_threads <= 1 or len(requests) <= 1:
            yield from map(ask, requests)
            return
        futures = run_in_threads(ask, requests, min(self.num_threads, len(requests)))
        spent: BudgetExceeded | None = None
        for future in futures:
            try:
                yield future.result()
            except BudgetExceeded as exc:  # keep every reply that was paid for, then stop
                spent = exc
        if spent is not None:
            raise spent

    def _ask(self, signature: Any, *, lm: LM | None = None, sample_id: int | None = None, **inputs: Any) -> str:
        """One prompt-model call; an unparsable reply gives "" (counted), never an exception."""
        predictor = Predict(signature, lm=lm or self.prompt_model)
        with config.context(sample_id=sample_id):
            prediction = predictor(**inputs)
        if prediction.parse_error:
            log.info("prompt model reply did not parse: %s", prediction.parse_error)
            return ""
        return str(prediction[predictor.signature.output_names[0]]).strip()


def _without_empty_fields(signature: Signature, inputs: dict[str, str]) -> Signature:
    """Drop input fields whose switch is off (their value is empty), as the reference does."""
    fields = tuple(f for f in signature.fields if f.kind == "output" or inputs.get(f.name))
    return Signature(instructions=signature.instructions, fields=fields)


def _bootstrapped_demos(sets: list[list[Example]], start: int) -> list[Example]:
    """Up to three bootstrapped demos: from set ``start`` on, wrapping around."""
    found: list[Example] = []
    for offset in range(len(sets)):
        for demo in sets[(start + offset) % len(sets)]:
            if demo.get("augmented") and len(found) < DEMOS_IN_CONTEXT:
                found.append(demo)
    return found


def program_source(program: Module) -> str:
    """The program's class source plus its signatures; a short description when no source exists."""
    parts = []
    if type(program) not in (Predict,) and not isinstance(program, Predict):
        try:
            parts.append(inspect.getsource(type(program)))
        except (OSError, TypeError):
            pass
    for name, predictor in program.named_predictors():
        parts.append(f"{name} = {_module_text(predictor)}  # instructions: {predictor.instructions!r}")
    return "\n".join(parts)


def _module_text(predictor: Predict) -> str:
    sig = predictor.signature
    return f"{type(predictor).__name__}({', '.join(sig.input_names)}) -> {', '.join(sig.output_names)}"


def _example_text(example: Example) -> str:
    return "\n".join(f"{k}: {v}" for k, v in example.items() if k != "augmented")


def _batch_text(batch: Sequence[Example]) -> str:
    return "\n\n".join(_example_text(ex) for ex in batch)


def _demos_text(predictor: Predict, demos: list[Example]) -> str:
    if not demos:
        return "No task demos provided."
    fields = predictor.signature.fields
    return "\n\n".join("\n".join(f"{f.label} {d[f.name]}" for f in fields if f.name in d) for d in demos)


# A label the model echoes before its answer: "Proposed Instruction:", "**New instruction:**".
# Only labels that name an instruction or prompt are removed: "Rule: ..." or "Important: ..."
# is part of the instruction itself.
_LEADING_LABEL = re.compile(r"^[\s*]*(?:[\w'-]+\s+){0,4}(?:instruction|prompt)s?\s*:[\s*]*", re.IGNORECASE)


def strip_prefix(text: str) -> str:
    """Remove a leading instruction label of at most five words and surrounding quotes."""
    text = text.strip()
    match = _LEADING_LABEL.match(text)
    if match:
        text = text[match.end() :]
    return text.strip().strip('"').strip("'").strip()


def summary_calls(num_train: int, view_data_batch_size: int) -> int:
    """Upper bound on dataset-summary calls for a trainset of ``num_train`` examples."""
    batches = min(math.ceil(num_train / max(1, view_data_batch_size)), MAX_SUMMARY_BATCHES)
    return batches + 1 if batches else 0
