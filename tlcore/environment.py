"""Every TLLAB_* variable an administrator may set, read here: its name, its meaning and how its text reads.

Values are read when asked, not at import, so a test or a notebook that sets one sees it at once. A limit that
is not a whole number counts as unset.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

RUNS_ENV = "TLLAB_RUNS_DIR"
DATA_ROOT_ENV = "TLLAB_DATA_ROOT"
UPLOAD_DIR_ENV = "TLLAB_UPLOAD_DIR"
WEIGHTS_ENV = "TLLAB_WEIGHTS"
CACHE_DIR_ENV = "TLLAB_CACHE_DIR"
CACHE_MAX_ENV = "TLLAB_CACHE_MAX_MB"
CLASS_KEY_ENV = "TLLAB_CLASS_KEY"
MAX_RUNS_ENV = "TLLAB_MAX_RUNS"
MAX_IMAGES_ENV = "TLLAB_MAX_IMAGES"
MAX_PHOTO_MB_ENV = "TLLAB_MAX_PHOTO_MB"
MAX_JOBS_ENV = "TLLAB_MAX_JOBS"
MAX_PASSES_ENV = "TLLAB_MAX_PASSES"
DEVICES_ENV = "TLLAB_DEVICES"
RAY_ADDRESS_ENV = "TLLAB_RAY_ADDRESS"
RAY_CPUS_ENV = "TLLAB_RAY_CPUS"
RAY_CPUS_PER_JOB_ENV = "TLLAB_RAY_CPUS_PER_JOB"

# What each means, in a line (README's sections say more; tests/test_environment.py checks README names them all).
VARIABLES: dict[str, str] = {
    RUNS_ENV: "the runs folder (default ./runs): runs, photos, the class roster, the feature store",
    DATA_ROOT_ENV: "the only folder whose image folders users may type; unset: any folder this user may read",
    UPLOAD_DIR_ENV: "where uploaded .zip files are extracted (default: the system's temporary folder)",
    WEIGHTS_ENV: "a VGG16 ImageNet weights file used where Keras cannot download them",
    CACHE_DIR_ENV: "the feature store's folder (default: .features in the runs folder)",
    CACHE_MAX_ENV: "the feature store's cap in megabytes (default 2048)",
    CLASS_KEY_ENV: "the teacher's key (16+ characters): class mode is on when set",
    MAX_RUNS_ENV: "a student's runs kept at once (default 10)",
    MAX_IMAGES_ENV: "a student's photos at most (default 500)",
    MAX_PHOTO_MB_ENV: "a student's photos' megabytes at most (default 150)",
    MAX_JOBS_ENV: "training jobs running at once in this process (default 1)",
    MAX_PASSES_ENV: "See inside's passes running at once (default 1)",
    DEVICES_ENV: "devices to mirror training over, e.g. GPU:0,GPU:1",
    RAY_ADDRESS_ENV: "run jobs on Ray: auto, a cluster address, or local",
    RAY_CPUS_ENV: "a local Ray's CPUs (default: this machine's)",
    RAY_CPUS_PER_JOB_ENV: "CPUs a job asks of Ray (default 1)",
}


def text(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value as set ("" when unset)."""
    return (os.environ if environ is None else environ).get(name, "")


def whole_number(name: str, default: int, minimum: int = 1, environ: Mapping[str, str] | None = None) -> int:
    """The variable as a whole number, `minimum` at least; `default` when unset or not a whole number (a limit
    mistyped by an administrator must not stop a lesson)."""
    try:
        return max(minimum, int(text(name, environ).strip() or default))
    except ValueError:
        return max(minimum, default)
