"""The session state the pages share: every key (K), the defaults, the one widget <-> TrainConfig mapping.

No ML logic here: every computation is a tlcore call. TensorFlow is imported
only by the pages that need it (the Dataset page renders without it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import streamlit as st

from dashboard.streamlit_patches import run_through_app
from tlcore import environment
from tlcore.backbone_facts import DEFAULT_BACKBONE
from tlcore.backbones import IMAGENET, NO_WEIGHTS, WEIGHTS_ENV, get_backbone, imagenet_cached_path, weights_status
from tlcore.config import PATIENCE, AugmentConfig, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.estimate import measure_in_background
from tlcore.paths import DataRootError, PathNotAllowed, typed_weights_path
from tlcore.setting import NO_WIDGET, declared, value_type

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DATA = ROOT / "sample_data"
IMAGE_SIZES = [32, 48, 64, 96, 128, 160, 192, 224]
SOURCE_SAMPLE, SOURCE_FOLDER, SOURCE_ZIP = "Bundled sample", "Folder on this computer", "Upload a .zip"
SOURCE_PHOTOS = "My photos (made here)"
SOURCES = (SOURCE_SAMPLE, SOURCE_PHOTOS, SOURCE_FOLDER, SOURCE_ZIP)
# "Random weights" starts every layer at random; "from scratch" is kept for the sweep's baseline, where
# every layer also trains (random weights with frozen layers are a different, weaker experiment).
WEIGHTS_IMAGENET, WEIGHTS_FILE, WEIGHTS_SCRATCH = "ImageNet", "Weights file", "Random weights (no transfer)"
WEIGHTS_CHOICES = (WEIGHTS_IMAGENET, WEIGHTS_FILE, WEIGHTS_SCRATCH)
# What weights_value() gives for a refused weights path: never the refused path itself (it would be
# loaded, and its status would tell whether it exists), but a file that cannot exist, so every
# page's weights check fails and asks for other weights.
REFUSED_WEIGHTS = "/(refused: outside the data folder)"


WidgetValue = bool | int | float | str  # what a setting's widget holds


class StateView(Protocol):
    """What the mapping reads: st.session_state, or any mapping of the same keys (tests, presets)."""

    def __getitem__(self, key: str) -> Any: ...


class K:
    """Session-state keys, in one place (tests use them too)."""

    source = "data_source"
    folder = "data_folder"
    zip_upload = "data_zip"
    zip_dir = "data_zip_dir"
    zip_name = "data_zip_name"  # the uploaded .zip's file name, for people
    image_size = "image_size"
    weights_choice = "weights_choice"
    weights_path = "weights_path"
    freeze_at = "freeze_at"
    pooling = "head_pooling"
    dense = "head_dense"
    dropout = "head_dropout"
    output = "head_output"
    normalize = "head_normalize"
    optimizer = "optimizer"
    learning_rate = "learning_rate"
    epochs = "epochs"
    batch_size = "batch_size"
    augment = "augment_enabled"
    flip = "augment_flip"
    rotation = "augment_rotation"
    zoom = "augment_zoom"
    translation = "augment_translation"
    contrast = "augment_contrast"
    fine_tune = "fine_tune_enabled"
    ft_freeze_at = "fine_tune_freeze_at"
    ft_epochs = "fine_tune_epochs"
    ft_lr = "fine_tune_lr"
    seed = "seed"
    balance_classes = "balance_classes"
    early_stopping = "early_stopping_enabled"
    patience = "early_stopping_patience"
    reduce_lr = "reduce_lr_on_plateau"
    precision = "precision"
    min_steps = "min_steps"
    job_id = "job_id"
    last_run_dir = "last_run_dir"
    grid_seed = "grid_seed"
    owner = "owner"


# Where the dashboard starts: TrainConfig's own defaults (ImageNet weights, head only, 128 px).
DEFAULT_CONFIG = TrainConfig()
# The widgets of each TrainConfig field: what apply_config writes when only some fields change.
FIELD_KEYS: dict[str, tuple[str, ...]] = {
    "weights": (K.weights_choice, K.weights_path),
    "image_size": (K.image_size,),
    "head": (K.pooling, K.dense, K.dropout, K.output, K.normalize),
    "augment": (K.augment, K.flip, K.rotation, K.zoom, K.translation, K.contrast),
    "fine_tune": (K.fine_tune, K.ft_freeze_at, K.ft_epochs, K.ft_lr),
    "early_stopping_patience": (K.early_stopping, K.patience),
}
# Every other field a widget sets is mapped from its declaration (tlcore.setting): its widget's key is its name.
DECLARED_FIELDS = tuple(
    name for name, info in declared(TrainConfig) if info.widget != NO_WIDGET and name not in FIELD_KEYS
)
FIELD_KEYS.update({name: (name,) for name in DECLARED_FIELDS})
# A preset or shortcut leaves the weights alone: the sidebar's weights are the user's situation
# (offline, a local file), not part of an experiment's recipe.
# The precision likewise: it is what this machine's device runs.
ALL_BUT_WEIGHTS = tuple(name for name in FIELD_KEYS if name not in ("weights", "precision"))


def config_to_state(config: TrainConfig, image_sizes: list[int] = IMAGE_SIZES) -> dict[str, WidgetValue]:
    """The widget state that describes `config`: the one config -> widgets half of the mapping.

    The image size snaps to the nearest offered size; dense sizes become comma text; a config without a
    second phase turns the phase-2 toggle off and shows FineTuneConfig's defaults behind it (early stopping
    likewise: its toggle off, the default PATIENCE behind it). A weights
    file sets the file choice and its path; "imagenet" and "none" leave the typed path as it is.
    """
    fine_tune = config.fine_tune or FineTuneConfig()
    state: dict[str, WidgetValue] = {
        K.image_size: min(image_sizes, key=lambda size: abs(size - config.image_size)),
        **{name: _widget_value(config, name) for name in DECLARED_FIELDS},
        K.pooling: config.head.pooling,
        K.dense: ",".join(str(units) for units in config.head.dense),
        K.dropout: float(config.head.dropout),
        K.output: config.head.output,
        K.normalize: config.head.normalize,
        K.augment: bool(config.augment.enabled),
        K.flip: bool(config.augment.flip),
        K.rotation: float(config.augment.rotation),
        K.zoom: float(config.augment.zoom),
        K.translation: float(config.augment.translation),
        K.contrast: float(config.augment.contrast),
        K.fine_tune: config.fine_tune is not None,
        K.ft_freeze_at: fine_tune.freeze_at,
        K.ft_epochs: fine_tune.epochs,
        K.ft_lr: float(fine_tune.learning_rate),
        K.early_stopping: config.early_stopping_patience is not None,
        K.patience: config.early_stopping_patience or PATIENCE,
    }
    if config.weights == NO_WEIGHTS:
        state[K.weights_choice] = WEIGHTS_SCRATCH
    elif config.weights == IMAGENET:
        state[K.weights_choice] = WEIGHTS_IMAGENET
    else:
        state.update({K.weights_choice: WEIGHTS_FILE, K.weights_path: config.weights})
    return state


def head_from_state(state: StateView) -> HeadConfig:
    """The head the widgets describe (raises ValueError for bad dense text)."""
    return HeadConfig(
        pooling=state[K.pooling],
        dense=parse_dense(state[K.dense]),
        dropout=float(state[K.dropout]),
        output=state[K.output],
        normalize=bool(state[K.normalize]),
    )


def augment_from_state(state: StateView) -> AugmentConfig:
    """The augmentation the widgets describe."""
    return AugmentConfig(
        enabled=bool(state[K.augment]),
        flip=bool(state[K.flip]),
        rotation=float(state[K.rotation]),
        zoom=float(state[K.zoom]),
        translation=float(state[K.translation]),
        contrast=float(state[K.contrast]),
    )


def state_to_config(state: StateView) -> TrainConfig:
    """The TrainConfig the widget state describes: the widgets -> config half (ValueError for bad values)."""
    fine_tune = None
    if state[K.fine_tune]:
        fine_tune = FineTuneConfig(int(state[K.ft_freeze_at]), int(state[K.ft_epochs]), float(state[K.ft_lr]))
    return TrainConfig(
        **{name: value_type(TrainConfig, name)[0](state[name]) for name in DECLARED_FIELDS},
        weights=_weights_from(state),
        image_size=int(state[K.image_size]),
        head=head_from_state(state),
        augment=augment_from_state(state),
        fine_tune=fine_tune,
        early_stopping_patience=int(state[K.patience]) if state[K.early_stopping] else None,
    )


def _widget_value(config: TrainConfig, name: str) -> WidgetValue:
    """A declared field's value as its widget holds it (a float widget holds a float, also for 1 or 0)."""
    value: WidgetValue = getattr(config, name)
    return float(value) if value_type(TrainConfig, name)[0] is float else value


