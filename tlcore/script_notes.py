"""The prose of a generated script's docstring: its title, what it does, and where it differs from the lab.

Each note is said for this config and this folder (tlcore.script_folder); tlcore.codegen wraps them.
"""

from __future__ import annotations

from tlcore.backbone_facts import VGG16_CHAIN, VGG16_LAYERS
from tlcore.backbones import IMAGENET, NO_WEIGHTS, normalize_weights
from tlcore.config import SGD_MOMENTUM, TrainConfig
from tlcore.devices import FLOAT32
from tlcore.imageio import IMAGE_EXTENSIONS
from tlcore.schedule import Schedule
from tlcore.script_folder import PHOTOS_FOLDER, DataFolder

# The file types image_dataset_from_directory reads (keras.src.utils.image_dataset_utils.ALLOWLIST_FORMATS).
KERAS_IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_AUGMENT_WORDS = (
    ("flips", "flip"),
    ("turns", "rotation"),
    ("zooms", "zoom"),
    ("shifts", "translation"),
    ("contrast", "contrast"),
)
_OPTIMIZER_NAMES = {"adam": "Adam", "rmsprop": "RMSprop", "sgd": f"SGD (momentum {SGD_MOMENTUM})"}


def title(weights: str) -> str:
    """The docstring's first line: transfer learning, or training from random weights."""
    if normalize_weights(weights) == NO_WEIGHTS:
        return "Training VGG16 with Keras from random weights (no transfer), with a new head."
    return "Transfer learning with Keras: VGG16 pretrained on ImageNet, with a new head."


def _weights_in_words(weights: str) -> str:
    normalized = normalize_weights(weights)
    if normalized == NO_WEIGHTS:
        return "random weights (no transfer)"
    return "ImageNet weights" if normalized == IMAGENET else "the pretrained weights in WEIGHTS"


def recipe(config: TrainConfig, num_classes: int, length: Schedule | None = None) -> str:
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


def differences(config: TrainConfig, data: DataFolder) -> list[str]:
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
