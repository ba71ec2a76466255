"""From clicks to code: the lab's settings as a standalone Keras script a learner can take away.

`training_script(config, data)` fills the template `templates/train_script.py.jinja`
with a TrainConfig and the dataset folder it is for. The script imports only
keras (with TensorFlow), numpy and the standard library, never tlcore, and its
docstring says where it differs from the lab, for this config and this folder.

TensorFlow-free: writing a script takes milliseconds and builds nothing.
"""

from __future__ import annotations

import functools
import os
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import jinja2

from tlcore.architecture import (
    INPUT_LAYER,
    OUTPUT_LAYER,
    PREPROCESS_LAYER,
    PREPROCESS_TYPE,
    SCRIPT_PACKAGE,
    HeadLayer,
    head_layers,
    model_name,
)
from tlcore.backbone_facts import VGG16_CHAIN, VGG16_LAYERS
from tlcore.backbones import IMAGENET, NO_WEIGHTS, normalize_weights
from tlcore.config import (
    MIN_IMPROVEMENT,
    PLATEAU_FACTOR,
    PLATEAU_MIN_LR_FRACTION,
    PLATEAU_PATIENCE,
    SGD_MOMENTUM,
    AugmentConfig,
    TrainConfig,
)
from tlcore.data import TRAIN, VALIDATION, DatasetInfo, display_path, split_folder_names
from tlcore.devices import FLOAT32, MIXED_FLOAT16
from tlcore.imageio import IMAGE_EXTENSIONS
from tlcore.photos import PHOTOS_DIR
from tlcore.records import RunRecord
from tlcore.route import choose_route
from tlcore.runs import MODEL_FILE
from tlcore.schedule import Schedule, schedule
from tlcore.uploads import EXTRACTION_PREFIX

SCRIPT_NAME = "train.py"  # what the dashboard's download is called
TEXT_WIDTH = 72  # the docstring's lines (PEP 8: 72 for docstrings; the page's code box shows ~80 columns at 1280 px)
# The file types image_dataset_from_directory reads (keras.src.utils.image_dataset_utils.ALLOWLIST_FORMATS).
KERAS_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
IMAGENET_DOWNLOAD = "58 MB"
# The folder the Dataset page's "Download as .zip" (my-photos.zip, dashboard/photo_maker.py) is unzipped to.
PHOTOS_FOLDER = "my-photos"
# What each head layer without units does, as the script's comment says it.
_LAYER_WHY = {
    "GlobalAveragePooling2D": "One number per feature map: its average (global average pooling).",
    "GlobalMaxPooling2D": "One number per feature map: its largest value (global max pooling).",
    "Flatten": "Every value of the last feature maps, side by side in one long vector.",
    "LayerNormalization": "Each image's features scaled to mean 0 and spread 1: VGG16's come in the "
    "hundreds, and a new layer learns best from numbers near 1.",
}
_AUGMENT_WORDS = (
    ("flips", "flip"),
    ("turns", "rotation"),
    ("zooms", "zoom"),
    ("shifts", "translation"),
    ("contrast", "contrast"),
)
_OPTIMIZER_NAMES = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": f"SGD (momentum {SGD_MOMENTUM})"}
_OPTIMIZERS = {
    "adam": "keras.optimizers.Adam(learning_rate)",
    "rmsprop": "keras.optimizers.RMSprop(learning_rate)",
    "sgd": f"keras.optimizers.SGD(learning_rate, momentum={SGD_MOMENTUM})",
}


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


def _data_dir(data: DataFolder) -> str:
    """DATA_DIR's expression: the folder's path, or for an upload (the lab's temporary copy goes when the session
    ends) the folder the .zip unpacks to beside the script."""
    if data.from_upload:
        return f"Path(__file__).resolve().parent / {_literal(data.unzipped_name)}"
    if data.beside:
        return f"Path(__file__).resolve().parent / {_literal(data.beside)}"
    return f"Path({_literal(data.root)})"


def _data_dir_comment(data: DataFolder) -> str:
    if data.from_upload:
        return f"Unzip your .zip beside this script: DATA_DIR is the {data.unzipped_name}/ folder it makes."
    return data.beside_note


def _beside_script(data: DataFolder) -> DataFolder:
    """The folder as a student's script names it: one beside the script, never where it is on the server."""
    if data.from_upload:  # already the folder the student's own .zip unzips to
        return data
    if Path(data.root).parent.name == PHOTOS_DIR:  # their photos: the .zip holds class folders, unsplit
        note = f"Unzip my-photos.zip (Dataset page) into {PHOTOS_FOLDER}/ beside this script."
        return replace(data, beside=PHOTOS_FOLDER, beside_note=note, train_folder="", validation_folder="")
    name = Path(data.root).name
    return replace(data, beside=name, beside_note=f"A copy of the lab's {name}/ folder, beside this script.")


