"""A hypothesis strategy that writes the Python source of dynamic `nn.Module`s, as
researchers write them, from the constructs docs/frontend.md lists as supported.

`forward` branches on its data (`.item()`, `bool(t)`, `.any()` / `.all()`, `and` / `or` /
`not`, conditional expressions), loops (`for` over `nn.ModuleList`, `range`, `zip`,
`enumerate`; `while` on data, bounded by a counter), leaves early (`break`, `continue`,
`return` from loops and from inlined helper methods), collects tensors in lists (`append`,
`len`, indexing, `torch.stack` of what is returned), computes on host numbers (`+ - * //`,
`min`, `max`, `abs`, `int`, `float`), updates tensors in place (`+=`, `relu_`), and calls
helper methods, nested functions and lambdas; tensor code also selects rows by data, views
with `-1`, squeezes and reduces over the batch. Every tensor is `[B, 4]` float, so loops carry
one type; a counter bounds every `while`, so every program ends. `passkit.differential`
runs them eagerly and compiled.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

from passkit.python_writer import PythonWriter

RETURNS = ("tensor", "tensor and count", "tensor and number", "dict", "list", "stack", "flag")
"""The structure every `return` of one model gives back."""

TENSOR_EXPRESSIONS = (
    "torch.relu({a})",
    "torch.tanh({a})",
    "self.{fc}({a})",
    "{a} * 0.5 + {b}",
    "{a} - {b}",
    "torch.sigmoid({a}) * {b}",
    "F.softmax({a}, dim=1)",
    "torch.clamp({a}, -1.0, 1.0)",
    "{a} - {a}.mean(dim=1, keepdim=True)",
    "{a}.abs() + 0.1",
    "torch.cat([{a}[:, 1:], {a}[:, :1]], dim=1)",
    "{a}.view(-1, 2).flip(1).reshape({a}.size(0), 4)",
    "{a}.flip(0) * 0.5 + {b}",
    "{a} + {a}.max(dim=0, keepdim=True).values",
    "{a} + {b}[{b}.sum(1) > 0].sum(0, keepdim=True)",
    "{b} + {a}.squeeze()",
    "torch.sort({a}, dim=1).values",
)
"""Every expression is `[B, 4]` float for `[B, 4]` operands at any batch B (`{b} +
{a}.squeeze()` broadcasts back at B = 1); the last ones exercise sizes known only at run
time (selections, `view(-1, 2)`, a squeeze, a reduction that eager refuses at B = 0)."""

CONDITIONS = (
    "{a}.mean().item() > {c}",
    "bool({a}.sum() < {c})",
    "({a} > {c}).any()",
    "({a} < {c}).all()",
    "{a}.max() > {c}",
    "{n} > {c}",
)


@dataclass
class GeneratedModel:
    """The source of a module file defining `Generated(nn.Module)`, and the seed its
    weights are drawn with; printed as its source, so a counterexample reads as Python."""

    source: str
    weight_seed: int

    def __repr__(self) -> str:
        return f"GeneratedModel(weight_seed={self.weight_seed}, source=\n{self.source})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        printer.text(repr(self))


class ModelWriter(PythonWriter):
    """Writes `forward` and its helpers, drawing every choice from hypothesis."""

    def __init__(self, draw):
        super().__init__(draw)
        self.returns = draw(st.sampled_from(RETURNS))

    # ---------------------------------------------------------------- values

    def tensor_expression(self) -> str:
        template = self.draw(st.sampled_from(TENSOR_EXPRESSIONS))
        return template.format(a=self.pick("t"), b=self.pick("t"), fc=self.linear())

    def condition(self) -> str:
        """A data-dependent condition, or (1 in 6) a static one that folds."""
        kind = self.draw(st.sampled_from(["data", "data", "data", "and", "not", "static"]))
        if kind == "static":
            return self.draw(st.sampled_from(["self.flag", "not self.training", "x.shape[0] == 2"]))
        if kind == "and":
            joiner = self.draw(st.sampled_from(["and", "or"]))
            return f"{self.data_condition()} {joiner} {self.data_condition()}"
        if kind == "not":
            return f"not ({self.data_condition()})"
        return self.data_condition()

    def data_condition(self) -> str:
        template = self.draw(st.sampled_from(CONDITIONS))
        if "{n}" in template and not self.visible("f"):
            template = CONDITIONS[0]
        threshold = self.draw(st.sampled_from(["0.0", "0.2", "-0.3", "0.5", "1.0"]))
        return template.format(
            a=self.pick("t"), n=self.pick("f") if "{n}" in template else "", c=threshold
        )

    # ------------------------------------------------------------ statements

    def statement(self, depth: int, loop: str | None) -> None:
        kinds = ["tensor", "tensor", "inplace", "number", "count", "list", "helper", "lambda"]
        if depth < 2:
            kinds += ["if", "if", "ifexp", "for", "while"]
        if loop is not None:
            kinds += ["exit"]
        kind = self.draw(st.sampled_from(kinds))
        getattr(self, "write_" + kind)(depth, loop)

    def block(self, depth: int, loop: str | None, low: int = 1, high: int = 3) -> None:
        for _ in range(self.draw(st.integers(low, high))):
            self.statement(depth, loop)

    def write_tensor(self, depth: int, loop: str | None) -> None:
        self.assign("t", self.tensor_expression())

    def write_inplace(self, depth: int, loop: str | None) -> None:
        """An update in place of a tensor computed right here (no alias of an input)."""
        name = self.assign("t", self.tensor_expression(), fresh=True)
        if self.draw(st.booleans()):
            self.emit(f"{name} += {self.pick('t')}")
        else:
            self.emit(f"{name}.relu_()")

    def write_number(self, depth: int, loop: str | None) -> None:
        """A host float from `.item()`, or arithmetic on one."""
        if self.visible("f") and self.draw(st.booleans()):
            a = self.pick("f")
            expression = self.draw(
                st.sampled_from(
                    [f"{a} * 0.5 + 0.1", f"max({a}, 0.1)", f"abs({a}) - 0.2", f"min({a}, 1.0)"]
                )
            )
        else:
            expression = f"{self.pick('t')}.mean().item()"
        self.assign("f", expression)

    def write_count(self, depth: int, loop: str | None) -> None:
        counter = self.counter()
        step = self.draw(st.sampled_from(["1", "2", "int({t}.sum() > 0)"])).format(t=self.pick("t"))
        self.emit(f"{counter} += {step}")

    def write_list(self, depth: int, loop: str | None) -> None:
        """Collected tensors: a list that starts with one item, appended to here."""
        self.emit(f"{self.collection()}.append({self.pick('t')})")

    def write_helper(self, depth: int, loop: str | None) -> None:
        self.assign("t", f"self.{self.helper()}({self.pick('t')})")

    def write_lambda(self, depth: int, loop: str | None) -> None:
        if self.draw(st.booleans()):
            self.emit("scale = lambda v: torch.tanh(v) * 0.5")
            self.assign("t", f"scale({self.pick('t')})")
            return
        self.emit("def shift(v):")
        self.emit("    return v - v.mean()")
        self.assign("t", f"shift({self.pick('t')})")

    def write_if(self, depth: int, loop: str | None) -> None:
        self.emit(f"if {self.condition()}:")
        with self.indented():
            self.block(depth + 1, loop)
        if self.draw(st.booleans()):
            self.emit(f"elif {self.condition()}:")
            with self.indented():
                self.block(depth + 1, loop)
        if self.draw(st.booleans()):
            self.emit("else:")
            with self.indented():
                self.block(depth + 1, loop)

    def write_ifexp(self, depth: int, loop: str | None) -> None:
        a, b = self.tensor_expression(), self.tensor_expression()
        self.assign("t", f"{a} if {self.condition()} else {b}")

    def write_for(self, depth: int, loop: str | None) -> None:
        kind = self.draw(st.sampled_from(["modules", "range", "zip", "enumerate"]))
        blocks, name = self.module_list(), self.fresh("layer")
        header = {
            "modules": f"for {name} in self.{blocks}:",
            "range": f"for i in range({self.draw(st.integers(1, 3))}):",
            "zip": f"for {name}, weight in zip(self.{blocks}, [0.5, 1.0, 1.5]):",
            "enumerate": f"for i, {name} in enumerate(self.{blocks}):",
        }[kind]
        self.emit(header)
        with self.indented():
            if kind != "range":
                scale = " * weight" if kind == "zip" else ""
                self.assign("t", f"{name}({self.pick('t')}){scale}", fresh=False)
            self.block(depth + 1, "for")

    def write_while(self, depth: int, loop: str | None) -> None:
        steps = self.fresh("steps")
        self.emit(f"{steps} = 0")
        limit = self.draw(st.integers(1, 3))
        if self.draw(st.booleans()):
            self.emit(f"while {self.data_condition()} and {steps} < {limit}:")
        else:
            self.emit("while True:")
            with self.indented():
                self.emit(f"if {steps} >= {limit} or {self.data_condition()}:")
                self.emit("    break")
        with self.indented():
            self.emit(f"{steps} += 1")
            self.block(depth + 1, "while")

    def write_exit(self, depth: int, loop: str | None) -> None:
        """A data-dependent `break`, `continue` or `return` inside a loop."""
        kind = self.draw(st.sampled_from(["break", "continue", "return"]))
        self.emit(f"if {self.data_condition()}:")
        with self.indented():
            self.emit(self.return_statement() if kind == "return" else kind)

    # ----------------------------------------------------------------- results

    def return_statement(self) -> str:
        t = self.pick("t")
        return (
            "return "
            + {
                "tensor": t,
                "tensor and count": f"{t}, {self.counter()}",
                "tensor and number": f"{t}, {self.pick('f') if self.visible('f') else '0.0'}",
                "dict": f'{{"out": {t}, "steps": {self.counter()}}}',
                "list": f"[{t}, {self.pick('t')}]",
                "stack": f"torch.stack({self.collection()}, dim=0)",
                "flag": f"{t}, {self.counter()} > 1",
            }[self.returns]
        )

    def forward(self) -> list[str]:
        self.lines, self.indent = [], 1
        self.scopes = [{"t": ["x"]}]
        self.emit("def forward(self, x):")
        with self.indented():
            self.prelude()
            self.block(0, None, 1, 4)
            self.emit(self.return_statement())
        return self.lines


@st.composite
def torch_models(draw) -> GeneratedModel:
    """A random dynamic `nn.Module` (see the module docstring) and its weight seed."""
    writer = ModelWriter(draw)
    forward = writer.forward()
    return GeneratedModel(writer.module_source(forward), draw(st.integers(0, 2**16)))
