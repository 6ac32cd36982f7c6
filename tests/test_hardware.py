"""The precision rule: bfloat16 by default only on CPUs that compute it in hardware."""

import pytest

from keras_recipes.hardware import (
    cpu_features,
    default_compute_dtype,
    has_fast_int8,
    parse_cpu_flags,
    resolve_precision,
)

# Flag sets of real CPUs, as /proc/cpuinfo lists them (abridged).
SKYLAKE_XEON = {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"}  # this issue's
CASCADE_LAKE = SKYLAKE_XEON | {"avx512_vnni"}
COOPER_LAKE = CASCADE_LAKE | {"avx512_bf16"}
SAPPHIRE_RAPIDS = COOPER_LAKE | {"amx_tile", "amx_bf16", "amx_int8", "avx512_fp16"}
ZEN3 = {"sse4_2", "avx", "avx2", "fma"}
GRAVITON3 = {"fp", "asimd", "sve", "bf16", "i8mm"}  # ARM: not the x86 flags this rule knows

CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU @ 2.00GHz
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl
bogomips\t: 4000.00

processor\t: 1
flags\t\t: fpu sse4_2 avx avx2 fma avx512f avx512bw avx512vl
"""


def test_flags_are_read_from_the_first_processor():
    assert parse_cpu_flags(CPUINFO) == frozenset(
        {"fpu", "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl"}
    )
    assert parse_cpu_flags("") == frozenset()


@pytest.mark.parametrize(
    "flags, dtype",
    [
        (SKYLAKE_XEON, "float32"),
        (CASCADE_LAKE, "float32"),  # VNNI speeds up int8, not bfloat16
        (ZEN3, "float32"),
        (GRAVITON3, "float32"),
        (set(), "float32"),  # nothing known (no /proc/cpuinfo): nothing risked
        (COOPER_LAKE, "bfloat16"),
        (SAPPHIRE_RAPIDS, "bfloat16"),
        ({"amx_bf16"}, "bfloat16"),
    ],
)
def test_bfloat16_is_the_default_only_with_avx512_bf16_or_amx(flags, dtype):
    assert default_compute_dtype(flags) == dtype
    precision = "mixed_bfloat16" if dtype == "bfloat16" else "float32"
    assert resolve_precision("auto", flags) == precision


def test_the_user_can_force_either_precision_on_any_cpu():
    for flags in (SKYLAKE_XEON, SAPPHIRE_RAPIDS):
        assert resolve_precision("float32", flags) == "float32"
        assert resolve_precision("mixed_bfloat16", flags) == "mixed_bfloat16"


def test_an_unknown_precision_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto.*float32.*mixed_bfloat16.*'float16'"):
        resolve_precision("float16", SKYLAKE_XEON)


def test_int8_dot_products_need_vnni_or_amx():
    assert not has_fast_int8(SKYLAKE_XEON)
    assert (
        has_fast_int8(CASCADE_LAKE) and has_fast_int8({"avx_vnni"}) and has_fast_int8({"amx_int8"})
    )


def test_this_machine_is_read_once_and_agrees_with_the_rule():
    flags = cpu_features()
    assert cpu_features() is flags  # cached
    assert default_compute_dtype() == default_compute_dtype(flags)


def test_training_precision_defaults_to_the_cpus_choice(monkeypatch):
    from keras_recipes import hardware
    from keras_recipes.llama import train

    for flags, expected in ((SKYLAKE_XEON, "float32"), (SAPPHIRE_RAPIDS, "mixed_bfloat16")):
        monkeypatch.setattr(
            train, "resolve_precision", lambda p, f=flags: hardware.resolve_precision(p, f)
        )
        assert train.training_settings(quick=True)["precision"] == expected
        assert train.training_settings(precision="float32")["precision"] == "float32"
