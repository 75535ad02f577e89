"""The steps as a graph: each step's dependencies (its `needs` and the steps its arguments and
condition refer to), cycles, the execution plan (levels of steps that can run together) and
a Mermaid rendering."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from forge_mcp.errors import InvalidArguments
from forge_mcp.workflows.conditions import Condition
from forge_mcp.workflows.document import WorkflowDocument
from forge_mcp.workflows.references import INPUTS, paths_in

# Mermaid class per step state (workflow_status); the plan's drawing uses none.
STATE_STYLES = {"pending": "fill:#eeeeee,stroke:#999999", "running": "fill:#fff3c4,stroke:#c9a100",
                "succeeded": "fill:#c8f0c8,stroke:#2e8b2e", "failed": "fill:#f6c6c6,stroke:#b22222",
                "skipped": "fill:#e4e4f4,stroke:#7777aa,stroke-dasharray:4", "canceled": "fill:#dddddd,stroke:#555555"}  # fmt: skip


@dataclass(frozen=True)
class StepGraph:
    order: tuple[str, ...]  # the document's order
    needs: Mapping[str, frozenset[str]]  # step -> the steps it waits for (known steps only)
    unknown: Mapping[str, frozenset[str]]  # step -> names it depends on that are not steps

    @classmethod
    def of(cls, document: WorkflowDocument) -> StepGraph:
        needs: dict[str, frozenset[str]] = {}
        unknown: dict[str, frozenset[str]] = {}
        for name, step in document.steps.items():
            named = set(step.needs) | {path.head for _, path in paths_in(step.arguments)} | _condition_heads(step.when)
            named.discard(INPUTS)
            needs[name] = frozenset(n for n in named if n in document.steps and n != name)
            unknown[name] = frozenset(n for n in named if n not in document.steps or n == name)
        return cls(tuple(document.steps), needs, unknown)

    def dependents(self, step: str) -> set[str]:
        """Every step that waits on `step`, directly or not."""
        out: set[str] = set()
        frontier = [step]
        while frontier:
            current = frontier.pop()
            for name, needs in self.needs.items():
                if current in needs and name not in out:
                    out.add(name)
                    frontier.append(name)
        return out

    def drawn_needs(self, step: str) -> list[str]:
        """The dependencies worth an arrow: those not implied by another (a → c is left out when
        a → b → c), in the document's order. Only for a graph without cycles."""
        needs = self.needs[step]
        implied = set().union(*(self.ancestors(n) for n in needs)) if needs else set()
        return sorted((n for n in needs if n not in implied), key=self.order.index)

    def ancestors(self, step: str) -> set[str]:
        out: set[str] = set()
        frontier = list(self.needs[step])
        while frontier:
            current = frontier.pop()
            if current not in out:
                out.add(current)
                frontier.extend(self.needs[current])
        return out

    def cycle(self) -> list[str] | None:
        """One cycle as the steps around it (first == last), or None."""
        visiting: list[str] = []
        done: set[str] = set()

        def visit(name: str) -> list[str] | None:
            if name in visiting:
                return visiting[visiting.index(name):] + [name]
            if name in done:
                return None
            visiting.append(name)
            for need in sorted(self.needs[name]):
                found = visit(need)
                if found:
                    return found
            visiting.pop()
            done.add(name)
            return None

        for name in self.order:
            found = visit(name)
            if found:
                return found
        return None

    def levels(self) -> list[list[str]]:
        """Steps by level: a step's level is one more than its deepest dependency's, so every step
        of a level can run at once. Only for a graph without cycles."""
        level: dict[str, int] = {}

        def depth(name: str) -> int:
            if name not in level:
                level[name] = 1 + max((depth(n) for n in self.needs[name]), default=-1)
            return level[name]

        for name in self.order:
            depth(name)
        out: list[list[str]] = [[] for _ in range(1 + max(level.values(), default=-1))]
        for name in self.order:
            out[level[name]].append(name)
        return out

    def mermaid(self, tools: Mapping[str, str], states: Mapping[str, str] | None = None) -> str:
        """`flowchart TD` with each step as 'name: tool' and an arrow per dependency that no other
        implies; with `states`, each step is coloured by its state."""
        lines = ["flowchart TD"]
        for name in self.order:
            label = f"{name}<br/>{tools.get(name, '?')}" + (f"<br/>{states[name]}" if states and name in states else "")
            lines.append(f'    {name}["{label}"]')
        for name in self.order:
            for need in self.drawn_needs(name) if self.cycle() is None else sorted(self.needs[name], key=self.order.index):
                lines.append(f"    {need} --> {name}")
        if states:
            for state, style in STATE_STYLES.items():
                members = [n for n in self.order if states.get(n) == state]
                if members:
                    lines.append(f"    classDef {state} {style}")
                    lines.append(f"    class {','.join(members)} {state}")
        return "\n".join(lines)


def _condition_heads(when: str | None) -> set[str]:
    if not when:
        return set()
    try:
        return {path.head for path in Condition.parse(when).references()}
    except InvalidArguments:
        return set()  # validation reports the condition itself
