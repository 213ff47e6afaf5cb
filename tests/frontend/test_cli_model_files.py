"""`python -m frontends.torch` on model files that fail in the user's own code: what they
raise (exceptions, sys.exit(), Ctrl-C) is reported as the user's error at the line of the
model file, never as an internal error, a traceback or an escaped exit; a model that is a
bare library module gets a message saying what to do."""

from __future__ import annotations

import itertools
import textwrap

import pytest

from frontends.torch.__main__ import main

_NAMES = itertools.count()

CASES = {
    "make_model_raises": (
        """
        import torch
        def helper():
            raise ValueError("bad config")
        def make_model():
            return helper()
        def make_inputs():
            return (torch.randn(1, 3),)
        """,
        ":3: error: make_model() raised ValueError: bad config",
    ),
    "make_inputs_raises_in_torch": (
        """
        import torch
        from torch import nn
        class M(nn.Module):
            def forward(self, x):
                return x * 2
        def make_model():
            return M()
        def make_inputs():
            return (torch.randn(2, 3) @ torch.randn(4, 5),)
        """,
        ":9: error: make_inputs() raised RuntimeError: mat1 and mat2 shapes cannot be multiplied",
    ),
    "sys_exit_at_import": (
        "import sys\nsys.exit(3)\n",
        ":2: error: importing it called sys.exit(3)",
    ),
    "ctrl_c_at_import": ("raise KeyboardInterrupt\n", ":1: error: importing it was interrupted"),
    "sys_exit_in_make_model": (
        """
        import sys
        def make_model():
            sys.exit("no")
        def make_inputs():
            return ()
        """,
        ":3: error: make_model() called sys.exit('no')",
    ),
    "bare_sequential": (
        """
        import torch
        from torch import nn
        def make_model():
            return nn.Sequential(nn.Linear(3, 4), nn.ReLU())
        def make_inputs():
            return (torch.randn(2, 3),)
        """,
        ":3: error: the model is a torch.nn.modules.container.Sequential, a library module",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_failure_in_the_users_code_is_their_located_error(tmp_path, capsys, name):
    source, expected = CASES[name]
    path = tmp_path / f"model_file_{next(_NAMES)}.py"
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    code = main([str(path), "-o", str(tmp_path / "out.mlir")])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"{path}{expected}"), err
    assert "internal" not in err
