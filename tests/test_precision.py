"""precision.py and COURSE_PRECISION: which number format the course runs in, and the guard
around PyTorch's private CPU probes."""
import pytest
import torch

from course_utils import precision, settings

CPU = torch.device("cpu")


def native() -> bool:
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def test_auto_follows_the_cpu(monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "auto")
    assert precision.cpu_has_native_bf16() == native()
    assert precision.autocast_dtype(CPU) == (torch.bfloat16 if native() else None)
    assert precision.autocast_dtype(torch.device("mps")) is None
    monkeypatch.delenv("COURSE_PRECISION")
    assert settings.precision() == "auto"


@pytest.mark.parametrize("value, expected", [("float32", None), (" Float32 ", None), ("bfloat16", torch.bfloat16)])
def test_forced(monkeypatch, value, expected):
    monkeypatch.setenv("COURSE_PRECISION", value)
    assert precision.autocast_dtype(CPU) == expected  # bfloat16 is forced even where it is emulated
    if expected is None:
        assert precision.autocast_dtype(torch.device("mps")) is None


def test_bad_values_say_what_to_use(monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "fp16")
    with pytest.raises(ValueError, match="COURSE_PRECISION='fp16' is not understood: use one of auto, float32, bfloat16"):
        precision.autocast_dtype(CPU)
    monkeypatch.setenv("COURSE_PRECISION", "bfloat16")
    with pytest.raises(ValueError, match="not supported on mps"):
        precision.autocast_dtype(torch.device("mps"))


@pytest.mark.parametrize("missing", ["_is_avx512_bf16_supported", "_is_amx_tile_supported"])
def test_a_pytorch_without_the_private_probes_falls_back_to_float32(monkeypatch, missing):
    monkeypatch.setenv("COURSE_PRECISION", "auto")
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    with pytest.warns(RuntimeWarning, match=f"torch.cpu.{missing} is missing or failed.*float32"):
        assert precision.autocast_dtype(CPU) is None
    with pytest.warns(RuntimeWarning):
        assert "AVX-512-BF16 no, AMX no" in precision.cpu_features()


def test_a_failing_probe_falls_back_too(monkeypatch):
    monkeypatch.setenv("COURSE_PRECISION", "auto")

    def broken():
        raise RuntimeError("cpuinfo unavailable")
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", broken)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", broken)
    with pytest.warns(RuntimeWarning):
        assert precision.autocast_dtype(CPU) is None


@pytest.mark.parametrize("value", ["auto", "float32", "bfloat16"])
def test_describe_names_the_path_and_the_cpu(monkeypatch, value):
    monkeypatch.setenv("COURSE_PRECISION", value)
    line = precision.describe(CPU)
    path = "float32" if precision.autocast_dtype(CPU) is None else "bfloat16 autocast"
    assert line.startswith(f"{path} on cpu (COURSE_PRECISION={value}; CPU: ")
    assert "AVX-512-BF16 " in line and "AMX " in line and torch.backends.cpu.get_cpu_capability() in line
