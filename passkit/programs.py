"""A hypothesis strategy for random, verified, terminating `dy` programs.

Programs exercise what passes must preserve: nested `dy.if` / `dy.switch` / `dy.for` /
`dy.while` with data-dependent conditions (`dy.item` of tensor reductions compared with
`arith`), loop-carried tensors and scalars, `dy.break` / `dy.continue` / `dy.return` at
every depth, straight-line torch ops spelled as torch-mlir's generic form prints them
(float and integer tensors, a static or dynamic `?` batch dimension), lists, `dy.param`
weights, `dy.graph` sub-graphs with `dy.call`s, and helper `dy.func`s. Constant
conditions (work for fold-constant-branches) and unused values (work for dce) appear by
chance; `ProgramShape` tunes all of it.

Every choice is one hypothesis draw, so a failing program shrinks: fewer statements,
shallower nesting, earlier alternatives (`relu` before `mm`, `dy.yield` before exits).
Every `dy.while` carries a counter that its do-region increments before any exit and that
its condition bounds, and every `dy.for` has a small upper bound, so programs terminate.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st
from xdsl.dialects.builtin import ModuleOp

from ir.program import parse_and_verify
from passkit.inputs import inputs_for, params_for
from passkit.shape import FORCED_CONSTRUCTS, KEPT_BY_SWARM, SWARM_FACTORS, ProgramShape
from passkit.straight_line import StraightLine

RESULTS = ("T", "i64")
"""What `@forward` and the helper functions return."""


@dataclass(frozen=True)
class _Loop:
    """The loop that a `dy.break` / `dy.continue` in the current region would target."""

    carried: tuple[str, ...]
    results: tuple[str, ...]
    counter_next: str | None = None


def weighted_choice(draw, weights: dict[str, int], allowed) -> str:
    """One of the allowed kinds, each as often as its weight says (earlier kinds are
    what hypothesis shrinks towards)."""
    kinds = [kind for kind, weight in weights.items() if kind in allowed for _ in range(weight)]
    if not kinds:
        raise ValueError(f"no kind of {sorted(allowed)} has a positive weight")
    return draw(st.sampled_from(kinds))


class ProgramWriter(StraightLine):
    """Writes one module's text while drawing every choice from hypothesis."""

    def __init__(self, draw, shape: ProgramShape, dynamic_batch: bool):
        super().__init__(draw, dynamic_batch)
        self.shape = shape
        self.helpers: list[str] = []
        self.statement_weights = self._weights(shape.statements)
        self.exit_weights = self._weights(shape.exits)

    def _weights(self, weights) -> dict[str, int]:
        if not self.shape.swarm:
            return dict(weights)
        return {
            kind: weight
            * (1 if kind in KEPT_BY_SWARM else self.draw(st.sampled_from(SWARM_FACTORS)))
            for kind, weight in weights.items()
        }

    # -------------------------------------------------------------- control flow

    def statement(self, depth: int, loop: _Loop | None, loops: int) -> None:
        allowed = {"tensor", "scalar", "int", "float", "cond", "list", "call", "integer tensor"}
        if depth < self.shape.max_depth:
            allowed |= {"if", "switch"}
            if loops < self.shape.max_loop_nesting:
                allowed |= {"for", "while"}
        kind = weighted_choice(self.draw, self.statement_weights, allowed)
        self.construct(kind, depth, loop, loops)

    def construct(self, kind: str, depth: int, loop: _Loop | None, loops: int) -> None:
        """Write one statement of `kind`: a statement kind of `ProgramShape`, or a construct
        that provides a required feature (`shape.FORCED_CONSTRUCTS`)."""
        if kind in ("if", "constant if", "return"):
            forced_exit = "return" if kind == "return" else None
            self.if_op(depth, loop, loops, constant=kind == "constant if", then_exit=forced_exit)
        elif kind == "switch":
            self.switch_op(depth, loop, loops)
        elif kind in ("for", "break", "continue"):
            self.for_op(depth, loops, inner_exit=None if kind == "for" else kind)
        elif kind == "while":
            self.while_op(depth, loops)
        elif kind == "call":
            self.call()
        elif kind in ("graph call", "func call"):
            self.call(kind.split()[0])
        elif kind.startswith("list"):
            self.list_ops(kind.removeprefix("list").strip() or None)
        else:
            self.straight_line(kind)

    def body(
        self,
        depth: int,
        loop: _Loop | None,
        loops: int,
        yields: tuple[str, ...],
        fallthrough: str = "dy.yield",
        forced_exit: str | None = None,
        insert=None,
        likely_exit: bool = False,
    ) -> None:
        """Statements (with `insert()` called at a drawn place among them), then a
        terminator: `fallthrough` of `yields`, or an exit; with `likely_exit`, an exit
        two times in three (see `if_op`)."""
        low, high = (1, 4) if depth == 0 else (0, 3 if depth < 2 else 2)
        count = self.draw(st.integers(low, high))
        place = self.draw(st.integers(0, count)) if insert is not None else -1
        for index in range(count + 1):
            if index == place:
                insert()
            if index < count:
                self.statement(depth, loop, loops)
        allowed = {"yield", "return"} | ({"break", "continue"} if loop is not None else set())
        weights = self.exit_weights
        if likely_exit:
            weights = {kind: 1 if kind == "yield" else 2 * max(w, 1) for kind, w in weights.items()}
        exit_kind = forced_exit or weighted_choice(self.draw, weights, allowed)
        if exit_kind == "yield":
            self.terminator(fallthrough, yields, loop)
        elif exit_kind == "return":
            if depth > 0:
                self.features.add("early dy.return")
            self.terminator("dy.return", RESULTS, loop)
        elif exit_kind == "break":
            self.terminator("dy.break", loop.results, loop)
        else:
            self.terminator("dy.continue", loop.carried, loop)

    def terminator(self, op: str, kinds: tuple[str, ...], loop: _Loop | None) -> None:
        values = [loop.counter_next if kind == "ctr" else self.pick(kind) for kind in kinds]
        if values:
            types = ", ".join(self.type_of(kind) for kind in kinds)
            self.emit(f"{op} {', '.join(values)} : {types}")
        else:
            self.emit(op)

    def _result_kinds(self) -> tuple[str, ...]:
        return self.draw(st.sampled_from([(), ("T",), ("i64",), ("T", "i64"), ("f64",)]))

    def _bind_results(self, name: str, kinds: tuple[str, ...]) -> str:
        """The `%r` / `%r:N` spelling of an op's results; records them in the scope."""
        if len(kinds) == 1:
            self.define(kinds[0], name)
            return f"{name} = "
        for index, kind in enumerate(kinds):
            self.define("i64" if kind == "ctr" else kind, f"{name}#{index}")
        return f"{name}:{len(kinds)} = " if kinds else ""

    def _arrow(self, kinds: tuple[str, ...]) -> str:
        return f" -> ({', '.join(self.type_of(k) for k in kinds)})" if kinds else ""

    def if_op(
        self,
        depth: int,
        loop: _Loop | None,
        loops: int,
        constant: bool = False,
        then_exit: str | None = None,
    ) -> None:
        """A `dy.if` on a data-dependent condition, or on a constant one (1 in 4). The arms
        of a constant branch exit more often: folding it is where an exit has to move to
        the enclosing block, the case passes get wrong."""
        if constant or self.draw(st.integers(0, 3)) == 0:
            self.features.add("constant condition")
            cond = self.fresh()
            self.emit(f"{cond} = arith.constant {self.draw(st.sampled_from(['true', 'false']))}")
            constant = True
        else:
            cond = self.pick("i1")
            constant = cond in self.constant_conditions
            if constant:
                self.features.add("constant condition")
        kinds = self._result_kinds()
        name = self.fresh()
        head = len(self.lines)
        self.emit(f"dy.if {cond}{self._arrow(kinds)} {{")
        with self.region():
            self.body(depth + 1, loop, loops, kinds, forced_exit=then_exit, likely_exit=constant)
        self.emit("} else {")
        with self.region():
            self.body(depth + 1, loop, loops, kinds, likely_exit=constant)
        self.emit("}")
        self.lines[head] = (
            "  " * self.indent + self._bind_results(name, kinds) + self.lines[head].lstrip()
        )

    def switch_op(self, depth: int, loop: _Loop | None, loops: int) -> None:
        constant = not self.draw(st.booleans())
        if constant:
            self.features.add("constant condition")
            selector = self.const_i64(self.draw(st.integers(-1, 3)))
        else:
            selector = self.pick("i64")
        cases = self.draw(st.lists(st.integers(-1, 3), min_size=1, max_size=3, unique=True))
        kinds = self._result_kinds()
        name = self.fresh()
        head = len(self.lines)
        self.emit(f"dy.switch {selector} : i64{self._arrow(kinds)}")
        for value in cases:
            self.lines[-1] += f" case {value} {{"
            with self.region():
                self.body(depth + 1, loop, loops, kinds, likely_exit=constant)
            self.emit("}")
        self.lines[-1] += " default {"
        with self.region():
            self.body(depth + 1, loop, loops, kinds, likely_exit=constant)
        self.emit("}")
        self.lines[head] = (
            "  " * self.indent + self._bind_results(name, kinds) + self.lines[head].lstrip()
        )

    def for_op(self, depth: int, loops: int, inner_exit: str | None = None) -> None:
        """A counted loop; with `inner_exit`, its body holds a `dy.if` whose then-region
        ends with that exit (`break` / `continue`)."""
        lower = self.const_i64(0)
        upper = self.fresh()
        limit = self.const_i64(self.draw(st.integers(1, 4)))
        if self.draw(st.booleans()):
            self.emit(f"{upper} = arith.minsi {self.pick('i64')}, {limit} : i64")
        else:
            upper = limit
        step = self.const_i64(self.draw(st.sampled_from([1, 1, 2])))
        h, s = self.pick("T"), self.pick("i64")
        name, iv, hh, ss = self.fresh(), self.fresh(), self.fresh(), self.fresh()
        self.emit(
            f"{name}:2 = dy.for {iv} = {lower} to {upper} step {step} iter_args({hh} = {h}, "
            f"{ss} = {s}) -> ({self.T}, i64) {{"
        )
        frame = _Loop(carried=("T", "i64"), results=("T", "i64"))

        def exit_branch():
            if inner_exit is not None:
                self.if_op(depth + 1, frame, loops + 1, then_exit=inner_exit)

        with self.region({"T": [hh], "i64": [iv, ss]}):
            self.body(depth + 1, frame, loops + 1, frame.carried, insert=exit_branch)
        self.emit("}")
        self.define("T", f"{name}#0")
        self.define("i64", f"{name}#1")

    def while_op(self, depth: int, loops: int) -> None:
        h, s, zero = self.pick("T"), self.pick("i64"), self.const_i64(0)
        name, hb, sb, cb = self.fresh(), self.fresh(), self.fresh(), self.fresh()
        types = f"{self.T}, i64, i64"
        self.emit(
            f"{name}:3 = dy.while ({hb} = {h}, {sb} = {s}, {cb} = {zero}) : ({types}) -> ({types}) {{"
        )
        with self.region({"T": [hb], "i64": [sb]}):
            bound = self.const_i64(self.draw(st.integers(1, 4)))
            below, go = self.fresh(), self.fresh()
            self.emit(f"{below} = arith.cmpi slt, {cb}, {bound} : i64")
            data = self.condition()
            self.emit(f"{go} = arith.andi {below}, {data} : i1")
            self.emit(f"dy.condition({go}) {hb}, {sb}, {cb} : {types}")
        self.emit("} do {")
        ha, sa, ca = self.fresh(), self.fresh(), self.fresh()
        self.emit(f"^bb0({ha}: {self.T}, {sa}: i64, {ca}: i64):")
        with self.region({"T": [ha], "i64": [sa, ca]}):
            one, counter_next = self.const_i64(1), self.fresh()
            self.emit(f"{counter_next} = arith.addi {ca}, {one} : i64")
            frame = _Loop(
                carried=("T", "i64", "ctr"), results=("T", "i64", "i64"), counter_next=counter_next
            )
            self.body(depth + 1, frame, loops + 1, frame.carried)
        self.emit("}")
        self.define("T", f"{name}#0")
        self.define("i64", f"{name}#1")

    # ---------------------------------------------------------------- calls

    def call(self, target: str | None = None) -> None:
        """Call an existing sub-graph or helper function, or write a new sub-graph."""
        options = (
            ["new graph"] + (["graph"] if self.graphs else []) + (["func"] if self.helpers else [])
        )
        if target == "graph":
            options = ["new graph"]
        elif target == "func":
            options = ["func"]
        choice = self.draw(st.sampled_from(options))
        if choice == "func":
            self.features.add("dy.func call")
            name = self.draw(st.sampled_from(self.helpers))
            tensor, integer, out = self.pick("T"), self.pick("i64"), self.fresh()
            self.emit(
                f"{out}:2 = dy.call @{name}({tensor}, {integer}) : ({self.T}, i64) -> ({self.T}, i64)"
            )
            self.define("T", f"{out}#0")
            self.define("i64", f"{out}#1")
            return
        name = (
            self.new_graph() if choice == "new graph" else self.draw(st.sampled_from(self.graphs))
        )
        a, b, out = self.pick("T"), self.pick("T"), self.fresh()
        self.emit(f"{out} = dy.call @{name}({a}, {b}) : ({self.T}, {self.T}) -> {self.T}")
        self.define("T", out)

    # ---------------------------------------------------------------- functions

    def function(self, name: str, arguments: dict[str, list[str]], signature: str) -> str:
        self.lines, self.indent = [], 2
        self.scopes = [{k: list(v) for k, v in arguments.items()}]
        forced = self.force_requirements if name == "forward" else None
        self.body(0, None, 0, RESULTS, fallthrough="dy.return", insert=forced)
        results = ", ".join(self.type_of(k) for k in RESULTS)
        header = f"  dy.func @{name}({signature}) -> ({results}) {{"
        text = "\n".join([header, *self.lines, "  }"])
        self.written.append(text)
        self.lines = []
        return text

    def force_requirements(self) -> None:
        """Write, among the statements of `@forward`'s body, a construct for each required
        feature that the statements before did not produce."""
        for feature in self.shape.require:
            if feature not in self.features_so_far():
                self.construct(FORCED_CONSTRUCTS[feature], 0, None, 0)

    def module(self) -> str:
        low, high = self.shape.helpers
        if "dy.func call" in self.shape.require:
            low, high = max(low, 1), max(high, 1)
        functions = []
        for index in range(self.draw(st.integers(low, high))):
            name = f"helper{index}"
            functions.append(
                self.function(name, {"T": ["%h"], "i64": ["%n"]}, f"%h: {self.T}, %n: i64")
            )
            self.helpers.append(name)
        functions.append(
            self.function(
                "forward",
                {"T": ["%x", "%y"], "i64": ["%k"], "f64": ["%f"]},
                f"%x: {self.T}, %y: {self.T}, %k: i64, %f: f64",
            )
        )
        body = "\n".join([*self.graph_texts, *functions])
        return f'builtin.module attributes {{dy.params = "random.safetensors"}} {{\n{body}\n}}\n'

    @contextmanager
    def region(self, arguments: dict[str, list[str]] | None = None):
        self.indent += 1
        self.scopes.append({k: list(v) for k, v in (arguments or {}).items()})
        try:
            yield
        finally:
            self.scopes.pop()
            self.indent -= 1


