"""Dynamic shapes and batches (docs/frontend.md, "Sizes known only at run time"): one small
model per construct, each compiled once and compared with eager on inputs that take every
path and produce several different sizes, with both backends."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import frontends.torch as ft
from tests.frontend.conftest import BACKENDS, check_backend

backends = pytest.mark.parametrize("backend", BACKENDS)


def scaled(count: int, *shape: int, seed: int = 0, offset: float = 0.0) -> list[tuple]:
    """`count` inputs whose scale grows, so thresholds are crossed at different points."""
    generator = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(*shape, generator=generator) * (0.1 + 0.3 * i) + offset,) for i in range(count)
    ]


class TokenPruning(nn.Module):
    """DynamicViT-style: tokens whose score passes a threshold are kept."""

    def __init__(self):
        super().__init__()
        self.score = nn.Linear(8, 1)
        self.proj = nn.Linear(8, 8)

    def forward(self, x):
        score = self.score(x).squeeze(-1)
        keep = score[0] > 0
        x = x[:, keep]
        x = torch.relu(self.proj(x))
        return x.mean(1), x.shape[1]


@backends
def test_token_pruning_keeps_a_data_dependent_number_of_tokens(backend):
    samples = [(torch.randn(1, 9, 8) * s,) for s in (0.1, 1.0, 3.0, 10.0)] + scaled(6, 1, 9, 8)
    check_backend(TokenPruning().eval(), samples[0], samples, backend)


class DataDependentOps(nn.Module):
    """nonzero, masked_select, index_select and gather with computed indices, topk/sort
    selection, index_add_, scatter_add."""

    def forward(self, x):
        positive = torch.nonzero(x > 0)
        selected = x.masked_select(x > 0.5)
        order = torch.sort(x.sum(1), descending=True).indices
        rows = torch.index_select(x, 0, order[:2])
        top = torch.topk(x, 2, dim=1).indices
        gathered = torch.gather(x, 1, top)
        totals = torch.zeros(3).index_add_(0, (x[:, 0] > 0).long(), x[:, 1])
        counts = torch.zeros(3).scatter_add(0, (x[:, 2] > 0).long(), torch.ones(4))
        return positive, selected.sum(), rows, gathered, totals, counts


@backends
def test_ops_whose_result_size_depends_on_data(backend):
    samples = scaled(8, 4, 3, seed=1, offset=0.1)
    check_backend(DataDependentOps().eval(), samples[0], samples, backend)


class MaskedAssignment(nn.Module):
    def forward(self, x):
        y = x.clone()
        y[y < 0] = 0.0
        y[:, 0] = y[:, 1]
        y[0] = y[1] * 2
        return y


@backends
def test_item_slice_and_mask_assignment(backend):
    samples = scaled(5, 3, 4, seed=2)
    check_backend(MaskedAssignment().eval(), samples[0], samples, backend)


class ActiveSetExit(nn.Module):
    """Per-sample early exit at batch > 1: the active samples shrink until none is left."""

    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList(nn.Linear(4, 4) for _ in range(3))
        self.heads = nn.ModuleList(nn.Linear(4, 2) for _ in range(3))

    def forward(self, x):
        out = torch.zeros(x.shape[0], 2)
        index = torch.arange(x.shape[0])
        logits = self.heads[0](x)
        active = torch.ones(x.shape[0], dtype=torch.bool)
        for layer, head in zip(self.layers, self.heads):
            x = torch.relu(layer(x))
            logits = head(x)
            done = F.softmax(logits, -1).max(-1).values > 0.8
            out[index[done]] = logits[done]
            active = ~done
            x, index = x[active], index[active]
            if x.shape[0] == 0:
                break
        out[index] = logits[active]
        return out


@backends
def test_per_sample_early_exit_with_a_shrinking_active_set(backend):
    samples = [(torch.randn(16, 4) * s,) for s in (0.05, 1.0, 4.0, 30.0)]
    check_backend(ActiveSetExit().eval(), samples[0], samples, backend)


class HardRouting(nn.Module):
    """HydraNets-style: a module list, a dict of modules and a list of numbers indexed by
    run-time ints."""

    def __init__(self):
        super().__init__()
        self.gate = nn.Linear(4, 3)
        self.branches = nn.ModuleList(
            [nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU()), nn.Identity()]
        )
        self.finish = nn.ModuleDict({"0": nn.Tanh(), "1": nn.Sigmoid()})
        self.by_sign = {0: self.finish["0"], 1: self.finish["1"]}

    def forward(self, x):
        choice = self.gate(x).argmax(dim=1)
        y = self.branches[int(choice)](x)
        y = self.by_sign[(y.sum() > 0).long().item()](y)
        return y * [0.5, 1.0, 2.0][choice.item()]


@backends
def test_hard_routing_by_run_time_index(backend):
    samples = scaled(24, 1, 4, seed=3)
    check_backend(HardRouting().eval(), samples[0], samples, backend)


def test_a_run_time_index_out_of_range_raises_located():
    class OutOfRange(nn.Module):
        def __init__(self):
            super().__init__()
            self.experts = nn.ModuleList(nn.Linear(2, 2) for _ in range(2))

        def forward(self, x):
            return self.experts[int(x.sum() > 0) + int(x.sum() > 5)](x)

    program = ft.compile(OutOfRange().eval(), (torch.zeros(1, 2),), backend="interpreter")
    program(torch.ones(1, 2))
    with pytest.raises(Exception, match="index out of range for a ModuleList of 2"):
        program(torch.full((1, 2), 4.0))


class ComputedLookups(nn.Module):
    """Indices computed from the data: a table lookup, an embedding, an index_select and an
    in-place write at (possibly negative) rows."""

    def __init__(self):
        super().__init__()
        self.table = nn.Parameter(torch.randn(10, 4))
        self.embedding = nn.Embedding(10, 4)

    def forward(self, x):
        idx = (x.sum(1) * 3).long()
        rows = self.table[idx] + self.embedding(idx.abs())
        picked = torch.index_select(self.table, 0, idx.abs())
        out = torch.zeros(10, 4)
        out[idx] = rows
        return rows, picked, out


@backends
def test_computed_indices_agree_in_range_and_raise_located_out_of_range(backend):
    """An index eager refuses raises eager's error at its model line; the compiled code
    never reads or writes outside the tensor (it did: garbage rows for index 12)."""
    samples = [(torch.full((5, 2), s) * torch.linspace(-1, 1, 5)[:, None],) for s in
               (0.5, -1.0, 1.0, 1.4)]
    check_backend(ComputedLookups().eval(), samples[0], samples, backend,
                  require_coverage=False)
    program = ft.compile(ComputedLookups().eval(), samples[0], backend=backend)
    for scale in (2.0, 100.0, -5.0):
        with pytest.raises(Exception, match=r"test_dynamic_shapes\.py:\d+:\d+: .*out of bounds"):
            program(torch.full((5, 2), scale))


class RoutedGathers(nn.Module):
    """Gathers by several index tensors of run-time sizes, as Mixtral's MoE writes them
    (``top_x, idx = torch.where(mask)``, ``routing_weights[top_x, idx, None]``), on two and
    three leading dimensions, with broadcasting index tensors."""

    def forward(self, x, scores, cube):
        mask = scores > 0.2
        top_x, idx = torch.where(mask)
        weights = scores[top_x, idx, None]
        rows = x[top_x] * weights
        picked = cube[top_x % 2, idx, (top_x * 3 + idx) % 5]
        grid = x[top_x[:, None], idx[None, :]]
        return rows.sum(0), weights.shape[0], picked, grid.sum()


@backends
def test_gathers_by_several_run_time_sized_indices(backend):
    """One flat index instead of several (runtime.llvm.index_linearization): the same
    values as eager, with 0 to all of the mask's entries chosen."""
    generator = torch.Generator().manual_seed(7)
    samples = [(torch.randn(6, 4, generator=generator), torch.rand(6, 4, generator=generator) * s,
                torch.randn(2, 4, 5, generator=generator)) for s in (0.1, 0.3, 0.6, 1.0, 5.0)]
    program = check_backend(RoutedGathers().eval(), samples[0], samples, backend,
                            require_coverage=False)
    if backend == "llvm":
        assert program.stats.host_ops == 0, "a gather ran on the host"


