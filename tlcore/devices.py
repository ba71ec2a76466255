"""Which device trains, which numeric precisions it supports, in words for people (no TensorFlow here).

TensorFlow puts work on a GPU whenever it sees one; `tlcore.tf.devices`
reads what it sees into a `DeviceReport`. This module holds the facts and the
decisions that need no TensorFlow: which Keras dtype policy each device runs
at full speed (`DeviceReport.precisions`), and which devices several-GPU
training mirrors over (`forced_devices`).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tlcore import environment
from tlcore.environment import DEVICES_ENV
from tlcore.jsontypes import JSONObject

FLOAT32, MIXED_FLOAT16, MIXED_BFLOAT16 = "float32", "mixed_float16", "mixed_bfloat16"
PRECISIONS = (FLOAT32, MIXED_FLOAT16, MIXED_BFLOAT16)
# In words, for people choosing one (short: a narrow select box shows them; its help says the rest).
PRECISION_NAMES = {FLOAT32: "float32", MIXED_FLOAT16: "mixed float16", MIXED_BFLOAT16: "mixed bfloat16"}
# In a table's few characters.
PRECISION_SHORT = {FLOAT32: "float32", MIXED_FLOAT16: "mixed fp16", MIXED_BFLOAT16: "mixed bf16"}
FLOAT16_MIN_CAPABILITY = (7, 0)  # tensor cores (Volta)
BFLOAT16_MIN_CAPABILITY = (8, 0)  # bfloat16 tensor cores (Ampere)
# /proc/cpuinfo flags of a CPU that computes bfloat16 natively, and their names for people.
CPU_BFLOAT16_FLAGS = {"avx512_bf16": "AVX-512 BF16", "amx_bf16": "AMX"}
# The vector features TensorFlow's kernels choose between (/proc/cpuinfo flag names).
VECTOR_FLAG_PREFIXES = ("sse4", "avx", "fma", "f16c", "amx")


@dataclass(frozen=True)
class CpuFacts:
    """The CPU as /proc/cpuinfo describes it."""

    model_name: str = ""
    cores: int = 0
    family_model: str = "?/?"  # e.g. family 25 = AMD Zen 3/4, 26 = Zen 5
    mhz: float | None = None  # the median clock the kernel reports
    vector_flags: tuple[str, ...] = ()

    @property
    def bfloat16(self) -> bool:
        """Whether it has bfloat16 instructions (AVX-512 BF16 or AMX)."""
        return any(flag in self.vector_flags for flag in CPU_BFLOAT16_FLAGS)


@dataclass(frozen=True)
class GpuFacts:
    """One GPU as TensorFlow sees it."""

    name: str  # e.g. "NVIDIA H200"; TensorFlow's device name ("/physical_device:GPU:0") when it gives none
    compute_capability: tuple[int, int] | None = None

    def supports(self, precision: str) -> bool:
        """Whether this GPU runs `precision` at full speed (see `DeviceReport.precisions`)."""
        if precision == FLOAT32:
            return True
        need = BFLOAT16_MIN_CAPABILITY if precision == MIXED_BFLOAT16 else FLOAT16_MIN_CAPABILITY
        return self.compute_capability is not None and tuple(self.compute_capability) >= need

    @property
    def label(self) -> str:
        if self.compute_capability is None:
            return self.name
        major, minor = self.compute_capability
        return f"{self.name} (compute capability {major}.{minor})"


@dataclass(frozen=True)
class DeviceReport:
    """The devices TensorFlow trains on: the GPUs it sees (if any) and the CPU."""

    cpu: CpuFacts = field(default_factory=CpuFacts)
    gpus: tuple[GpuFacts, ...] = ()
    source: str = "tensorflow"  # tensorflow | nvidia-smi (a look without TensorFlow, before it is loaded)

    @property
    def kind(self) -> str:
        return "GPU" if self.gpus else "CPU"

    def precisions(self) -> tuple[str, ...]:
        """The precisions training may choose on this device, float32 first.

        Precisions are Keras dtype policies. "float32" runs everywhere.
        "mixed_float16" computes in float16 with float32 weights and loss scaling:
        only on an NVIDIA GPU with tensor cores (compute capability 7.0 or more);
        float16 on a CPU is emulated and slower than float32, and an older GPU gains
        nothing. "mixed_bfloat16" computes in bfloat16 (float32's range, so no loss
        scaling): on a GPU of compute capability 8.0 or more (Ampere, Hopper), or on
        a CPU with bfloat16 instructions (AVX-512 BF16 or AMX), where oneDNN runs
        VGG16's convolutions about twice as fast; a CPU without them would emulate it.
        """
        if self.gpus:
            return tuple(p for p in PRECISIONS if all(gpu.supports(p) for gpu in self.gpus))
        return (FLOAT32, MIXED_BFLOAT16) if self.cpu.bfloat16 else (FLOAT32,)

    def fastest_precision(self) -> str:
        """The precision that trains fastest here: the last of `precisions` (a mixed one where the device
        computes it natively, else float32)."""
        return self.precisions()[-1]

    def why_not(self, precision: str) -> str:
        """Why `precision` is not offered here ("" when it is), in a sentence people can act on."""
        if precision in self.precisions():
            return ""
        if precision == MIXED_FLOAT16:
            if not self.gpus:
                return "mixed_float16 needs an NVIDIA GPU (float16 on a CPU is slower than float32)."
            return "mixed_float16 needs a GPU with tensor cores (compute capability 7.0 or more)."
        if precision == MIXED_BFLOAT16:
            if not self.gpus:
                return "mixed_bfloat16 needs a CPU with bfloat16 instructions (AVX-512 BF16 or AMX); this one has none."
            return "mixed_bfloat16 needs a GPU of compute capability 8.0 or more (Ampere or newer)."
        return f"precision must be one of {PRECISIONS}. Received: precision={precision!r}"

    def describe(self) -> str:
        """One line for people: what trains here."""
        if self.gpus:
            names = sorted({gpu.label for gpu in self.gpus})
            count = f"{len(self.gpus)} GPUs: " if len(self.gpus) > 1 else "GPU: "
            return count + ", ".join(names)
        cpu = self.cpu
        extras = [f"{cpu.cores} cores"] if cpu.cores else []
        names = [name for flag, name in CPU_BFLOAT16_FLAGS.items() if flag in cpu.vector_flags]
        extras.append(f"bfloat16 instructions: {' and '.join(names)}" if names else "no bfloat16 instructions")
        return f"CPU: {cpu.model_name or 'unknown model'} ({', '.join(extras)}); no GPU found"

    def to_dict(self) -> JSONObject:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeviceReport:
        cpu = dict(data.get("cpu") or {})
        cpu["vector_flags"] = tuple(cpu.get("vector_flags", ()))
        gpus = tuple(GpuFacts(g["name"], parse_capability(g.get("compute_capability"))) for g in data.get("gpus") or ())
        return cls(CpuFacts(**cpu), gpus, data.get("source", "tensorflow"))


def training_device(report: DeviceReport, replicas: int = 1) -> str:
    """What trained a run, for its record: the device in words, and the replicas when several trained together."""
    if replicas > 1:
        return f"{report.describe()} · {replicas} replicas (MirroredStrategy)"
    if len(report.gpus) > 1:
        return f"GPU: {report.gpus[0].label} (1 of {len(report.gpus)})"
    return report.describe()


def device_headline(device: str | None) -> str:
    """A run's device in a few words for a table: "GPU: NVIDIA H200", "CPU: AMD EPYC"; "" when none.

    `device` is what `training_device` wrote: its text up to the first parenthesis or semicolon.
    """
    if not device:
        return ""
    return device.split("(", 1)[0].split(";", 1)[0].strip()


def read_cpu(cpuinfo: Path = Path("/proc/cpuinfo")) -> CpuFacts:
    """The CPU's model, cores, clock and vector features from /proc/cpuinfo (what a platform call gives elsewhere)."""
    model, mhz, family_model = "", [], {}
    flags: set[str] = set()
    try:
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "model name" and not model:
                model = value.strip()
            elif key == "cpu MHz":
                mhz.append(float(value))
            elif key in ("cpu family", "model") and key not in family_model:
                family_model[key] = value.strip()
            elif key == "flags" and not flags:
                flags = {flag for flag in value.split() if flag.startswith(VECTOR_FLAG_PREFIXES)}
    except (OSError, ValueError):
        pass
    mhz.sort()
    return CpuFacts(
        model_name=model or platform.processor(),
        cores=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0),
        family_model=f"{family_model.get('cpu family', '?')}/{family_model.get('model', '?')}",
        mhz=round(mhz[len(mhz) // 2], 1) if mhz else None,
        vector_flags=tuple(sorted(flags)),
    )


def nvidia_smi_gpus(timeout_s: float = 5.0) -> tuple[GpuFacts, ...]:
    """The GPUs the NVIDIA driver lists, without TensorFlow (none when there is no driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return ()
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name,compute_cap", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    return tuple(gpu for line in out.splitlines() if (gpu := _smi_gpu(line)) is not None)


def _smi_gpu(line: str) -> GpuFacts | None:
    name, _, capability = (part.strip() for part in line.partition(","))
    if not name:
        return None
    return GpuFacts(name, parse_capability(capability))


def parse_capability(value: str | Sequence[int] | None) -> tuple[int, int] | None:
    """'8.0', (8, 0) or [8, 0] (as JSON keeps it) -> (8, 0); None when it is not a capability."""
    if value is None:
        return None
    if not isinstance(value, str):
        return (int(value[0]), int(value[1])) if len(value) == 2 else None
    major, _, minor = value.strip().partition(".")
    return (int(major), int(minor or 0)) if major.isdigit() and (minor or "0").isdigit() else None


def report_without_tensorflow() -> DeviceReport:
    """The devices as the operating system lists them: what TensorFlow will find if its GPU build is installed."""
    return DeviceReport(read_cpu(), nvidia_smi_gpus(), source="nvidia-smi")


def forced_devices(environ: Mapping[str, str] = os.environ) -> tuple[str, ...]:
    """The devices `TLLAB_DEVICES` asks MirroredStrategy to mirror over (empty: the lab chooses).

    Several GPUs train one model together (tf.distribute.MirroredStrategy, one replica per GPU);
    `TLLAB_DEVICES` names the devices to mirror over instead (e.g. "CPU:0,CPU:1" for logical CPU
    devices in a test).
    """
    return tuple(name.strip() for name in environment.text(DEVICES_ENV, environ).split(",") if name.strip())


class PrecisionUnsupported(ValueError):
    """A precision this machine's device does not run (the message says why and what the device is)."""


def check_precision(precision: str, report: DeviceReport) -> None:
    """Raise PrecisionUnsupported when `report`'s device does not support `precision`."""
    if why := report.why_not(precision):
        raise PrecisionUnsupported(f"{why} This machine: {report.describe()}.")