DEFAULTS: dict[str, WidgetValue] = {
    K.source: SOURCE_SAMPLE,
    K.folder: "",
    K.zip_dir: "",
    K.weights_path: environment.text(WEIGHTS_ENV),
    **config_to_state(DEFAULT_CONFIG),
    K.grid_seed: 0,
}


def init_session_state() -> None:
    """Fill defaults, and keep widget values alive across pages.

    Streamlit forgets a widget's value when a page without that widget runs;
    writing each value back as plain state keeps it.
    """
    if environment.text(WEIGHTS_ENV) and K.weights_choice not in st.session_state:
        st.session_state[K.weights_choice] = WEIGHTS_FILE
    for key, value in DEFAULTS.items():
        if key not in st.session_state:
            st.session_state[key] = value
        else:
            st.session_state[key] = st.session_state[key]


# --- weights and config ---------------------------------------------------------------------


def _weights_file(state: StateView) -> tuple[str, str | None]:
    """The typed weights file (inside the data root, when one is set), or REFUSED_WEIGHTS and why."""
    try:
        return typed_weights_path(state[K.weights_path], environment.text(WEIGHTS_ENV)) or NO_WEIGHTS, None
    except (PathNotAllowed, DataRootError) as err:
        return REFUSED_WEIGHTS, str(err)


