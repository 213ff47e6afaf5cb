"""Concurrent calls of one CompiledSubgraph agree with eager (thread-local descriptors)."""

import threading

import torch

from benchmarks.subgraph_bench import compile_workload, workloads


def test_concurrent_calls_of_one_kernel_agree_with_eager():
    workload = next(w for w in workloads() if w.name == "mlp_256")
    compiled = compile_workload(workload)
    failures = []

    def worker(seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        for call in range(400):
            x = torch.randn(1, 256, generator=generator)
            (result,) = compiled(x)
            if not torch.allclose(result, workload.eager(x), rtol=1e-4, atol=1e-5):
                failures.append((seed, call))

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, f"{len(failures)} of 1600 outputs differ from eager: {failures[:5]}"