def _literal(value: Any) -> str:
    """Python source for a str, a list of str or a number, strings in double quotes as the template writes them."""
    if isinstance(value, list):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    text = repr(value)
    if isinstance(value, str) and text.startswith("'") and '"' not in value:
        text = '"' + text[1:-1].replace("\\'", "'") + '"'
    return text


@dataclass(frozen=True)
class _Line:
    """One line of generated code and the comment above it ("" for none)."""

    code: str
    comment: str = ""


def training_script(config: TrainConfig, data: DataFolder, made_for: str = "these settings") -> str:
    """A standalone Keras script that trains what `config` describes on `data`'s folder.

    The script loads the folder with `keras.utils.image_dataset_from_directory`, builds the lab's
    model (the same flat chain of layers, named as `tlcore.architecture` names them, with VGG16's
    own `preprocess_input` inside), freezes, trains with `fit` (both phases when set) and saves a
    `.keras` file in the folder it is run from.

    The weights are config.weights: "imagenet", "none" (random, written None)
    or a file path, written into the script as WEIGHTS beside DATA_DIR.

    Args:
        made_for: what it was written for, in words ("run 20250101-…", "the Model & freeze page's settings").
    """
    if len(data.class_names) < 2:
        raise ValueError(f"A classifier needs at least 2 classes. Received: class_names={list(data.class_names)}")
    binary = config.head.output == "sigmoid"
    mixed = config.precision != FLOAT32
    if binary and len(data.class_names) != 2:
        raise ValueError(f"A sigmoid output needs exactly 2 classes. Received: class_names={list(data.class_names)}")
    length = _length(config, data)
    patience = length.patience if length else config.early_stopping_patience
    context: dict[str, Any] = {
        "made_for": made_for,
        "title": _title(config.weights),
        "model_file": MODEL_FILE,
        "model_file_repr": _literal(MODEL_FILE),
        "recipe": _wrap("What it does, as the lab does: " + _recipe(config, len(data.class_names), length), indent=""),
        "differences": [_wrap(text, indent="  ")[2:] for text in _differences(config, data)],
        "data_dir": _data_dir(data),
        "data_dir_comment": _data_dir_comment(data),
        "weights": _weights_literal(config.weights),
        "weights_comment": textwrap.wrap(_weights_comment(config.weights), TEXT_WIDTH - 2),
        "class_names": _literal(list(data.class_names)),
        "image_size": config.image_size,
        "batch_size": length.batch_size if length else config.batch_size,
        "epochs": length.phases[0].epochs if length else config.epochs,
        "length_comment": _length_comment(config, data, length),
        "learning_rate": repr(config.learning_rate),
        "freeze_at": config.freeze_at,
        "freeze_comment": _freeze_comment(config.freeze_at),
        "fine_tune": config.fine_tune,
        "early_stopping_patience": patience,
        "reduce_lr_on_plateau": config.reduce_lr_on_plateau,
        "callbacks": bool(patience or config.reduce_lr_on_plateau),
        "validation_split": repr(config.validation_split),
        "seed": config.seed,
        "layout": {
            "train_folder": data.train_folder,
            "train_folder_repr": _literal(data.train_folder),
            "validation_folder": data.validation_folder,
            "validation_folder_repr": _literal(data.validation_folder),
        },
        "binary": binary,
        "augment": _augment_lines(config.augment) if config.augment.enabled else [],
        "preprocess_type": PREPROCESS_TYPE,
        "script_package": SCRIPT_PACKAGE,
        "input_name": _literal(INPUT_LAYER),
        "preprocess_name": _literal(PREPROCESS_LAYER),
        "model_name": _literal(model_name(config.backbone)),
        "head": [_head_line(layer, mixed) for layer in head_layers(config.head, len(data.class_names))],
        "precision": config.precision if mixed else "",
        "loss_scaling": config.precision == MIXED_FLOAT16,
        "balance_classes": config.balance_classes,
        "optimizer": _OPTIMIZERS[config.optimizer],
        "loss": "keras.losses.BinaryCrossentropy()" if binary else "keras.losses.SparseCategoricalCrossentropy()",
        "loss_comment": "0/1 labels, one probability per image"
        if binary
        else "class numbers as labels, one probability per class",
        "min_improvement": repr(MIN_IMPROVEMENT),
        "plateau_factor": repr(PLATEAU_FACTOR),
        "plateau_patience": PLATEAU_PATIENCE,
        "plateau_min_lr_fraction": repr(PLATEAU_MIN_LR_FRACTION),
    }
    return _template().render(context)


