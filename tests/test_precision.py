import pytest

import infogan
from utils import cpu_has_bf16_matmul, resolve_precision


def test_auto_precision_follows_the_hardware():
    assert resolve_precision("auto", [(9, 0)]) == "mixed_bfloat16"  # H100/H200
    assert resolve_precision("auto", [(7, 5)]) == "float32"  # T4: no bf16 tensor cores
    assert resolve_precision("auto", [], cpu_bf16=True) == "mixed_bfloat16"
    assert resolve_precision("auto", [], cpu_bf16=False) == "float32"
    assert resolve_precision("float32", [(9, 0)]) == "float32"  # an explicit choice wins


def test_unknown_precision_is_a_one_line_error():
    with pytest.raises(SystemExit) as exit_info:
        infogan.parse_config(["--precision", "float16"])
    assert exit_info.value.code == 2  # argparse's own one-line usage error


def test_cpu_bf16_flag_is_read_from_cpuinfo(tmp_path):
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("flags\t\t: fpu avx2 avx512f avx512_bf16 fma\n")
    without = tmp_path / "plain"
    without.write_text("flags\t\t: fpu avx2 avx512f fma\n")
    assert cpu_has_bf16_matmul(str(with_bf16))
    assert not cpu_has_bf16_matmul(str(without))
    assert not cpu_has_bf16_matmul(str(tmp_path / "missing"))
