"""Which number format the course trains and runs models in, and why.

    COURSE_PRECISION=auto       (default) bfloat16 autocast where the hardware computes it natively,
                                float32 elsewhere; see `autocast_dtype`
    COURSE_PRECISION=float32    plain float32 everywhere: what most laptops get under `auto`
    COURSE_PRECISION=bfloat16   bfloat16 autocast on any CPU (slow where it is emulated) or CUDA GPU

Under `auto`, a CPU with AVX-512-BF16 or AMX (recent Xeon, AMD Zen 4/5) trains under bfloat16
autocast, about 1.5-2x faster per step than float32 there. A CPU without them (most laptops:
Intel Core without AVX-512, AMD Zen 2/3, Apple CPUs) runs in float32: bfloat16 would be emulated
and slower. CUDA: bfloat16 where the GPU supports it, else float16 (with gradient scaling). Apple
GPUs (MPS): float32. The two paths give slightly different numbers; CI runs both.
"""
from __future__ import annotations

import platform
import warnings
from pathlib import Path

import torch

from . import settings

# PyTorch's own (private) probes of the CPU. A PyTorch that renames them gets float32 and a warning.
_PROBES = {"AVX-512-BF16": "_is_avx512_bf16_supported", "AMX": "_is_amx_tile_supported"}


def _probe(feature: str) -> bool:
    probe = getattr(torch.cpu, _PROBES[feature], None)
    try:
        return bool(probe())
    except Exception:  # missing (None is not callable) or failing: treat the feature as absent
        warnings.warn(f"This PyTorch ({torch.__version__}) cannot tell whether the CPU has {feature} "
                      f"(torch.cpu.{_PROBES[feature]} is missing or failed): the course uses float32 on the CPU.",
                      RuntimeWarning, stacklevel=3)
        return False


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX-512-BF16 or AMX)."""
    return _probe("AVX-512-BF16") or _probe("AMX")


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision type to run on `device` (COURSE_PRECISION, see the module), or None for float32."""
    chosen = settings.precision()
    if chosen == "float32":
        return None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16
        if chosen == "bfloat16":
            raise ValueError(f"COURSE_PRECISION=bfloat16, but {torch.cuda.get_device_name(device)} does not "
                             f"support bfloat16: use COURSE_PRECISION=auto (float16) or float32.")
        return torch.float16
    if device.type == "cpu":
        return torch.bfloat16 if chosen == "bfloat16" or cpu_has_native_bf16() else None
    if chosen == "bfloat16":
        raise ValueError(f"COURSE_PRECISION=bfloat16 is not supported on {device.type}: "
                         f"use COURSE_PRECISION=auto or float32.")
    return None


def cpu_name() -> str:
    """The processor's model name, as the operating system reports it."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_features() -> str:
    """The CPU's features that decide speed and precision, in one line."""
    native = {feature: _probe(feature) for feature in _PROBES}
    flags = ", ".join(f"{feature} {'yes' if ok else 'no'}" for feature, ok in native.items())
    return f"{cpu_name()}; PyTorch kernels: {torch.backends.cpu.get_cpu_capability()}; {flags}"


def describe(device: torch.device) -> str:
    """The precision path on `device` and why, in one line, e.g. for a timing:
    'bfloat16 autocast on cpu (COURSE_PRECISION=auto; CPU: ...; AVX-512-BF16 yes, AMX yes)'."""
    dtype = autocast_dtype(device)
    path = "float32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"
    where = f"CPU: {cpu_features()}" if device.type == "cpu" else (
        torch.cuda.get_device_name(device) if device.type == "cuda" else device.type)
    return f"{path} on {device.type} (COURSE_PRECISION={settings.precision()}; {where})"
