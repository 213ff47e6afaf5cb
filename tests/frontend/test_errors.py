"""What the frontend refuses: one clear `FILE:LINE: unsupported: ...` diagnostic, from the
Python API as `UnsupportedError` and from the CLI as one line on stderr with exit code 1."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from frontends.torch import UnsupportedError, convert

THIS_FILE = inspect.getsourcefile(sys.modules[__name__])


def line_of(model_class: type, text: str) -> int:
    lines, first = inspect.getsourcelines(model_class)
    return first + next(i for i, line in enumerate(lines) if text in line)


class ReadsConflictingShapes(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            y = x[:, :2]
        else:
            y = x.sum(1)
        return y * 2  # y has two shapes


class RaisesOnData(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            raise ValueError("positive")
        return x


class ToNumpy(nn.Module):
    def forward(self, x):
        return torch.from_numpy(x.numpy()) + 1  # numpy


class GrowingLoopState(nn.Module):
    def forward(self, x):
        while x.sum() < 10:
            x = x.unsqueeze(0)  # grows
        return x


class MutatesAttribute(nn.Module):
    def forward(self, x):
        self.last = x  # attribute
        return x


class ReturnThroughFinally(nn.Module):
    def forward(self, x):
        try:  # try
            return x + 1
        finally:
            print("done")


@pytest.mark.parametrize(
    ("model_class", "marker", "pattern"),
    [
        (
            ReadsConflictingShapes,
            "y has two shapes",
            r"use of 'y': it is a tensor of type .*\[1,2\].* on one path and .*\[1\].*",
        ),
        (RaisesOnData, "raise ValueError", r"raise: the model raises an exception"),
        (ToNumpy, "numpy", r"\.numpy\(\): turns tensor data into Python values"),
        (GrowingLoopState, "while x.sum()", r"while: the loop-carried value 'x' changes type"),
        (MutatesAttribute, "attribute", r"assignment: assigning to Attribute"),
        (ReturnThroughFinally, "try", r"try: a return, break or continue that leaves through"),
    ],
)
def test_unsupported_construct_is_reported_at_its_line(model_class, marker, pattern):
    with pytest.raises(UnsupportedError) as caught:
        convert(model_class(), (torch.randn(1, 4),))
    message = str(caught.value)
    assert message.startswith(f"{THIS_FILE}:{line_of(model_class, marker)}: unsupported: ")
    assert re.search(pattern, message), message
    assert "\n" not in message


def run_cli(*arguments: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "frontends.torch", *arguments],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
        check=False,
    )


def write(path, text: str):
    path.write_text(textwrap.dedent(text))
    return path


def test_cli_rejects_a_file_that_is_not_python(tmp_path):
    model = write(tmp_path / "notes.py", "this is not python at all\n")
    result = run_cli(str(model))
    assert result.returncode == 1
    assert result.stderr.strip() == f"{model}:1: error: not valid Python: invalid syntax"
    assert result.stdout == ""


def test_cli_rejects_a_file_without_the_functions(tmp_path):
    model = write(tmp_path / "empty.py", "import torch\n")
    result = run_cli(str(model))
    assert result.returncode == 1
    assert result.stderr.strip() == (f"{model}: error: defines no make_model() (or pass --class)")


def test_cli_reports_an_unsupported_construct_in_one_line(tmp_path):
    model = write(
        tmp_path / "bad.py",
        """\
        import torch
        from torch import nn

        class Bad(nn.Module):
            def forward(self, x):
                while x.sum() < 10:
                    x = x.unsqueeze(0)
                return x

        def make_model():
            return Bad()

        def make_inputs():
            return (torch.ones(1, 2),)
        """,
    )
    result = run_cli(str(model))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"{model}:6: unsupported: while: ")


def test_cli_class_and_input_shape_without_make_functions(tmp_path):
    model = write(
        tmp_path / "plain.py",
        """\
        import torch
        from torch import nn

        class Gate(nn.Module):
            def __init__(self):
                super().__init__()
                self.linear = nn.Linear(3, 3)

            def forward(self, x):
                if self.linear(x).sum() > 0:
                    return x
                return -x
        """,
    )
    output = tmp_path / "gate.mlir"
    result = run_cli(str(model), "--class", "Gate", "--input-shape", "2x3:f32", "-o", str(output))
    assert result.returncode == 0, result.stderr
    text = output.read_text()
    assert 'dy.params = "gate.safetensors"' in text
    assert "dy.if" in text and (tmp_path / "gate.safetensors").is_file()
