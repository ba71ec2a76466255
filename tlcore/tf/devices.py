"""The devices TensorFlow sees, and the distribution strategy a run trains under.

TensorFlow places every operation on its first GPU when it sees one; the lab
narrows the visible devices nowhere (no environment variable, no TensorFlow
call: tests/test_devices.py checks). With more than one GPU, one model trains on
all of them with `tf.distribute.MirroredStrategy`: a replica per GPU, each
batch split between them, gradients summed. `TLLAB_DEVICES` names the
devices to mirror over instead (the test mirrors over two logical CPUs).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import tensorflow as tf

from tlcore.devices import DeviceReport, GpuFacts, forced_devices, parse_capability, read_cpu


def read_device_report() -> DeviceReport:
    """What TensorFlow sees now: its GPUs (name, compute capability) and the CPU."""
    gpus = []
    for device in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(device)
        except (ValueError, tf.errors.OpError):  # a device TensorFlow lists but cannot describe
            details = {}
        gpus.append(
            GpuFacts(details.get("device_name") or device.name, parse_capability(details.get("compute_capability")))
        )
    return DeviceReport(read_cpu(), tuple(gpus))


@functools.cache
def device_report() -> DeviceReport:
    """`read_device_report`, read once per process (the devices do not change while it runs)."""
    return read_device_report()


def choose_strategy(
    report: DeviceReport | None = None, devices: Sequence[str] | None = None
) -> tf.distribute.Strategy | None:
    """MirroredStrategy over `devices`, or `TLLAB_DEVICES`, or every GPU when there are several; else None.

    None means TensorFlow's default: one device, its first GPU when it has one.
    """
    chosen = tuple(devices or forced_devices())
    if chosen:
        return tf.distribute.MirroredStrategy(devices=[_device_name(d) for d in chosen])
    report = report or device_report()
    if len(report.gpus) > 1:
        return tf.distribute.MirroredStrategy()  # every GPU it sees
    return None


def _device_name(name: str) -> str:
    """ "GPU:0" -> "/device:GPU:0" (full names as given are kept)."""
    return name if name.startswith("/") else f"/device:{name.upper()}"


def replicas(strategy: tf.distribute.Strategy | None) -> int:
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)