def student_script(config: TrainConfig, data: DataFolder, made_for: str = "these settings") -> str:
    """training_script for a student of a class: no path on the server in it (README: Teaching a class).

    DATA_DIR is a folder beside the script: for the photos made in the lab, the my-photos/ folder their
    .zip unzips to (class folders only: the script draws its validation split); for a folder, a copy of it
    under its own name. A weights file (the server's own ImageNet weights) is written "imagenet".
    """
    weights = config.weights if normalize_weights(config.weights) in (NO_WEIGHTS, IMAGENET) else IMAGENET
    return training_script(config.replace(weights=weights), _beside_script(data), made_for)


@functools.cache
def _template() -> jinja2.Template:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("tlcore", "templates"),
        undefined=jinja2.StrictUndefined,  # a name the template uses and the context lacks is an error, not ""
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML
    )
    return environment.get_template("train_script.py.jinja")


def _wrap(text: str, indent: str) -> str:
    """A paragraph wrapped for the docstring (a bullet's later lines indented under its text).

    Backslashes and triple quotes (a file name may hold them) are escaped, so the docstring stays one string.
    """
    text = text.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return textwrap.fill(text, TEXT_WIDTH, initial_indent=indent, subsequent_indent=indent)


def _weights_literal(weights: str) -> str:
    normalized = normalize_weights(weights)
    return "None" if normalized == NO_WEIGHTS else _literal(normalized)


def _title(weights: str) -> str:
    if normalize_weights(weights) == NO_WEIGHTS:
        return "Training VGG16 with Keras from random weights (no transfer), with a new head."
    return "Transfer learning with Keras: VGG16 pretrained on ImageNet, with a new head."


def _weights_in_words(weights: str) -> str:
    normalized = normalize_weights(weights)
    if normalized == NO_WEIGHTS:
        return "random weights (no transfer)"
    return "ImageNet weights" if normalized == IMAGENET else "the pretrained weights in WEIGHTS"


def _weights_comment(weights: str) -> str:
    normalized = normalize_weights(weights)
    if normalized == NO_WEIGHTS:
        return "None: random weights, no transfer (nothing learned on ImageNet)."
    if normalized == IMAGENET:
        return (
            f'"imagenet": Keras downloads VGG16\'s ImageNet weights once ({IMAGENET_DOWNLOAD}, into ~/.keras/models).'
        )
    return (
        'The weights file the lab used. On another computer, copy it and change this path, or write "imagenet" '
        f"(Keras downloads them once, {IMAGENET_DOWNLOAD})."
    )


def _freeze_comment(freeze_at: int) -> str:
    if freeze_at == VGG16_LAYERS:
        return f"VGG16 layers frozen, counted from the input: all {VGG16_LAYERS}, only the head learns"
    if freeze_at == 0:
        return "VGG16 layers frozen, counted from the input: none, every layer learns"
    return f"VGG16 layers frozen, counted from the input: up to {VGG16_CHAIN[freeze_at - 1].name}"


def _head_line(layer: HeadLayer, mixed: bool = False) -> _Line:
    """One head layer as a line of code; `mixed`: the output layer is kept float32 under a mixed policy."""
    name = _literal(layer.name)
    if mixed and layer.name == OUTPUT_LAYER:
        units = "1" if layer.activation == "sigmoid" else "len(CLASS_NAMES)"
        code = (
            f"outputs = keras.layers.Dense(\n    {units}, activation={_literal(layer.activation)}, name={name},"
            '\n    dtype="float32",  # the probabilities and the loss in float32\n)(x)'
        )
        return _Line(code, _head_line(layer).comment)
    if layer.type == "Dropout":
        return _Line(
            f"x = keras.layers.Dropout({layer.rate!r}, name={name})(x)",
            f"Against overfitting: in training, zero a random {layer.rate:.0%} of the values.",
        )
    if layer.type != "Dense":
        return _Line(f"x = keras.layers.{layer.type}(name={name})(x)", _LAYER_WHY[layer.type])
    if layer.name != OUTPUT_LAYER:
        return _Line(
            f"x = keras.layers.Dense({layer.units}, activation={_literal(layer.activation)}, name={name})(x)",
            f"A hidden layer of {layer.units} units.",
        )
    if layer.activation == "sigmoid":
        return _Line(
            f'outputs = keras.layers.Dense(1, activation="sigmoid", name={name})(x)',
            "The output: one probability, that the image is CLASS_NAMES[1].",
        )
    return _Line(
        f'outputs = keras.layers.Dense(\n    len(CLASS_NAMES), activation="softmax", name={name}\n)(x)',
        "The output: one probability per class, summing to 1.",
    )