def test_gathers_by_several_indices_raise_where_eager_raises():
    """An index out of its own dimension, or index tensors that do not broadcast, raise at
    the model line: a flat index must not wrap an out-of-range index into another row."""

    class Pairs(nn.Module):
        def forward(self, x, rows, cols):
            return x[rows, cols] * 2

    x = torch.randn(4, 3)
    example = (x, torch.tensor([0, 1]), torch.tensor([2, 0]))
    program = ft.compile(Pairs(), example, backend="llvm", dynamic=True)
    torch.testing.assert_close(program(*example), Pairs()(*example))
    for rows, cols in (([1, 2], [3, 0]), ([0, 5], [1, 1]), ([0, 1, 2], [1, 1])):
        arguments = (x, torch.tensor(rows), torch.tensor(cols))
        with pytest.raises(Exception):
            Pairs()(*arguments)
        with pytest.raises(Exception, match=r"test_dynamic_shapes\.py:\d+:\d+"):
            program(*arguments)


class HostData(nn.Module):
    """.tolist(), int(), float() of small tensors; tensors created in forward from run-time
    Python values; torch.equal / allclose as conditions; list del/pop/insert."""

    def forward(self, x):
        depths = (x.abs().sum(1) * 2).long().clamp(0, 3).tolist()
        total = x
        for depth in depths:
            total = total + depth
        count = int((x > 0).sum())
        made = torch.tensor([1.0, 2.0]) * float(x.max()) + torch.zeros(count).sum()
        if torch.equal((x > 0).float(), torch.ones_like(x)):
            total = total * 2
        elif torch.allclose(x, torch.zeros_like(x), atol=0.3):
            total = total * 3
        parts = [total * i for i in range(4)]
        del parts[-1]
        last = parts.pop()
        parts.insert(0, last)
        return torch.stack(parts).sum(0), made, count


