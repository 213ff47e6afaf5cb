"""A hypothesis strategy for random, verified, terminating dy programs and their inputs.

Programs exercise what passes must preserve: nested `dy.if` / `dy.switch` / `dy.for` /
`dy.while` with data-dependent conditions (`dy.item` of tensor reductions compared with
`arith`), loop-carried tensors and scalars, `dy.break` / `dy.continue` / `dy.return` at
random depths, straight-line torch ops spelled exactly as torch-mlir's generic form prints
them, lists, `dy.param` weights, `dy.graph` sub-graphs with `dy.call`s, and helper
`dy.func`s. Constant conditions (work for fold-constant-branches) and unused values (work
for dce) appear by chance.

Every `dy.while` carries a counter that its do-region increments before any exit and that
its condition bounds, and every `dy.for` has a small upper bound, so programs terminate.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from hypothesis import strategies as st

from ir.program import parse_and_verify

TENSOR = "!torch.vtensor<[2,3],f32>"
WEIGHT = "!torch.vtensor<[3,3],f32>"
TYPES = {"T": TENSOR, "i64": "i64", "f64": "f64", "i1": "i1", "ctr": "i64"}
"""Value kinds and their IR types; `ctr` is a while loop's incremented counter (an i64)."""

MAX_DEPTH = 3
MAX_LOOP_NESTING = 2
PARAM_KEYS = ("w0", "w1")
RESULTS = ("T", "i64")
"""What `@forward` and the helper functions return."""


@dataclass
class GeneratedProgram:
    """A verified program's text with the parameters and inputs to run it on."""

    text: str
    params: dict[str, torch.Tensor]
    inputs: list
    features: set[str] = field(default_factory=set)
    """The constructs this program contains (`dy.while`, `dy.return`, ...), for coverage."""


@dataclass
class _Loop:
    """The loop that a `dy.break` / `dy.continue` in the current region would target."""

    carried: tuple[str, ...]
    results: tuple[str, ...]
    counter_next: str | None = None