def _weights_from(state: StateView) -> str:
    choice = state[K.weights_choice]
    if choice == WEIGHTS_SCRATCH:
        return NO_WEIGHTS
    if choice == WEIGHTS_FILE:
        return _weights_file(state)[0]
    return _imagenet_source()


def _imagenet_source() -> str:
    """ "imagenet" (Keras' download), or the administrator's TLLAB_WEIGHTS file when Keras has none cached.

    On an offline server the administrator's file is the ImageNet weights: choosing "ImageNet" must work
    there, not ask for a download that cannot happen.
    """
    server_file = environment.text(WEIGHTS_ENV)
    if server_file and imagenet_cached_path(get_backbone(DEFAULT_BACKBONE)) is None:
        return server_file
    return IMAGENET


def weights_value() -> str:
    """The weights for TrainConfig: "imagenet", "none" or a file path (REFUSED_WEIGHTS for a refused one)."""
    return _weights_from(st.session_state)


def weights_ready() -> tuple[bool, str]:
    """Whether the chosen weights can be used now, in plain words; a refused path says why."""
    choice = st.session_state[K.weights_choice]
    if choice == WEIGHTS_FILE:
        _, refusal = _weights_file(st.session_state)
        if refusal:
            return False, refusal
    ok, message = weights_status(weights_value())
    if choice == WEIGHTS_IMAGENET and weights_value() != IMAGENET:
        return ok, f"ImageNet weights from the server's file: {message}"
    return ok, message


def parse_dense(text: str) -> tuple[int, ...]:
    """'1024, 512' -> (1024, 512); raises ValueError with the bad text."""
    try:
        return tuple(int(part) for part in str(text).replace(" ", "").split(",") if part)
    except ValueError:
        raise ValueError(f"Dense sizes must be whole numbers separated by commas. Received: {text!r}") from None


def balance_classes_toggle() -> None:
    """The "balance classes" control, shared by the Model page and the Dataset page's imbalance warning."""
    st.toggle(
        "Balance classes",
        key=K.balance_classes,
        help="Weight each class inversely to its number of "
        "training images, so the smaller class counts as much in the loss (Keras' class_weight).",
    )


def current_config() -> TrainConfig:
    """The TrainConfig the widgets describe (raises ValueError for bad values)."""
    return state_to_config(st.session_state)


def apply_config(config: TrainConfig, fields: tuple[str, ...] = ALL_BUT_WEIGHTS) -> None:
    """Set the widgets of these TrainConfig fields to `config` (from a button callback, which runs
    before the widgets exist again, so it may set their state)."""
    keys = {key for name in fields for key in FIELD_KEYS[name]}
    st.session_state.update({k: v for k, v in config_to_state(config).items() if k in keys})


@st.cache_resource(show_spinner=False)
def measure_machine_speed() -> None:
    """Once per server: time the machine in the background, so the Train page's first estimate need not wait."""
    measure_in_background()


def page_intro(title: str, text: str) -> None:
    """Every page opens with this: its title and a sentence or two for a learner."""
    run_through_app()
    st.title(title)
    st.write(text)
