"""`python -m benchmarks.parse_bench`: how fast large programs parse and how much memory that
takes, at growing sizes (time and memory should grow linearly, with a small constant).

The programs are real: a zoo model is converted and outlined, and its sub-graphs are copied
(under new symbol names) until the text reaches each size, so the mix of ops, types and
repetition is that of a converted network. Each size is parsed in a fresh process, which
reports CPU time (less sensitive to other load than wall time; both are printed), the peak
resident memory above the process's baseline after imports, and the time of a verification
that follows.

    python -m benchmarks.parse_bench [--sizes 1,5,20,50] [--model blockdrop_resnet110]
        [--rounds 2] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import subprocess
import sys
import tempfile
import textwrap

_MEASURE = textwrap.dedent(
    """
    import json, sys, time
    from ir.program import parse_module, verify_module

    def high_water_kb():  # VmHWM: unlike ru_maxrss, not inherited from the forking parent
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM"))

    text = open(sys.argv[1], encoding="utf-8").read()
    baseline = high_water_kb()
    cpu, wall = time.process_time(), time.perf_counter()
    module = parse_module(text, sys.argv[1])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    peak = high_water_kb()
    ops = sum(1 for _ in module.walk())
    verify = time.process_time()
    verify_module(module)
    verify = time.process_time() - verify
    print(json.dumps({"cpu": cpu, "wall": wall, "peak_kb": peak - baseline, "ops": ops,
                      "verify_cpu": verify}))
    """
)


def outlined_program(model: str) -> str:
    """The outlined program of a zoo model (conversion cached as usual)."""
    import importlib

    from xdsl.dialects.builtin import StringAttr

    import frontends.torch as dynn
    from ir import dy
    from ir.program import ProgramContext, print_module
    from passes.outline_regions import OutlineRegions

    module = importlib.import_module(f"examples.dynn.{model}")
    conversion = dynn.convert(
        module.make_model().eval(), module.make_inputs(), cache_dir=dynn.api.DEFAULT_CACHE_DIR
    )
    program = conversion.module
    OutlineRegions().apply(ProgramContext(), program)
    program.attributes[dy.PARAMS_FILE_ATTR] = StringAttr("weights.safetensors")
    return print_module(program)


def program_of_size(outlined: str, megabytes: float) -> str:
    """`outlined` with its sub-graphs copied under new names until it has `megabytes`."""
    lines = outlined.splitlines(keepends=True)
    graphs, host, current = [], [], None
    for line in lines[1:-1]:
        if line.startswith("  dy.graph"):
            current = [line]
        elif current is not None:
            current.append(line)
            if line.startswith("  }"):
                graphs.append("".join(current))
                current = None
        else:
            host.append(line)
    graph_text = "".join(graphs)
    copies = max(1, round(megabytes * 1e6 / len(graph_text)))
    renamed = (re.sub(r"@(\w+_graph\d+)", rf"@copy{k}_\1", graph_text) for k in range(1, copies))
    return "".join([lines[0], graph_text, *renamed, *host, lines[-1]])


def measure(path: pathlib.Path, rounds: int) -> dict:
    """The best of `rounds` fresh-process parses of `path`."""
    runs = []
    for _ in range(rounds):
        completed = subprocess.run(
            [sys.executable, "-c", _MEASURE, str(path)],
            capture_output=True, text=True, check=True,
        )
        runs.append(json.loads(completed.stdout))
    return min(runs, key=lambda run: run["cpu"])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.parse_bench")
    parser.add_argument("--sizes", default="1,5,20,50", help="program sizes in MB")
    parser.add_argument("--model", default="blockdrop_resnet110")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args(argv)
    outlined = outlined_program(args.model)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in (float(s) for s in args.sizes.split(",")):
            path = pathlib.Path(scratch) / f"program-{size:g}MB.mlir"
            path.write_text(program_of_size(outlined, size), encoding="utf-8")
            megabytes = path.stat().st_size / 1e6
            run = measure(path, args.rounds)
            rows.append({"megabytes": megabytes, **run})
            print(_row(rows[-1]), flush=True)
    table = "\n".join([_HEADER, *(_row(row) for row in rows)])
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "parse.md").write_text(table + "\n")
    (out / "parse.json").write_text(json.dumps(rows, indent=1) + "\n")
    print(table)


_HEADER = (
    "| size (MB) | ops | parse CPU (s) | parse wall (s) | MB/s (CPU) | peak memory (MB) "
    "| memory / text | verify CPU (s) |\n|---|---|---|---|---|---|---|---|"
)


def _row(row: dict) -> str:
    peak = row["peak_kb"] / 1024
    return (
        f"| {row['megabytes']:.1f} | {row['ops']} | {row['cpu']:.2f} | {row['wall']:.2f} "
        f"| {row['megabytes'] / row['cpu']:.2f} | {peak:.0f} | {peak / row['megabytes']:.1f} "
        f"| {row['verify_cpu']:.2f} |"
    )


if __name__ == "__main__":
    main()
