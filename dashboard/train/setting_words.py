"""Settings in the pages' own words: a run's settings against the session's, or against another run's.

The names are the widgets' labels (`tlcore.config.SETTING_NAMES`); values read as a person sets them:
"on" and "off", "1e-05", "ImageNet", "the bundled sample", and a second phase as one setting
("on: 3 epochs at freeze point 14, rate 1e-05"), never "None".
"""

from __future__ import annotations

from pathlib import Path

from tlcore.backbones import IMAGENET, NO_WEIGHTS
from tlcore.config import SETTING_NAMES, TrainConfig, flatten_config
from tlcore.data import DatasetInfo
from tlcore.jsontypes import JSONValue
from tlcore.upload_cleanup import extraction_folder

SAMPLE_DATA = Path(__file__).resolve().parent.parent / "sample_data"
_RATES = ("learning_rate", "fine_tune.learning_rate")


def setting_label(key: str) -> str:
    """A dotted setting ("head.dense") as its widget's label ("dense layer sizes")."""
    return SETTING_NAMES.get(key, key.replace("_", " ").replace(".", ": "))


def value_words(key: str, value: JSONValue) -> str:
    """A setting's value as a person reads it."""
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "on" if value else "off"
    if key == "weights":
        return {IMAGENET: "ImageNet", NO_WEIGHTS: "random weights"}.get(str(value), Path(str(value)).name)
    if key in _RATES and isinstance(value, (int, float, str)):
        return f"{float(value):g}"
    if key == "image_size":
        return f"{value} px"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "none"
    return str(value)


def _phase_2(config: TrainConfig) -> str:
    ft = config.fine_tune
    if ft is None:
        return "off"
    return f"on: {ft.epochs} epochs at freeze point {ft.freeze_at}, rate {ft.learning_rate:g}"


def dataset_words(root: str | Path) -> str:
    """Where a dataset came from, for people: the bundled sample, an uploaded .zip, or its folder."""
    path = Path(root)
    if path.resolve() == SAMPLE_DATA:
        return "the bundled sample"
    if extraction_folder(path) is not None:
        return "an uploaded .zip"
    return str(path)


def config_changes(mine: TrainConfig, theirs: TrainConfig, theirs_name: str = "this run") -> list[str]:
    """How `mine` differs from `theirs`, one "label: mine (theirs_name: theirs)" per setting.

    A second phase switched on or off is one setting; augmentation's details count only while it is on.
    """
    a, b = flatten_config(mine.to_dict()), flatten_config(theirs.to_dict())
    augmenting = mine.augment.enabled or theirs.augment.enabled
    said = []
    phase_2_switched = (mine.fine_tune is None) != (theirs.fine_tune is None)
    if phase_2_switched:
        said.append(f"{setting_label('fine_tune')}: {_phase_2(mine)} ({theirs_name}: {_phase_2(theirs)})")
    for key in sorted(a.keys() | b.keys()):
        if a.get(key) == b.get(key) or (phase_2_switched and key.startswith("fine_tune")):
            continue
        if key.startswith("augment.") and key != "augment.enabled" and not augmenting:
            continue
        said.append(
            f"{setting_label(key)}: {value_words(key, a.get(key))} ({theirs_name}: {value_words(key, b.get(key))})"
        )
    return said


def setting_changes(
    job_config: TrainConfig | None, job_root: str, current: TrainConfig, info: DatasetInfo
) -> list[str]:
    """How the session's settings and dataset differ from a job's own, in words; [] when they agree."""
    changes = config_changes(current, job_config) if job_config is not None else []
    if job_root and Path(job_root) != Path(info.root):
        mine, theirs = dataset_words(info.root), dataset_words(job_root)
        mine = f"another {mine[3:]}" if mine == theirs else mine  # two different uploads
        changes.insert(0, f"dataset: {mine} (this run: {theirs})")
    return changes
