"""The plumbing of generated `nn.Module` source: indentation, block scopes of visible
variables, the submodules and helper methods a `forward` uses, and the file around it.

Python scopes are whole functions, but a name first assigned inside a block is visible
here only inside that block, so nothing reads a variable that some path did not assign.
"""

from __future__ import annotations

import abc
from contextlib import contextmanager

from hypothesis import strategies as st

WIDTH = 4
HELPER_LIMIT = 2
LINEAR_LIMIT = 3
COUNTER, COLLECTION = "count", "outs"


class PythonWriter(abc.ABC):
    """The writer's state; `tensor_expression` and `data_condition` are the model's."""

    def __init__(self, draw):
        self.draw = draw
        self.lines: list[str] = []
        self.indent = 0
        self.scopes: list[dict[str, list[str]]] = []
        self.next_id = 0
        self.linears: list[str] = []
        self.module_lists: list[str] = []
        self.helpers: list[list[str]] = []
        self.flag = draw(st.booleans())

    def fresh(self, prefix: str = "v") -> str:
        self.next_id += 1
        return f"{prefix}{self.next_id}"

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.indent + line)

    @contextmanager
    def indented(self):
        self.indent += 1
        self.scopes.append({})
        try:
            yield
        finally:
            self.scopes.pop()
            self.indent -= 1

    def visible(self, kind: str) -> list[str]:
        return [name for scope in self.scopes for name in scope.get(kind, [])]

    def pick(self, kind: str) -> str:
        return self.draw(st.sampled_from(self.visible(kind)))

    def assign(self, kind: str, expression: str, *, fresh: bool | None = None) -> str:
        """`name = expression`: a visible variable of `kind` (its value changes on this
        path) or, when `fresh` or drawn so, a new one visible in this block."""
        names = self.visible(kind)
        if fresh is None:
            fresh = not names or self.draw(st.booleans())
        if fresh:
            name = self.fresh()
            self.scopes[-1].setdefault(kind, []).append(name)
        else:
            name = self.draw(st.sampled_from(names))
        self.emit(f"{name} = {expression}")
        return name

    def prelude(self) -> None:
        """The variables every path has: a tensor, the counter, the collection."""
        self.emit(f"h = self.{self.linear()}(x)")
        self.emit(f"{COUNTER} = 0")
        self.emit(f"{COLLECTION} = [h]")
        self.scopes[-1]["t"] = ["x", "h"]

    def counter(self) -> str:
        return COUNTER

    def collection(self) -> str:
        return COLLECTION

    # --------------------------------------------------------- submodules

    def linear(self) -> str:
        if self.linears and (len(self.linears) == LINEAR_LIMIT or self.draw(st.booleans())):
            return self.draw(st.sampled_from(self.linears))
        self.linears.append(f"fc{len(self.linears)}")
        return self.linears[-1]

    def module_list(self) -> str:
        if self.module_lists and self.draw(st.booleans()):
            return self.draw(st.sampled_from(self.module_lists))
        self.module_lists.append(f"blocks{len(self.module_lists)}")
        return self.module_lists[-1]

    def helper(self) -> str:
        """A helper method of one tensor (inlined by the frontend); it may return early."""
        if self.helpers and (len(self.helpers) == HELPER_LIMIT or self.draw(st.booleans())):
            return f"helper{self.draw(st.integers(0, len(self.helpers) - 1))}"
        saved = (self.lines, self.indent, self.scopes)
        name = f"helper{len(self.helpers)}"
        self.lines, self.indent, self.scopes = [], 1, [{"t": ["v"]}]
        self.emit(f"def {name}(self, v):")
        with self.indented():
            self.assign("t", self.tensor_expression())
            if self.draw(st.booleans()):
                self.emit(f"if {self.data_condition()}:")
                self.emit(f"    return {self.tensor_expression()}")
            self.emit(f"return {self.tensor_expression()}")
        self.helpers.append(self.lines)
        self.lines, self.indent, self.scopes = saved
        return name

    def module_source(self, forward: list[str]) -> str:
        init = [
            "    def __init__(self):",
            "        super().__init__()",
            f"        self.flag = {self.flag}",
            *(f"        self.{name} = nn.Linear({WIDTH}, {WIDTH})" for name in self.linears),
            *(
                f"        self.{name} = nn.ModuleList(nn.Linear({WIDTH}, {WIDTH}) for _ in range(3))"
                for name in self.module_lists
            ),
        ]
        methods = [init, *self.helpers, forward]
        body = "\n\n".join("\n".join(lines) for lines in methods)
        return (
            "import torch\nimport torch.nn.functional as F\nfrom torch import nn\n\n\n"
            f"class Generated(nn.Module):\n{body}\n"
        )

    @abc.abstractmethod
    def tensor_expression(self) -> str:
        """An expression computing a `[B, 4]` tensor from visible values."""

    @abc.abstractmethod
    def data_condition(self) -> str:
        """A condition on tensor data."""
