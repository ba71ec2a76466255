"""From clicks to code: the lab's settings as a standalone Keras script a learner can take away.

`training_script(config, data)` fills the template `templates/train_script.py.jinja`
with a TrainConfig and the dataset folder it is for. The script imports only
keras (with TensorFlow), numpy and the standard library, never tlcore, and its
docstring says where it differs from the lab, for this config and this folder.

TensorFlow-free: writing a script takes milliseconds and builds nothing.
"""

from __future__ import annotations

import functools
import textwrap
from dataclasses import dataclass

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
from tlcore.devices import FLOAT32, MIXED_FLOAT16
from tlcore.route import choose_route
from tlcore.run_folder import MODEL_FILE
from tlcore.schedule import Schedule, schedule
from tlcore.script_folder import DataFolder, beside_script
from tlcore.script_notes import differences, recipe, title

SCRIPT_NAME = "train.py"  # what the dashboard's download is called
TEXT_WIDTH = 72  # the docstring's lines (PEP 8: 72 for docstrings; the page's code box shows ~80 columns at 1280 px)
IMAGENET_DOWNLOAD = "58 MB"
# What each head layer without units does, as the script's comment says it.
_LAYER_WHY = {
    "GlobalAveragePooling2D": "One number per feature map: its average (global average pooling).",
    "GlobalMaxPooling2D": "One number per feature map: its largest value (global max pooling).",
    "Flatten": "Every value of the last feature maps, side by side in one long vector.",
    "LayerNormalization": "Each image's features scaled to mean 0 and spread 1: VGG16's come in the "
    "hundreds, and a new layer learns best from numbers near 1.",
}
_OPTIMIZERS = {
    "adam": "keras.optimizers.Adam(learning_rate)",
    "rmsprop": "keras.optimizers.RMSprop(learning_rate)",
    "sgd": f"keras.optimizers.SGD(learning_rate, momentum={SGD_MOMENTUM})",
}


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


def _literal(value: str | float | list[str] | None) -> str:
    """Python source for a str, a list of str, a number or None (strings in double quotes, as the template has them)."""
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
    return _template().render(
        config=config,  # every field, for a setting the template reads as it is (tlcore.setting declares it)
        made_for=made_for,
        title=title(config.weights),
        model_file=MODEL_FILE,
        model_file_repr=_literal(MODEL_FILE),
        recipe=_wrap("What it does, as the lab does: " + recipe(config, len(data.class_names), length), indent=""),
        differences=[_wrap(text, indent="  ")[2:] for text in differences(config, data)],
        data_dir=_data_dir(data),
        data_dir_comment=_data_dir_comment(data),
        weights=_weights_literal(config.weights),
        weights_comment=textwrap.wrap(_weights_comment(config.weights), TEXT_WIDTH - 2),
        class_names=_literal(list(data.class_names)),
        image_size=config.image_size,
        batch_size=length.batch_size if length else config.batch_size,
        epochs=length.phases[0].epochs if length else config.epochs,
        length_comment=_length_comment(config, data, length),
        learning_rate=repr(config.learning_rate),
        freeze_at=config.freeze_at,
        freeze_comment=_freeze_comment(config.freeze_at),
        fine_tune=config.fine_tune,
        early_stopping_patience=patience,
        reduce_lr_on_plateau=config.reduce_lr_on_plateau,
        callbacks=bool(patience or config.reduce_lr_on_plateau),
        validation_split=repr(config.validation_split),
        seed=config.seed,
        layout={
            "train_folder": data.train_folder,
            "train_folder_repr": _literal(data.train_folder),
            "validation_folder": data.validation_folder,
            "validation_folder_repr": _literal(data.validation_folder),
        },
        binary=binary,
        augment=_augment_lines(config.augment) if config.augment.enabled else [],
        preprocess_type=PREPROCESS_TYPE,
        script_package=SCRIPT_PACKAGE,
        input_name=_literal(INPUT_LAYER),
        preprocess_name=_literal(PREPROCESS_LAYER),
        model_name=_literal(model_name(config.backbone)),
        head=[_head_line(layer, mixed) for layer in head_layers(config.head, len(data.class_names))],
        precision=config.precision if mixed else "",
        loss_scaling=config.precision == MIXED_FLOAT16,
        balance_classes=config.balance_classes,
        optimizer=_OPTIMIZERS[config.optimizer],
        loss="keras.losses.BinaryCrossentropy()" if binary else "keras.losses.SparseCategoricalCrossentropy()",
        loss_comment="0/1 labels, one probability per image"
        if binary
        else "class numbers as labels, one probability per class",
        min_improvement=repr(MIN_IMPROVEMENT),
        plateau_factor=repr(PLATEAU_FACTOR),
        plateau_patience=PLATEAU_PATIENCE,
        plateau_min_lr_fraction=repr(PLATEAU_MIN_LR_FRACTION),
    )


def student_script(config: TrainConfig, data: DataFolder, made_for: str = "these settings") -> str:
    """training_script for a student of a class: no path on the server in it (README: Teaching a class).

    DATA_DIR is a folder beside the script: for the photos made in the lab, the my-photos/ folder their
    .zip unzips to (class folders only: the script draws its validation split); for a folder, a copy of it
    under its own name. A weights file (the server's own ImageNet weights) is written "imagenet".
    """
    weights = config.weights if normalize_weights(config.weights) in (NO_WEIGHTS, IMAGENET) else IMAGENET
    return training_script(config.replace(weights=weights), beside_script(data), made_for)


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