@backends
def test_host_values_from_small_tensors(backend):
    samples = [(torch.full((2, 2), 1.0),), (torch.full((2, 2), 0.05),)] + scaled(6, 2, 2, seed=4)
    check_backend(HostData().eval(), samples[0], samples, backend)


class Cascade(nn.Module):
    """A batch-level cascade: the cheap model answers when it is confident on all samples."""

    def __init__(self):
        super().__init__()
        self.cheap = nn.Linear(4, 3)
        self.costly = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        logits = self.cheap(x)
        confidence = F.softmax(logits, -1).max(-1).values
        if (confidence > 0.6).all():
            return logits
        refined = self.costly(x)
        if refined.sum() > 0:
            temporary = refined * 2
            refined = temporary + 1
        return refined


@backends
def test_batch_cascade_and_a_name_only_one_arm_assigns(backend):
    samples = [(torch.randn(4, 4) * s,) for s in (0.1, 10.0, 1.0, 30.0)]
    check_backend(Cascade().eval(), samples[0], samples, backend, dynamic=True)


class Generate(nn.Module):
    """Hugging Face-style generation: the sequence grows by torch.cat each step, the loop
    breaks on the end token."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(6, 8)
        self.out = nn.Linear(8, 6)

    def forward(self, start):
        tokens = start
        for _ in range(8):
            logits = self.out(self.embed(tokens[:, -1]))
            next_token = logits.argmax(-1, keepdim=True)
            tokens = torch.cat([tokens, next_token], dim=1)
            if next_token.item() == 0:
                break
        return tokens


@backends
def test_generation_grows_a_sequence_until_the_end_token(backend):
    torch.manual_seed(5)
    model = Generate().eval()
    samples = [(torch.tensor([[t]]),) for t in range(6)]
    lengths = {model(*s).shape[1] for s in samples}
    assert len(lengths) > 1, lengths
    check_backend(model, samples[0], samples, backend)


class BufferTypeAs(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("offset", torch.arange(3, dtype=torch.float64))

    def forward(self, x):
        return x + self.offset.type_as(x)


@backends
def test_buffer_type_as_and_a_bare_sequential(backend):
    samples = scaled(3, 2, 3, seed=6)
    check_backend(BufferTypeAs().eval(), samples[0], samples, backend)
    sequential = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)).eval()
    check_backend(sequential, samples[0], samples, backend, require_coverage=False)


class Batched(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 6 * 6, 5)

    def forward(self, x):
        y = torch.relu(self.conv(x))
        y = self.fc(y.view(y.size(0), -1))
        if y.mean() > 0:
            y = y * 2
        return y


@backends
def test_dynamic_batch_compiles_once_for_every_batch_size(backend):
    model = Batched().eval()
    samples = [(torch.randn(b, 3, 6, 6) * s,) for b in (1, 3, 8, 32) for s in (0.1, 3.0)]
    program = check_backend(model, samples[0], samples, backend, dynamic=True)
    if backend == "llvm":
        assert program.specializations == 1


def test_new_shapes_compile_a_new_specialisation_instead_of_failing():
    model = Batched().eval()
    program = ft.compile(model, (torch.randn(1, 3, 6, 6),), backend="interpreter", cache_dir=None)
    for batch in (1, 8, 1):
        x = torch.randn(batch, 3, 6, 6)
        with torch.no_grad():
            torch.testing.assert_close(program(x), model(x))
    assert program.specializations == 2


def test_compile_without_example_inputs_compiles_at_the_first_call():
    model = Batched().eval()
    program = ft.compile(model, backend="interpreter", cache_dir=None)
    x = torch.randn(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(program(x), model(x))


def test_item_of_a_dynamic_batch_raises_where_eager_does():
    class PerSample(nn.Module):
        def forward(self, x):
            if x.sum().item() > 0 and x.mean(1).item() > 0:
                return x * 2
            return x

    program = ft.compile(
        PerSample().eval(), (torch.randn(1, 3),), backend="interpreter", dynamic=True
    )
    program(torch.randn(1, 3))
    with pytest.raises(Exception, match="one element"):
        program(torch.ones(4, 3))


class RunTimeTripCounts(nn.Module):
    """`for` loops whose trip count is known only at run time: a `range` of an `int()` of
    data (with a `continue`), a list filled by a data-dependent loop, and the rows of a
    dynamic batch."""

    def forward(self, x):
        steps = int(x.abs().sum() * 2) % 5
        y = x
        for i in range(steps):
            if i == 2:
                continue
            y = y * 1.5 + i
        partial = []
        k = 0
        while x[k % 2].sum() > -10 and k < steps % 3 + 1:
            partial.append(y * k)
            k += 1
        total = torch.zeros_like(y)
        for h in partial:
            total = total + h
        return total, steps


class RowsOfADynamicBatch(nn.Module):
    def forward(self, x):
        positive_rows = torch.zeros(x.shape[1])
        for row in x:
            if row.sum() > 0:
                positive_rows = positive_rows + row
        return positive_rows


@backends
def test_for_loops_with_run_time_trip_counts(backend):
    samples = [(torch.randn(3, 4) * scale,) for scale in (0.1, 0.3, 0.6, 1, 3)]
    check_backend(RunTimeTripCounts().eval(), samples[0], samples, backend)
    batches = [(torch.randn(batch, 4) * scale,) for batch in (1, 2, 5) for scale in (0.3, 3)]
    check_backend(RowsOfADynamicBatch().eval(), batches[0], batches, backend, dynamic=True)


def test_python_modulo_of_host_ints_takes_the_divisor_sign():
    class Modulo(nn.Module):
        def forward(self, x):
            n = int(x.sum() * 3)
            return x * (n % 4) + (n % -3)

    samples = [(torch.tensor([v]),) for v in (-2.5, -1.0, 0.0, 1.4, 2.9)]
    check_backend(Modulo().eval(), samples[0], samples, "interpreter")


class HaltingOnADynamicBatch(nn.Module):
    """ACT's halting unit: a one-output Linear on a state whose batch is dynamic, compiled
    from an example batch of 1. (The zoo's `act_rnn` compiled so wrote a batch into a
    one-item buffer; `tests/runtime/test_zoo_dynamic_batch.py`, slow, runs it at 1/3/8/32.)"""

    def __init__(self):
        super().__init__()
        self.cell = nn.Linear(8, 8)
        self.halting_unit = nn.Linear(8, 1)

    def forward(self, u):
        state = torch.zeros(u.shape[0], 8)
        halting = torch.zeros(u.shape[0])
        n = 0
        while (halting < 0.99).any() and n < 4:
            state = torch.tanh(self.cell(u + state))
            halting = halting + torch.sigmoid(self.halting_unit(state)).squeeze(1)
            n += 1
        return state * halting.unsqueeze(1)


@pytest.mark.parametrize("backend", ["interpreter", "llvm"])
def test_a_dynamic_batch_compiled_at_batch_one_runs_at_any_batch(backend):
    torch.manual_seed(0)
    model = HaltingOnADynamicBatch().eval()
    program = ft.compile(model, (torch.randn(1, 8),), backend=backend, dynamic=True, cache_dir=None)
    for batch in (1, 3, 8):
        u = torch.randn(batch, 8)
        with torch.no_grad():
            torch.testing.assert_close(program(u), model(u))


class RunTimeSlicesAndSplits(nn.Module):
    """Slices whose bounds are ints of data (`x[i:i + 1]` at the argmax row, a window that
    starts before row 0 when the argmax is row 0) on a batch of data-dependent size, and
    `torch.split` at a data-dependent size: slices at a run-time start, split into slices
    (torch-mlir could import neither)."""

    def forward(self, x):
        kept = x[x[:, 1] > 0]
        if kept.shape[0] == 0:
            return x[:1] * 0, x.sum(0)
        best = int(torch.argmax(kept[:, 0]))
        row = kept[best:best + 1] * 2 + kept[best - 1:best].sum()
        count = int((x[:, 2] > 0).sum())
        first, rest = torch.split(x, [count, x.shape[0] - count])
        return row, first.sum(0) - rest.sum(0)


@backends
def test_slices_at_run_time_bounds_and_splits_at_run_time_sizes(backend):
    samples = []
    for seed in range(8):
        x = torch.randn(6, 4, generator=torch.Generator().manual_seed(seed))
        if seed == 0:
            x[:, 1] = -1.0  # nothing kept
        if seed in (1, 2):
            x[:, 1], x[0, 0] = 1.0, 9.0  # the best row is row 0: the window starts at -1
        samples.append((x,))
    check_backend(RunTimeSlicesAndSplits().eval(), samples[3], samples, backend)


def test_split_sizes_that_miss_the_dimension_raise_as_eager_does():
    class BadSplit(nn.Module):
        def forward(self, x):
            count = int((x[:, 0] > 0).sum())
            first, rest = torch.split(x, [count, 2])
            return first.sum() + rest.sum()

    x = torch.randn(5, 3)
    x[:3, 0] = 1.0
    program = ft.compile(BadSplit().eval(), (x,), backend="interpreter")
    x[:, 0] = 1.0
    with pytest.raises(Exception):
        BadSplit()(x)
    with pytest.raises(Exception, match="[Rr]untime assertion failed"):
        program(x)
