"""The dataset folder a generated script reads: `DataFolder`, from a scan or from a run's record.

A student's script names a folder beside itself instead (`beside_script`): never a path on the server.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from tlcore.data import TRAIN, VALIDATION, DatasetInfo, split_folder_names
from tlcore.data_problems import display_path
from tlcore.photos import PHOTOS_DIR
from tlcore.records import RunRecord
from tlcore.uploads import EXTRACTION_PREFIX

# The folder the Dataset page's "Download as .zip" (my-photos.zip, dashboard/dataset/photo_maker.py) is unzipped to.
PHOTOS_FOLDER = "my-photos"


@dataclass(frozen=True)
class DataFolder:
    """The dataset folder a script is written for: where it is, its classes and its split folders.

    `train_folder` is "" when the class folders sit directly in `root`;
    `validation_folder` is "" when there is none (a split is drawn).
    `skipped` counts the files the lab left out as unreadable, one of them
    named in `skipped_example`. `found` is False when the folder was not there.
    """

    root: str
    class_names: tuple[str, ...]
    train_folder: str = ""
    validation_folder: str = ""
    skipped: int = 0
    skipped_example: str = ""
    found: bool = True
    # As the lab counted them: what the training length follows (tlcore.schedule); 0 / () when unknown.
    train_images: int = 0
    validation_per_class: tuple[int, ...] = ()
    # A student's script (student_script): the folder beside the script that DATA_DIR names instead of
    # `root`, and the comment above it ("": `root` itself).
    beside: str = ""
    beside_note: str = ""

    @classmethod
    def from_info(cls, info: DatasetInfo) -> DataFolder:
        """The folder as a scan found it."""
        splits = info.split_folders if info.layout == "splits" else {}
        example = info.skipped[0] if info.skipped else None
        return cls(
            root=os.path.abspath(info.root),
            class_names=tuple(info.class_names),
            train_folder=splits.get(TRAIN, ""),
            validation_folder=splits.get(VALIDATION, ""),
            skipped=len(info.skipped),
            skipped_example=f"{display_path(example.path.name)}: {example.reason}" if example else "",
            train_images=info.num_images(TRAIN),
            validation_per_class=tuple(info.class_counts(VALIDATION)),
        )

    @classmethod
    def from_run(cls, record: RunRecord) -> DataFolder:
        """The folder a run trained on, as its record tells, with its split folders as they are now.

        Raises:
            ValueError: the record names no dataset folder or no classes.
        """
        if record.dataset is None or not record.dataset.root or not record.class_names:
            raise ValueError(f"Run {record.run_id} does not record its dataset folder and classes.")
        root = os.path.abspath(record.dataset.root)
        splits = split_folder_names(root)
        return cls(
            root=root,
            class_names=tuple(record.class_names),
            train_folder=splits.get(TRAIN, ""),
            validation_folder=splits.get(VALIDATION, ""),
            skipped=record.dataset.skipped,
            found=Path(root).is_dir(),
            train_images=sum(record.dataset.counts.get(TRAIN, {}).values()),
            validation_per_class=tuple(record.dataset.counts.get(VALIDATION, {}).get(c, 0) for c in record.class_names),
        )

    @property
    def from_upload(self) -> bool:
        """Whether the folder is one the lab unpacked an uploaded .zip into (a temporary folder)."""
        path = Path(self.root)
        return any(p.name.startswith(EXTRACTION_PREFIX) for p in (path, path.parent))

    @property
    def unzipped_name(self) -> str:
        """For an upload: the folder the .zip unpacks to beside the script (its one top folder, else "dataset")."""
        name = Path(self.root).name
        return "dataset" if name.startswith(EXTRACTION_PREFIX) else name


def beside_script(data: DataFolder) -> DataFolder:
    """The folder as a student's script names it: one beside the script, never where it is on the server."""
    if data.from_upload:  # already the folder the student's own .zip unzips to
        return data
    if Path(data.root).parent.name == PHOTOS_DIR:  # their photos: the .zip holds class folders, unsplit
        note = f"Unzip my-photos.zip (Dataset page) into {PHOTOS_FOLDER}/ beside this script."
        return replace(data, beside=PHOTOS_FOLDER, beside_note=note, train_folder="", validation_folder="")
    name = Path(data.root).name
    return replace(data, beside=name, beside_note=f"A copy of the lab's {name}/ folder, beside this script.")
