"""What this CPU computes fast, and the precision that follows from it.

bfloat16 matrix products are only fast on CPUs that multiply bfloat16 in
hardware: AVX512-BF16 (Cooper Lake, Zen 4 and later) or AMX (Sapphire Rapids
and later). Elsewhere oneDNN and XLA convert to float32 and back, and mixed
bfloat16 training runs *slower* than float32 (README's Performance section
has the figures of `benchmarks/llama_bench.py --skip-decode --train-modes
fp32 bf16` on CPUs with and without BF16). Int8 dot
products likewise need VNNI (AVX512-VNNI, AVX-VNNI) or AMX-INT8.

`peak_float32_flops(flags, mhz)` estimates one core's float32 peak from the
flags and the clock, the denominator of model FLOP utilisation (MFU) that
`benchmarks/llama_bench.py` prints.

`cpu_features()` reads the flags once from `/proc/cpuinfo`;
`default_compute_dtype(flags)` picks `"bfloat16"` only where the flags say
it is fast, and every function takes the flags as an argument, so the rule
is testable without the CPU it describes.
"""

from __future__ import annotations

import functools
import platform

BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
COMPUTE_DTYPES = ("float32", "bfloat16")


def parse_cpu_flags(cpuinfo: str) -> frozenset:
    """The flags of the first processor listed in a `/proc/cpuinfo` text.

    Examples:

    >>> sorted(parse_cpu_flags("processor : 0\\nflags : fpu avx2 avx512_bf16\\n"))
    ['avx2', 'avx512_bf16', 'fpu']
    """
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, ARM
            return frozenset(value.split())
    return frozenset()


def parse_cpu_model(cpuinfo: str) -> str | None:
    """The model name of the first processor listed in a `/proc/cpuinfo` text.

    Examples:

    >>> parse_cpu_model("processor : 0\\nmodel name : Intel(R) Xeon(R) Processor\\n")
    'Intel(R) Xeon(R) Processor'
    """
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            return value.strip()
    return None


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """This machine's CPU model name (`/proc/cpuinfo`), else what `platform` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            model = parse_cpu_model(info.read())
    except OSError:
        model = None
    return model or platform.processor() or "unknown CPU"


@functools.lru_cache(maxsize=1)
def cpu_features() -> frozenset:
    """This machine's CPU flags (`/proc/cpuinfo`), or an empty set where there is none.

    An empty set (macOS, Windows, a sandbox hiding `/proc`) means "nothing
    known to be fast", so every default stays float32.
    """
    try:
        with open("/proc/cpuinfo") as info:
            return parse_cpu_flags(info.read())
    except OSError:
        return frozenset()


def has_fast_bfloat16(flags=None) -> bool:
    """Whether the CPU multiplies bfloat16 in hardware (AVX512-BF16 or AMX-BF16)."""
    flags = cpu_features() if flags is None else flags
    return any(flag in flags for flag in BFLOAT16_FLAGS)


def has_fast_int8(flags=None) -> bool:
    """Whether the CPU has int8 dot-product instructions (VNNI or AMX-INT8)."""
    flags = cpu_features() if flags is None else flags
    return any(flag in flags for flag in INT8_FLAGS)


def default_compute_dtype(flags=None) -> str:
    """`"bfloat16"` where the CPU computes it in hardware, else `"float32"`.

    Args:
        flags: a set of `/proc/cpuinfo` flag names; default: this machine's
            (`cpu_features()`).

    Examples:

    >>> default_compute_dtype({"avx2", "avx512f"})
    'float32'
    >>> default_compute_dtype({"avx512f", "avx512_bf16"})
    'bfloat16'
    >>> default_compute_dtype({"amx_tile", "amx_bf16"})
    'bfloat16'
    """
    return "bfloat16" if has_fast_bfloat16(flags) else "float32"


def resolve_precision(precision: str, flags=None) -> str:
    """A training precision with `"auto"` resolved: `"mixed_bfloat16"` or `"float32"`.

    `"auto"` is `"mixed_bfloat16"` where `default_compute_dtype(flags)` is
    bfloat16, else `"float32"`; the two explicit names come back as given,
    so a user can force either on any CPU.

    Examples:

    >>> resolve_precision("auto", {"avx512f"})
    'float32'
    >>> resolve_precision("auto", {"avx512_bf16"})
    'mixed_bfloat16'
    >>> resolve_precision("mixed_bfloat16", {"avx512f"})
    'mixed_bfloat16'
    """
    choices = ("auto", "float32", "mixed_bfloat16")
    if precision not in choices:
        raise ValueError(f"precision must be one of {choices}; received {precision!r}.")
    if precision != "auto":
        return precision
    return "mixed_bfloat16" if default_compute_dtype(flags) == "bfloat16" else "float32"


def parse_cpu_mhz(cpuinfo: str) -> float | None:
    """The highest `cpu MHz` a `/proc/cpuinfo` text lists (the clock now, per core).

    Examples:

    >>> parse_cpu_mhz("processor : 0\\ncpu MHz : 2596.1\\nprocessor : 1\\ncpu MHz : 3100.0\\n")
    3100.0
    """
    found = [
        float(value)
        for key, _, value in (line.partition(":") for line in cpuinfo.splitlines())
        if key.strip() == "cpu MHz" and value.strip()
    ]
    return max(found) if found else None


@functools.lru_cache(maxsize=1)
def cpu_mhz() -> float | None:
    """This machine's clock in MHz as `/proc/cpuinfo` reports it, or None."""
    try:
        with open("/proc/cpuinfo") as info:
            return parse_cpu_mhz(info.read())
    except OSError:
        return None


def peak_float32_flops(flags=None, mhz: float | None = None) -> tuple[float, str]:
    """One core's float32 peak in FLOP/s, estimated from its flags and clock, and how.

    Two fused multiply-add pipes a cycle, each as wide as the widest vector
    the flags offer: 16 float32 lanes with AVX-512, 8 with AVX2/FMA, 4 with
    SSE; a multiply-add counts 2 FLOPs. That is the peak of Intel's server
    cores and AMD Zen 5; cores with one AVX-512 pipe (some Xeon Silver/Bronze)
    or AVX-512 split in two 256-bit halves (Zen 4) reach half of it, which
    their flags do not tell apart: read an MFU on those as a lower bound.

    Args:
        flags: `/proc/cpuinfo` flag names; default this machine's.
        mhz: the clock; default this machine's `cpu MHz` (what a VM reports
            may be the nominal clock, not a turbo one).

    Returns:
        `(flops_per_second, explanation)`; 0.0 when the clock is unknown.

    Examples:

    >>> peak_float32_flops({"avx2", "fma"}, 3000.0)[0] / 1e9
    96.0
    >>> peak_float32_flops({"avx2", "fma", "avx512f"}, 2000.0)
    (128000000000.0, '2 FMA pipes x 16 float32 lanes x 2 FLOPs x 2000 MHz (avx512f)')
    """
    flags = cpu_features() if flags is None else flags
    mhz = cpu_mhz() if mhz is None else mhz
    if "avx512f" in flags:
        lanes, isa = 16, "avx512f"
    elif "fma" in flags and "avx2" in flags:
        lanes, isa = 8, "avx2+fma"
    else:
        lanes, isa = 4, "sse"
    if not mhz:
        return 0.0, f"clock unknown ({isa})"
    how = f"2 FMA pipes x {lanes} float32 lanes x 2 FLOPs x {mhz:.0f} MHz ({isa})"
    return 2 * lanes * 2 * mhz * 1e6, how