class _Writer:
    """Writes one module's text while drawing every choice from hypothesis."""

    def __init__(self, draw):
        self.draw = draw
        self.lines: list[str] = []
        self.indent = 1
        self.scopes: list[dict[str, list[str]]] = []
        self.next_id = 0
        self.graphs: list[str] = []
        self.helpers: list[str] = []
        self.graph_texts: list[str] = []
        self.features: set[str] = set()

    # ------------------------------------------------------------------ plumbing

    def fresh(self) -> str:
        self.next_id += 1
        return f"%v{self.next_id}"

    def emit(self, line: str) -> None:
        self.lines.append("  " * self.indent + line)

    def define(self, kind: str, name: str) -> str:
        self.scopes[-1].setdefault(kind, []).append(name)
        return name

    def visible(self, kind: str) -> list[str]:
        return [name for scope in self.scopes for name in scope.get(kind, [])]

    def pick(self, kind: str) -> str:
        """A visible value of this kind, making a fresh one when there is none."""
        names = self.visible(kind)
        if names:
            return self.draw(st.sampled_from(names))
        return self.make(kind)

    def make(self, kind: str) -> str:
        if kind == "T":
            return self.tensor_op()
        if kind == "f64":
            return self.scalar_of_tensor()
        if kind == "i1":
            return self.condition()
        return self.const_i64(self.draw(st.integers(-2, 4)))

    @contextmanager
    def region(self, arguments: dict[str, list[str]] | None = None):
        self.indent += 1
        self.scopes.append({k: list(v) for k, v in (arguments or {}).items()})
        try:
            yield
        finally:
            self.scopes.pop()
            self.indent -= 1

    def const_i64(self, value: int) -> str:
        name = self.fresh()
        self.emit(f"{name} = arith.constant {value} : i64")
        return name

    def torch_const(self, kind: str, value) -> str:
        name = self.fresh()
        if kind == "none":
            self.emit(f'{name} = "torch.constant.none"() : () -> !torch.none')
        elif kind == "int":
            self.emit(
                f'{name} = "torch.constant.int"() <{{value = {value} : i64}}> : () -> !torch.int'
            )
        elif kind == "float":
            self.emit(
                f'{name} = "torch.constant.float"() <{{value = {value!r} : f64}}> : () -> !torch.float'
            )
        else:
            self.emit(f'{name} = "torch.constant.bool"() <{{value = {value}}}> : () -> !torch.bool')
        return name

    # ---------------------------------------------------------- straight-line ops

    def tensor_op(self, *, in_graph: bool = False) -> str:
        """One torch op producing a [2,3] tensor from visible tensors (or a parameter)."""
        choice = self.draw(
            st.sampled_from(["relu", "tanh", "add", "mul", "mm", "sum_dim", "scalar_add"])
        )
        if choice == "scalar_add" and in_graph:
            choice = "add"
        a = self.pick("T")
        out = self.fresh()
        if choice in ("relu", "tanh"):
            self.emit(f'{out} = "torch.aten.{choice}"({a}) : ({TENSOR}) -> {TENSOR}')
        elif choice == "add":
            b = self.pick("T")
            alpha = self.torch_const("int", 1)
            self.emit(
                f'{out} = "torch.aten.add.Tensor"({a}, {b}, {alpha}) : '
                f"({TENSOR}, {TENSOR}, !torch.int) -> {TENSOR}"
            )
        elif choice == "mul":
            b = self.pick("T")
            self.emit(
                f'{out} = "torch.aten.mul.Tensor"({a}, {b}) : ({TENSOR}, {TENSOR}) -> {TENSOR}'
            )
        elif choice == "mm":
            key = self.draw(st.sampled_from(PARAM_KEYS))
            weight = self.fresh()
            self.emit(f'{weight} = dy.param "{key}" : {WEIGHT}')
            mm = self.fresh()
            self.emit(f'{mm} = "torch.aten.mm"({a}, {weight}) : ({TENSOR}, {WEIGHT}) -> {TENSOR}')
            self.emit(f'{out} = "torch.aten.tanh"({mm}) : ({TENSOR}) -> {TENSOR}')
        elif choice == "sum_dim":
            one = self.torch_const("int", 1)
            dims = self.fresh()
            self.emit(
                f'{dims} = "torch.prim.ListConstruct"({one}) : (!torch.int) -> !torch.list<int>'
            )
            keep = self.torch_const("bool", "true")
            none = self.torch_const("none", None)
            summed = self.fresh()
            row = "!torch.vtensor<[2,1],f32>"
            self.emit(
                f'{summed} = "torch.aten.sum.dim_IntList"({a}, {dims}, {keep}, {none}) : '
                f"({TENSOR}, !torch.list<int>, !torch.bool, !torch.none) -> {row}"
            )
            alpha = self.torch_const("int", 1)
            self.emit(
                f'{out} = "torch.aten.add.Tensor"({a}, {summed}, {alpha}) : '
                f"({TENSOR}, {row}, !torch.int) -> {TENSOR}"
            )
        else:
            scalar = self.pick("f64")
            wrapped = self.fresh()
            self.emit(f"{wrapped} = dy.scalar_to_tensor {scalar} : f64 -> !torch.vtensor<[],f64>")
            alpha = self.torch_const("int", 1)
            self.emit(
                f'{out} = "torch.aten.add.Tensor"({a}, {wrapped}, {alpha}) : '
                f"({TENSOR}, !torch.vtensor<[],f64>, !torch.int) -> {TENSOR}"
            )
        return self.define("T", out)

    def scalar_of_tensor(self) -> str:
        """`dy.item` of a full reduction: a data-dependent f64."""
        a = self.pick("T")
        none = self.torch_const("none", None)
        summed = self.fresh()
        self.emit(
            f'{summed} = "torch.aten.sum"({a}, {none}) : ({TENSOR}, !torch.none) -> '
            "!torch.vtensor<[],f32>"
        )
        out = self.fresh()
        self.emit(f"{out} = dy.item {summed} : !torch.vtensor<[],f32> -> f64")
        return self.define("f64", out)

    def condition(self) -> str:
        """An i1: constant, from comparing scalars, or `any(x > c)` read with `dy.item`."""
        choice = self.draw(st.sampled_from(["const", "cmpf", "cmpi", "any"]))
        out = self.fresh()
        if choice == "const":
            self.features.add("constant condition")
            value = self.draw(st.booleans())
            self.emit(f"{out} = arith.constant {'true' if value else 'false'}")
        elif choice == "cmpf":
            a = self.pick("f64")
            threshold = self.fresh()
            self.emit(
                f"{threshold} = arith.constant {self.draw(st.sampled_from([-1.0, 0.0, 0.5]))} : f64"
            )
            predicate = self.draw(st.sampled_from(["ogt", "olt", "oge"]))
            self.emit(f"{out} = arith.cmpf {predicate}, {a}, {threshold} : f64")
        elif choice == "cmpi":
            a, b = self.pick("i64"), self.pick("i64")
            predicate = self.draw(st.sampled_from(["slt", "sge", "eq", "ne"]))
            self.emit(f"{out} = arith.cmpi {predicate}, {a}, {b} : i64")
        else:
            a = self.pick("T")
            threshold = self.torch_const("float", self.draw(st.sampled_from([0.0, 0.5, 1.0])))
            mask = self.fresh()
            self.emit(
                f'{mask} = "torch.aten.gt.Scalar"({a}, {threshold}) : ({TENSOR}, !torch.float) -> '
                "!torch.vtensor<[2,3],i1>"
            )
            anyone = self.fresh()
            self.emit(
                f'{anyone} = "torch.aten.any"({mask}) : (!torch.vtensor<[2,3],i1>) -> '
                "!torch.vtensor<[],i1>"
            )
            self.emit(f"{out} = dy.item {anyone} : !torch.vtensor<[],i1> -> i1")
        return self.define("i1", out)

    def int_op(self) -> str:
        a, b = self.pick("i64"), self.pick("i64")
        op = self.draw(st.sampled_from(["addi", "subi", "maxsi", "minsi"]))
        out = self.fresh()
        self.emit(f"{out} = arith.{op} {a}, {b} : i64")
        return self.define("i64", out)

    def float_op(self) -> str:
        a, b = self.pick("f64"), self.pick("f64")
        op = self.draw(st.sampled_from(["addf", "subf", "mulf"]))
        out = self.fresh()
        self.emit(f"{out} = arith.{op} {a}, {b} : f64")
        return self.define("f64", out)

    def list_ops(self) -> None:
        """Build a list of 1-3 visible tensors and read it back in one of the join ways."""
        self.features.add("list")
        list_type = f"!dy.list<{TENSOR}>"
        current = self.fresh()
        self.emit(f"{current} = dy.list_empty : {list_type}")
        for _ in range(self.draw(st.integers(1, 3))):
            item, appended = self.pick("T"), self.fresh()
            self.emit(f"{appended} = dy.list_append {current}, {item} : {list_type}, {TENSOR}")
            current = appended
        way = self.draw(st.sampled_from(["get", "len", "stack", "cat"]))
        out = self.fresh()
        if way == "get":
            index = self.const_i64(self.draw(st.sampled_from([0, -1])))
            self.emit(f"{out} = dy.list_get {current}[{index}] : {list_type} -> {TENSOR}")
            self.define("T", out)
        elif way == "len":
            self.emit(f"{out} = dy.list_len {current} : {list_type}")
            self.define("i64", out)
        else:
            joined_type = (
                "!torch.vtensor<[?,2,3],f32>" if way == "stack" else "!torch.vtensor<[?,3],f32>"
            )
            self.emit(f"{out} = dy.list_{way} {current} dim 0 : {list_type} -> {joined_type}")
            none = self.torch_const("none", None)
            summed, scalar = self.fresh(), self.fresh()
            self.emit(
                f'{summed} = "torch.aten.sum"({out}, {none}) : ({joined_type}, !torch.none) -> '
                "!torch.vtensor<[],f32>"
            )
            self.emit(f"{scalar} = dy.item {summed} : !torch.vtensor<[],f32> -> f64")
            self.define("f64", scalar)

    def call(self) -> None:
        """Call an existing sub-graph or helper function, or write a new sub-graph."""
        options = (
            ["new graph"]
            + (["graph"] if self.graphs else [])
            + (["helper"] if self.helpers else [])
        )
        choice = self.draw(st.sampled_from(options))
        if choice == "helper":
            self.features.add("dy.func call")
            name = self.draw(st.sampled_from(self.helpers))
            tensor, integer, out = self.pick("T"), self.pick("i64"), self.fresh()
            self.emit(
                f"{out}:2 = dy.call @{name}({tensor}, {integer}) : ({TENSOR}, i64) -> ({TENSOR}, i64)"
            )
            self.define("T", f"{out}#0")
            self.define("i64", f"{out}#1")
            return
        self.features.add("dy.graph call")
        name = (
            self.new_graph() if choice == "new graph" else self.draw(st.sampled_from(self.graphs))
        )
        a, b, out = self.pick("T"), self.pick("T"), self.fresh()
        self.emit(f"{out} = dy.call @{name}({a}, {b}) : ({TENSOR}, {TENSOR}) -> {TENSOR}")
        self.define("T", out)

    def new_graph(self) -> str:
        name = f"g{len(self.graphs)}"
        saved = (self.lines, self.indent, self.scopes)
        self.lines, self.indent, self.scopes = [], 2, [{"T": ["%a", "%b"]}]
        for _ in range(self.draw(st.integers(1, 3))):
            self.tensor_op(in_graph=True)
        result = self.pick("T")
        self.emit(f"dy.output {result} : {TENSOR}")
        body = self.lines
        self.lines, self.indent, self.scopes = saved
        header = f"  dy.graph @{name}(%a: {TENSOR}, %b: {TENSOR}) -> ({TENSOR}) {{"
        self.graphs.append(name)
        self.graph_texts.append("\n".join([header, *body, "  }"]))
        return name

    # -------------------------------------------------------------- control flow

    def statement(self, depth: int, loop: _Loop | None, loops: int) -> None:
        kinds = ["tensor", "tensor", "scalar", "int", "float", "cond", "list", "call"]
        if depth < MAX_DEPTH:
            kinds += ["if", "if", "if", "switch", "switch"]
            if loops < MAX_LOOP_NESTING:
                kinds += ["for", "while"]
        kind = self.draw(st.sampled_from(kinds))
        if kind == "tensor":
            self.tensor_op()
        elif kind == "scalar":
            self.scalar_of_tensor()
        elif kind == "int":
            self.int_op()
        elif kind == "float":
            self.float_op()
        elif kind == "cond":
            self.condition()
        elif kind == "list":
            self.list_ops()
        elif kind == "call":
            self.call()
        elif kind == "if":
            self.if_op(depth, loop, loops)
        elif kind == "switch":
            self.switch_op(depth, loop, loops)
        elif kind == "for":
            self.for_op(depth, loops)
        else:
            self.while_op(depth, loops)

    def body(
        self,
        depth: int,
        loop: _Loop | None,
        loops: int,
        yields: tuple[str, ...],
        fallthrough: str = "dy.yield",
    ) -> None:
        """Statements, then a terminator: `fallthrough` of `yields`, or an exit."""
        low, high = (1, 4) if depth == 0 else (0, 3 if depth < 2 else 2)
        for _ in range(self.draw(st.integers(low, high))):
            self.statement(depth, loop, loops)
        exits = ["yield", "yield", "yield", "return"]
        if loop is not None:
            exits += ["break", "continue"]
        exit_kind = self.draw(st.sampled_from(exits))
        if exit_kind == "yield":
            self.terminator(fallthrough, yields, loop)
        elif exit_kind == "return":
            self.features.add("dy.return")
            self.terminator("dy.return", RESULTS, loop)
        elif exit_kind == "break":
            self.features.add("dy.break")
            self.terminator("dy.break", loop.results, loop)
        else:
            self.features.add("dy.continue")
            self.terminator("dy.continue", loop.carried, loop)

    def terminator(self, op: str, kinds: tuple[str, ...], loop: _Loop | None) -> None:
        values = [loop.counter_next if kind == "ctr" else self.pick(kind) for kind in kinds]
        if values:
            types = ", ".join(TYPES[kind] for kind in kinds)
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
        return f" -> ({', '.join(TYPES[k] for k in kinds)})" if kinds else ""

    def if_op(self, depth: int, loop: _Loop | None, loops: int) -> None:
        self.features.add("dy.if")
        if self.draw(st.integers(0, 3)) == 0:
            self.features.add("constant condition")
            cond = self.fresh()
            self.emit(f"{cond} = arith.constant {self.draw(st.sampled_from(['true', 'false']))}")
        else:
            cond = self.pick("i1")
        kinds = self._result_kinds()
        name = self.fresh()
        head = len(self.lines)
        self.emit(f"dy.if {cond}{self._arrow(kinds)} {{")
        with self.region():
            self.body(depth + 1, loop, loops, kinds)
        self.emit("} else {")
        with self.region():
            self.body(depth + 1, loop, loops, kinds)
        self.emit("}")
        self.lines[head] = (
            "  " * self.indent + self._bind_results(name, kinds) + self.lines[head].lstrip()
        )

    def switch_op(self, depth: int, loop: _Loop | None, loops: int) -> None:
        self.features.add("dy.switch")
        if self.draw(st.booleans()):
            selector = self.pick("i64")
        else:
            self.features.add("constant condition")
            selector = self.const_i64(self.draw(st.integers(-1, 3)))
        cases = self.draw(st.lists(st.integers(-1, 3), min_size=1, max_size=3, unique=True))
        kinds = self._result_kinds()
        name = self.fresh()
        head = len(self.lines)
        self.emit(f"dy.switch {selector} : i64{self._arrow(kinds)}")
        for value in cases:
            self.lines[-1] += f" case {value} {{"
            with self.region():
                self.body(depth + 1, loop, loops, kinds)
            self.emit("}")
        self.lines[-1] += " default {"
        with self.region():
            self.body(depth + 1, loop, loops, kinds)
        self.emit("}")
        self.lines[head] = (
            "  " * self.indent + self._bind_results(name, kinds) + self.lines[head].lstrip()
        )

    def for_op(self, depth: int, loops: int) -> None:
        self.features.add("dy.for")
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
            f"{ss} = {s}) -> ({TENSOR}, i64) {{"
        )
        frame = _Loop(carried=("T", "i64"), results=("T", "i64"))
        with self.region({"T": [hh], "i64": [iv, ss]}):
            self.body(depth + 1, frame, loops + 1, frame.carried)
        self.emit("}")
        self.define("T", f"{name}#0")
        self.define("i64", f"{name}#1")

    def while_op(self, depth: int, loops: int) -> None:
        self.features.add("dy.while")
        h, s, zero = self.pick("T"), self.pick("i64"), self.const_i64(0)
        name, hb, sb, cb = self.fresh(), self.fresh(), self.fresh(), self.fresh()
        types = f"{TENSOR}, i64, i64"
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
        self.emit(f"^bb0({ha}: {TENSOR}, {sa}: i64, {ca}: i64):")
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

    # ---------------------------------------------------------------- functions

    def function(self, name: str, arguments: dict[str, list[str]], signature: str) -> str:
        self.lines, self.indent = [], 2
        self.scopes = [{k: list(v) for k, v in arguments.items()}]
        self.body(0, None, 0, RESULTS, fallthrough="dy.return")
        results = ", ".join(TYPES[k] for k in RESULTS)
        header = f"  dy.func @{name}({signature}) -> ({results}) {{"
        return "\n".join([header, *self.lines, "  }"])

    def module(self) -> str:
        functions = []
        for index in range(self.draw(st.integers(0, 1))):
            name = f"helper{index}"
            functions.append(
                self.function(name, {"T": ["%h"], "i64": ["%n"]}, f"%h: {TENSOR}, %n: i64")
            )
            self.helpers.append(name)
        functions.append(
            self.function(
                "forward",
                {"T": ["%x", "%y"], "i64": ["%k"], "f64": ["%f"]},
                f"%x: {TENSOR}, %y: {TENSOR}, %k: i64, %f: f64",
            )
        )
        body = "\n".join([*self.graph_texts, *functions])
        return f'builtin.module attributes {{dy.params = "random.safetensors"}} {{\n{body}\n}}\n'


@st.composite
def programs(draw) -> GeneratedProgram:
    """A random verified dy program, with parameters and inputs for `run_program`."""
    writer = _Writer(draw)
    text = writer.module()
    parse_and_verify(text, "<generated>")
    seed = draw(st.integers(0, 2**16))
    generator = torch.Generator().manual_seed(seed)
    params = {key: torch.randn(3, 3, generator=generator) * 0.6 for key in PARAM_KEYS}
    inputs = [
        torch.randn(2, 3, generator=generator),
        torch.randn(2, 3, generator=generator),
        draw(st.integers(-2, 5)),
        draw(st.sampled_from([-0.5, 0.0, 1.5])),
    ]
    return GeneratedProgram(text, params, inputs, writer.features)