def _augment_lines(augment: AugmentConfig) -> list[_Line]:
    """The layers `tlcore.tf.training.build_augmenter` uses, as code with a comment each (same seeds)."""
    lines = []
    if augment.flip:
        lines.append(_Line('keras.layers.RandomFlip("horizontal", seed=SEED)', "mirror left-right"))
    if augment.rotation:
        lines.append(
            _Line(
                f'keras.layers.RandomRotation({augment.rotation!r}, fill_mode="reflect", seed=SEED + 1)',
                f"turn by up to {augment.rotation * 360:g} degrees either way",
            )
        )
    if augment.zoom:
        lines.append(
            _Line(
                f'keras.layers.RandomZoom({augment.zoom!r}, fill_mode="reflect", seed=SEED + 2)',
                f"zoom in or out by up to {augment.zoom:.0%}",
            )
        )
    if augment.translation:
        t = repr(augment.translation)
        lines.append(
            _Line(
                # split in three lines: on one it would be longer than the script's 79 columns
                f'keras.layers.RandomTranslation(\n            {t}, {t}, fill_mode="reflect", seed=SEED + 3\n        )',
                f"shift by up to {augment.translation:.0%} of the size",
            )
        )
    if augment.contrast:
        lines.append(
            _Line(
                f"keras.layers.RandomContrast({augment.contrast!r}, value_range=(0, 255), seed=SEED + 4)",
                f"change the contrast by up to {augment.contrast:.0%}",
            )
        )
    return lines


def _length(config: TrainConfig, data: DataFolder) -> Schedule | None:
    """The lab's training length for this folder's counts (None when the counts are not known)."""
    if not data.train_images:
        return None
    first_route, _ = choose_route(config, config.freeze_at)
    return schedule(config, data.train_images, data.validation_per_class, first_route)


def _length_comment(config: TrainConfig, data: DataFolder, length: Schedule | None) -> list[str]:
    """Comment lines above BATCH_SIZE that say how the lab's length rule set it and EPOCHS (none: as set)."""
    said = length.changes(config, data.train_images) if length else []
    if length and length.patience_off_reason:
        said.append(length.patience_off_reason)
    if not said:
        return []
    text = f"As the lab plans it for {data.train_images} training images: " + "; ".join(said) + "."
    return textwrap.wrap(text, TEXT_WIDTH - 2)


def _recipe(config: TrainConfig, num_classes: int, length: Schedule | None = None) -> str:
    """What the script does, in one paragraph (its epochs, batch size and patience as `length` plans them)."""
    head = config.head
    parts = [{"avg": "global average pooling", "max": "global max pooling", "flatten": "flatten"}[head.pooling]]
    parts += [f"dense {units}" + (f" + dropout {head.dropout:g}" if head.dropout else "") for units in head.dense]
    if head.dropout and not head.dense:
        parts.append(f"dropout {head.dropout:g}")
    parts.append("one sigmoid output" if head.output == "sigmoid" else f"softmax over {num_classes} classes")
    if config.freeze_at == VGG16_LAYERS:
        frozen = f"freezes all {VGG16_LAYERS} of its layers"
    elif config.freeze_at == 0:
        frozen = "freezes none of its layers"
    else:
        frozen = f"freezes its first {config.freeze_at} layers (up to {VGG16_CHAIN[config.freeze_at - 1].name})"
    weights, optimizer = _weights_in_words(config.weights), _OPTIMIZER_NAMES[config.optimizer]
    text = (
        f"it loads the images at {config.image_size} px, builds VGG16 with {weights} and its own preprocessing "
        f"inside the model, {frozen}, puts a new head on top ({', '.join(parts)}), and trains it with "
        f"{optimizer} at a learning rate of {config.learning_rate:g} for "
        f"{length.phases[0].epochs if length else config.epochs} epoch(s) of "
        f"{length.batch_size if length else config.batch_size} images a step"
    )
    changes = [word for word, on in _AUGMENT_WORDS if getattr(config.augment, on)]
    if config.augment.enabled and changes:
        text += f", the training images randomly changed ({', '.join(changes)})"
    if config.balance_classes:
        text += ", each class weighted inversely to its training images"
    if config.precision != FLOAT32:
        text += f", computing in {config.precision} (float32 weights, a float32 output)"
    if config.fine_tune:
        ft = config.fine_tune
        text += (
            f"; then it unfreezes down to freeze point {ft.freeze_at} and fine-tunes for {ft.epochs} more "
            f"epoch(s) at {ft.learning_rate:g}"
        )
    options = []
    patience = length.patience if length else config.early_stopping_patience
    if patience:
        options.append(f"stops a phase after {patience} epoch(s) without a better val_loss")
    if config.reduce_lr_on_plateau:
        options.append("halves the learning rate when val_loss stops improving")
    if options:
        text += "; it " + " and ".join(options)
    return text + "; then it saves the model."