@dataclass
class GeneratedProgram:
    """A verified program's text with parameters and inputs to run it on; printed as its
    text, so a falsifying example reads as IR."""

    text: str
    params: dict[str, torch.Tensor]
    inputs: list
    features: frozenset[str]
    """The ops and features the program contains (see `ProgramShape.require`)."""
    parsed: ModuleOp = field(repr=False, compare=False)

    def module(self) -> ModuleOp:
        """A fresh copy of the verified module (passes change modules in place); copying
        costs a tenth of parsing the text again."""
        return self.parsed.clone()

    def __repr__(self) -> str:
        inputs = ", ".join(_short(value) for value in self.inputs)
        return f"GeneratedProgram(inputs=[{inputs}], text=\n{self.text})"

    def _repr_pretty_(self, printer, cycle: bool) -> None:
        """How hypothesis prints a falsifying example: as `repr`, not field by field."""
        printer.text(repr(self))


GENERATED_FILENAME = "<generated>"


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor(shape={list(value.shape)}, dtype={value.dtype})"
    return repr(value)


@st.composite
def programs(draw, shape: ProgramShape | None = None) -> GeneratedProgram:
    """A random verified `dy` program of `shape`'s distribution (default `ProgramShape()`),
    with parameters for its `dy.param`s and one call's inputs."""
    shape = shape or ProgramShape()
    if "dynamic shape" in shape.require or shape.batch == "dynamic":
        dynamic = True
    else:
        dynamic = shape.batch == "either" and draw(st.booleans())
    writer = ProgramWriter(draw, shape, dynamic)
    text = writer.module()
    module = parse_and_verify(text, GENERATED_FILENAME)
    features = frozenset(writer.features_so_far())
    missing = set(shape.require) - features
    assert not missing, f"the generator did not write the required {sorted(missing)}"
    params = draw(params_for(module))
    return GeneratedProgram(text, params, draw(inputs_for(module)), features, module)
