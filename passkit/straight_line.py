"""The straight-line part of generated programs: scopes of visible values, torch ops with
consistent shapes and dtypes, host scalars, lists and sub-graphs.

Values have a kind: `T` (a `[B,3]` f32 tensor), `I` (a `[B]` si64 tensor), `i64`, `f64`,
`i1`. The batch dimension `B` is 2, or `?` in a program with a dynamic batch, where every
tensor of one run has the same batch size (drawn with the inputs). Every torch op is
spelled as torch-mlir's generic form prints it, so the programs parse in real MLIR.
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

PARAM_KEYS = ("w0", "w1")
WEIGHT = "!torch.vtensor<[3,3],f32>"
TENSOR_OPS = ("relu", "tanh", "add", "mul", "mm", "sum_dim", "scalar_add", "where", "mix")
OP_NAME = re.compile(r"\bdy\.[a-z_]+\b")


class StraightLine:
    """Writes straight-line code into `lines`, drawing every choice from hypothesis."""

    def __init__(self, draw, dynamic_batch: bool):
        self.draw = draw
        self.batch = "?" if dynamic_batch else "2"
        self.T = f"!torch.vtensor<[{self.batch},3],f32>"
        self.I = f"!torch.vtensor<[{self.batch}],si64>"
        self.lines: list[str] = []
        self.written: list[str] = []
        self.indent = 1
        self.scopes: list[dict[str, list[str]]] = []
        self.next_id = 0
        self.graphs: list[str] = []
        self.graph_texts: list[str] = []
        self.features: set[str] = {"dynamic shape"} if dynamic_batch else set()
        self.constant_conditions: set[str] = set()

    # ------------------------------------------------------------------ plumbing

    def type_of(self, kind: str) -> str:
        return {"T": self.T, "I": self.I, "ctr": "i64"}.get(kind, kind)

    def tensor_type(self, shape: str, dtype: str = "f32") -> str:
        """`shape` with `B` for the batch dimension, e.g. `B,1`."""
        return f"!torch.vtensor<[{shape.replace('B', self.batch)}],{dtype}>"

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
        if kind == "I":
            return self.integer_tensor()
        if kind == "f64":
            return self.scalar_of_tensor()
        if kind == "i1":
            return self.condition()
        return self.const_i64(self.draw(st.integers(-2, 4)))

    def features_so_far(self) -> set[str]:
        """The ops written so far, and the features that are not single ops."""
        text = "\n".join([*self.written, *self.graph_texts, *self.lines])
        return set(OP_NAME.findall(text)) | self.features

    def straight_line(self, kind: str) -> None:
        """One statement of a straight-line kind (see `ProgramShape.statements`)."""
        if kind in ("tensor", "param", "scalar add"):
            self.tensor_op({"param": "mm", "scalar add": "scalar_add"}.get(kind))
        elif kind == "scalar":
            self.scalar_of_tensor(may_be_integer=True)
        elif kind == "int":
            self.int_op()
        elif kind == "float":
            self.float_op()
        elif kind == "cond":
            self.condition()
        elif kind == "integer tensor":
            self.integer_tensor()
        else:
            raise ValueError(f"unknown statement kind '{kind}'")

    # ------------------------------------------------------------ constants

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

    def int_list(self, *values: int) -> str:
        items = [self.torch_const("int", v) for v in values]
        name = self.fresh()
        self.emit(
            f'{name} = "torch.prim.ListConstruct"({", ".join(items)}) : '
            f"({', '.join(['!torch.int'] * len(items))}) -> !torch.list<int>"
        )
        return name

    # ------------------------------------------------------------ tensor ops

    def tensor_op(self, choice: str | None = None, *, in_graph: bool = False) -> str:
        """One torch op producing a `T` from visible values (or a parameter)."""
        if choice is None:
            choice = self.draw(st.sampled_from(TENSOR_OPS))
        if choice == "scalar_add" and in_graph:
            choice = "add"
        if choice == "mix" and in_graph:
            choice = "mul"
        a, T = self.pick("T"), self.T
        out = self.fresh()
        if choice in ("relu", "tanh"):
            self.emit(f'{out} = "torch.aten.{choice}"({a}) : ({T}) -> {T}')
        elif choice in ("add", "mul"):
            b = self.pick("T")
            self.binary(out, choice, a, b, T)
        elif choice == "mm":
            self.dense_layers(out, a)
        elif choice == "sum_dim":
            dims, keep, none = (
                self.int_list(1),
                self.torch_const("bool", "true"),
                self.torch_const("none", None),
            )
            summed, row = self.fresh(), self.tensor_type("B,1")
            self.emit(
                f'{summed} = "torch.aten.sum.dim_IntList"({a}, {dims}, {keep}, {none}) : '
                f"({T}, !torch.list<int>, !torch.bool, !torch.none) -> {row}"
            )
            self.binary(out, "add", a, summed, row)
        elif choice == "scalar_add":
            scalar, wrapped = self.pick("f64"), self.fresh()
            self.emit(f"{wrapped} = dy.scalar_to_tensor {scalar} : f64 -> !torch.vtensor<[],f64>")
            self.binary(out, "add", a, wrapped, "!torch.vtensor<[],f64>")
        elif choice == "where":
            mask, b = self.mask(a), self.pick("T")
            self.emit(
                f'{out} = "torch.aten.where.self"({mask}, {a}, {b}) : '
                f"({self.tensor_type('B,3', 'i1')}, {T}, {T}) -> {T}"
            )
        else:
            self.mix(out, a)
        return self.define("T", out)

    def dense_layers(self, out: str, a: str) -> None:
        """`tanh(a @ w)`, one or two layers deep, each reading its weight with `dy.param`."""
        T, hidden = self.T, a
        layers = self.draw(st.integers(1, 2))
        for layer in range(layers):
            key = self.draw(st.sampled_from(PARAM_KEYS))
            weight, mm = self.fresh(), self.fresh()
            self.emit(f'{weight} = dy.param "{key}" : {WEIGHT}')
            self.emit(f'{mm} = "torch.aten.mm"({hidden}, {weight}) : ({T}, {WEIGHT}) -> {T}')
            hidden = out if layer == layers - 1 else self.fresh()
            self.emit(f'{hidden} = "torch.aten.tanh"({mm}) : ({T}) -> {T}')

    def binary(self, out: str, op: str, a: str, b: str, b_type: str) -> None:
        """`a <op> b` broadcast to `T`; `add` takes torch's `alpha` operand."""
        if op == "add":
            alpha = self.torch_const("int", 1)
            self.emit(
                f'{out} = "torch.aten.add.Tensor"({a}, {b}, {alpha}) : '
                f"({self.T}, {b_type}, !torch.int) -> {self.T}"
            )
        else:
            self.emit(
                f'{out} = "torch.aten.mul.Tensor"({a}, {b}) : ({self.T}, {b_type}) -> {self.T}'
            )

    def mask(self, a: str) -> str:
        threshold = self.torch_const("float", self.draw(st.sampled_from([0.0, 0.5, 1.0])))
        mask = self.fresh()
        self.emit(
            f'{mask} = "torch.aten.gt.Scalar"({a}, {threshold}) : ({self.T}, !torch.float) -> '
            f"{self.tensor_type('B,3', 'i1')}"
        )
        return mask

    def mix(self, out: str, a: str) -> None:
        """`a * I[:, None]`: an integer tensor promoted into float compute."""
        column, one = self.fresh(), self.torch_const("int", 1)
        index = self.pick("I")
        self.emit(
            f'{column} = "torch.aten.unsqueeze"({index}, {one}) : ({self.I}, !torch.int) -> '
            f"{self.tensor_type('B,1', 'si64')}"
        )
        self.binary(out, "mul", a, column, self.tensor_type("B,1", "si64"))

    def integer_tensor(self) -> str:
        """`argmax(a, dim=1)`: a `[B]` si64 tensor of indices in 0..2."""
        self.features.add("integer tensor")
        a, one, keep, out = (
            self.pick("T"),
            self.torch_const("int", 1),
            self.torch_const("bool", "false"),
            self.fresh(),
        )
        self.emit(
            f'{out} = "torch.aten.argmax"({a}, {one}, {keep}) : '
            f"({self.T}, !torch.int, !torch.bool) -> {self.I}"
        )
        return self.define("I", out)

    # -------------------------------------------------------------- scalars

    def scalar_of_tensor(self, *, may_be_integer: bool = False) -> str:
        """`dy.item` of a full reduction: a data-dependent f64 (or, of an `I` when
        `may_be_integer`, an i64)."""
        of_integers = may_be_integer and bool(self.visible("I")) and self.draw(st.booleans())
        a = self.pick("I" if of_integers else "T")
        none, summed, out = self.torch_const("none", None), self.fresh(), self.fresh()
        source, dtype, kind = (self.I, "si64", "i64") if of_integers else (self.T, "f32", "f64")
        self.emit(
            f'{summed} = "torch.aten.sum"({a}, {none}) : ({source}, !torch.none) -> '
            f"!torch.vtensor<[],{dtype}>"
        )
        self.emit(f"{out} = dy.item {summed} : !torch.vtensor<[],{dtype}> -> {kind}")
        return self.define(kind, out)

    def condition(self) -> str:
        """An i1: constant, from comparing scalars, or `any(x > c)` read with `dy.item`."""
        choice = self.draw(st.sampled_from(["const", "cmpf", "cmpi", "any"]))
        out = self.fresh()
        if choice == "const":
            self.constant_conditions.add(out)
            value = self.draw(st.booleans())
            self.emit(f"{out} = arith.constant {'true' if value else 'false'}")
        elif choice == "cmpf":
            a, threshold = self.pick("f64"), self.fresh()
            value = self.draw(st.sampled_from([-1.0, 0.0, 0.5]))
            self.emit(f"{threshold} = arith.constant {value} : f64")
            predicate = self.draw(st.sampled_from(["ogt", "olt", "oge"]))
            self.emit(f"{out} = arith.cmpf {predicate}, {a}, {threshold} : f64")
        elif choice == "cmpi":
            a, b = self.pick("i64"), self.pick("i64")
            predicate = self.draw(st.sampled_from(["slt", "sge", "eq", "ne"]))
            self.emit(f"{out} = arith.cmpi {predicate}, {a}, {b} : i64")
        else:
            mask, anyone = self.mask(self.pick("T")), self.fresh()
            self.emit(
                f'{anyone} = "torch.aten.any"({mask}) : ({self.tensor_type("B,3", "i1")}) -> '
                "!torch.vtensor<[],i1>"
            )
            self.emit(f"{out} = dy.item {anyone} : !torch.vtensor<[],i1> -> i1")
        return self.define("i1", out)

    def int_op(self) -> str:
        a, b = self.pick("i64"), self.pick("i64")
        op = self.draw(st.sampled_from(["addi", "subi", "maxsi", "minsi", "muli"]))
        out = self.fresh()
        self.emit(f"{out} = arith.{op} {a}, {b} : i64")
        return self.define("i64", out)

    def float_op(self) -> str:
        a, b = self.pick("f64"), self.pick("f64")
        op = self.draw(st.sampled_from(["addf", "subf", "mulf"]))
        out = self.fresh()
        self.emit(f"{out} = arith.{op} {a}, {b} : f64")
        return self.define("f64", out)

    # ---------------------------------------------------------------- lists

    def list_ops(self, way: str | None = None) -> None:
        """Build a list of 0-3 visible tensors and read it back in one of the join ways;
        an empty list (1 in 6) makes `dy.list_get` / `dy.list_stack` / `dy.list_cat` fail
        at run time, which every pass must preserve."""
        list_type = f"!dy.list<{self.T}>"
        current = self.fresh()
        self.emit(f"{current} = dy.list_empty : {list_type}")
        for _ in range(self.draw(st.sampled_from([1, 2, 3, 1, 2, 0]))):
            item, appended = self.pick("T"), self.fresh()
            self.emit(f"{appended} = dy.list_append {current}, {item} : {list_type}, {self.T}")
            current = appended
        way = way or self.draw(st.sampled_from(["len", "get", "stack", "cat"]))
        out = self.fresh()
        if way == "get":
            index = self.const_i64(self.draw(st.sampled_from([0, -1, 0, -1, 1])))
            self.emit(f"{out} = dy.list_get {current}[{index}] : {list_type} -> {self.T}")
            self.define("T", out)
        elif way == "len":
            self.emit(f"{out} = dy.list_len {current} : {list_type}")
            self.define("i64", out)
        else:
            joined = self.tensor_type("?,B,3" if way == "stack" else "?,3")
            self.emit(f"{out} = dy.list_{way} {current} dim 0 : {list_type} -> {joined}")
            none, summed, scalar = self.torch_const("none", None), self.fresh(), self.fresh()
            self.emit(
                f'{summed} = "torch.aten.sum"({out}, {none}) : ({joined}, !torch.none) -> '
                "!torch.vtensor<[],f32>"
            )
            self.emit(f"{scalar} = dy.item {summed} : !torch.vtensor<[],f32> -> f64")
            self.define("f64", scalar)

    def new_graph(self) -> str:
        """A new `dy.graph @gN(%a: T, %b: T) -> T` of 1-3 tensor ops."""
        name = f"g{len(self.graphs)}"
        saved = (self.lines, self.indent, self.scopes)
        self.lines, self.indent, self.scopes = [], 2, [{"T": ["%a", "%b"]}]
        for _ in range(self.draw(st.integers(1, 3))):
            self.tensor_op(in_graph=True)
        self.emit(f"dy.output {self.pick('T')} : {self.T}")
        body = self.lines
        self.lines, self.indent, self.scopes = saved
        header = f"  dy.graph @{name}(%a: {self.T}, %b: {self.T}) -> ({self.T}) {{"
        self.graphs.append(name)
        self.graph_texts.append("\n".join([header, *body, "  }"]))
        return name