def _differences(config: TrainConfig, data: DataFolder) -> list[str]:
    """Where this script, for this config and folder, does not do what the lab does."""
    lines = []
    if data.from_upload:
        lines.append(
            f"The lab read your .zip from a temporary copy that goes when your session ends: DATA_DIR is the "
            f"{data.unzipped_name}/ folder your .zip makes when you unzip it beside this script."
        )
    if not data.found:
        lines.append(
            "DATA_DIR was not found when this script was written, so the script assumes class folders "
            "directly inside it and draws a validation split; if yours has train/ and validation/ folders, "
            "read those instead (section 1)."
        )
    unreadable = "It does not skip unreadable images: a file TensorFlow cannot decode stops the training."
    if data.skipped:
        example = f" (e.g. {data.skipped_example})" if data.skipped_example else ""
        unreadable += (
            f" The lab left out {data.skipped} file(s) in this folder{example}: remove them before running this."
        )
    else:
        unreadable += " The lab checks every image first and leaves out the broken ones."
    lines.append(unreadable)
    lab_only = sorted(set(IMAGE_EXTENSIONS) - set(KERAS_IMAGE_EXTENSIONS))
    lines.append(
        f"Keras reads only {', '.join(KERAS_IMAGE_EXTENSIONS)} files; the lab also reads {', '.join(lab_only)}. "
        "Keras resizes with TensorFlow and ignores a photo's EXIF rotation; the lab resizes with Pillow "
        "after turning the photo upright: the pixels differ slightly."
    )
    lines.append(_split_difference(config, data))
    weights = normalize_weights(config.weights)
    if weights not in (NO_WEIGHTS, IMAGENET) and not weights.endswith(".h5"):
        lines.append(
            "Keras chooses how to read a weights file by its name (.weights.h5: Keras 3's layout, .h5: the "
            "legacy one); the lab reads what is inside. Rename WEIGHTS's file accordingly if Keras refuses it."
        )
    if config.freeze_at > 0 and not config.augment.enabled:
        lines.append(
            "No feature caching: the lab computes the frozen layers' outputs once and then trains only the "
            "layers above them; this script runs every image through all of VGG16 in every epoch, as plain "
            "Keras does. Same model, but each epoch is slower"
            + (", by far at freeze point 18, where only the head learns." if config.freeze_at == VGG16_LAYERS else ".")
        )
    lines.append(
        "The same seed gives the same result each time you run this script, not the lab's numbers: Keras "
        "draws the head's starting weights and the shuffling in its own order. Expect close accuracies, "
        "not equal ones."
    )
    lines.append(
        "It keeps no run record, curves, TensorBoard logs or Stop button: Keras prints each epoch, and Ctrl-C stops it."
    )
    return lines


def _split_difference(config: TrainConfig, data: DataFolder) -> str:
    if data.beside == PHOTOS_FOLDER:
        return (
            "A different validation split: the lab kept one photo in five apart for validation; the .zip has "
            f"class folders only, so Keras holds out {config.validation_split:.0%} of all the photos together "
            f"after one shuffle with seed {config.seed}. Compare accuracies with that in mind."
        )
    if data.validation_folder:
        return (
            f"The same split as the lab: {data.train_folder}/ trains, {data.validation_folder}/ validates "
            "(Keras also reads any hidden image files there, which the lab ignores)."
        )
    where = f"{data.train_folder}/" if data.train_folder else "the class folders"
    return (
        f"A different validation split: with no validation folder, the lab holds out "
        f"{config.validation_split:.0%} of each class of {where} (seed {config.seed}); Keras holds out "
        f"{config.validation_split:.0%} of all the images together after one shuffle with the same seed. "
        "Other images are held out, and each class's share of them may differ: compare accuracies "
        "with that in mind."
    )
