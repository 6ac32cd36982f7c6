"""The conditions a benchmark ran under, printed beside its ratios.

A speed ratio means little without the machine behind it: the CPU model,
whether it has the instructions the fast paths use (AVX512-BF16 and AMX for
bfloat16 matmuls, VNNI for int8 dot products), the cores the process may run
on, the thread settings, and how loaded the machine was. Every benchmark
prints `describe_conditions()` before its figures and again (or at least the
load average) after them, and stores the dict in its JSON.

    from conditions import describe_conditions, print_conditions

    before = print_conditions(threads={"intra_op": 1, "litert": 1})
    ...  # measure
    after = print_conditions(label="after")
"""

from __future__ import annotations

import os
import platform

from keras_recipes.hardware import cpu_features, cpu_model

# The /proc/cpuinfo flags that decide which kernels oneDNN, XLA and XNNPACK
# pick for float32 / bfloat16 / int8 matmuls.
RELEVANT_FLAGS = (
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512vl",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
)

# Environment variables that change thread counts or kernel choice.
THREAD_ENVIRONMENT = (
    "OMP_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "XLA_FLAGS",
    "ONEDNN_MAX_CPU_ISA",
)


def describe_conditions(threads: dict | None = None) -> dict:
    """The machine and its state now, as a JSON-ready dict.

    Args:
        threads: the thread settings the benchmark itself chose (e.g.
            `{"tf_intra_op": 1, "litert": 1}`); stored as given.

    Returns:
        `cpu_model`, `cpu_flags` (each of `RELEVANT_FLAGS` -> bool), `cpus`
        (how many the machine has), `affinity` (the cores this process may
        run on, e.g. what `taskset -c 1` left), `threads`, `environment`
        (the thread-related variables that are set), `load_average`
        (1, 5, 15 min) and `python`.

    Example:

    >>> conditions = describe_conditions(threads={"litert": 1})
    >>> sorted(conditions["cpu_flags"]) == sorted(RELEVANT_FLAGS)
    True
    >>> len(conditions["load_average"])
    3
    """
    model, flags = cpu_model(), cpu_features()
    try:
        affinity = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        affinity = list(range(os.cpu_count() or 1))
    return {
        "cpu_model": model,
        "cpu_flags": {flag: flag in flags for flag in RELEVANT_FLAGS},
        "cpus": os.cpu_count(),
        "affinity": affinity,
        "threads": dict(threads or {}),
        "environment": {k: os.environ[k] for k in THREAD_ENVIRONMENT if k in os.environ},
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
    }


def _cores(affinity: list) -> str:
    if affinity and affinity == list(range(affinity[0], affinity[-1] + 1)) and len(affinity) > 1:
        return f"{affinity[0]}-{affinity[-1]}"
    return ",".join(str(core) for core in affinity)


def print_conditions(threads: dict | None = None, label: str = "conditions") -> dict:
    """Prints `describe_conditions()` in three lines and returns the dict.

    With `label="after"` (or anything but "conditions") only the load
    average is printed: the machine did not change, its load may have.
    """
    conditions = describe_conditions(threads)
    load = ", ".join(f"{x:.2f}" for x in conditions["load_average"])
    if label != "conditions":
        print(f"{label}: load average {load}")
        return conditions
    present = [flag for flag, has in conditions["cpu_flags"].items() if has]
    absent = [flag for flag, has in conditions["cpu_flags"].items() if not has]
    print(f"CPU: {conditions['cpu_model']}, {conditions['cpus']} CPUs, running on core(s) "
          f"{_cores(conditions['affinity'])}")  # fmt: skip
    print(f"  flags: {' '.join(present) or '-'}; missing: {' '.join(absent) or '-'}")
    threads = ", ".join(
        f"{k}={v}" for k, v in {**conditions["threads"], **conditions["environment"]}.items()
    )
    print(
        f"  threads: {threads or 'library defaults'}; load average {load}; python {conditions['python']}"
    )
    return conditions


if __name__ == "__main__":
    print_conditions()
