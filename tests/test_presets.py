"""Presets of the two seed articles: every setting, the notes on what changed, the big head's layer count."""

from __future__ import annotations

import json

import keras
import pytest

from tlcore.config import TrainConfig
from tlcore.estimate import estimate
from tlcore.presets import PRESETS, Preset, apply_preset, get_preset
from tlcore.tf.model import param_counts
from tlcore.tf.training import build_for

DEFAULTS = {
    "backbone": "vgg16",
    "seed": 1337,
    "validation_split": 0.2,
    "cache_features": True,
    "fine_tune": None,
    "balance_classes": False,
    "early_stopping_patience": None,  # the articles' own training: no early stopping...
    "min_steps": 0,  # ...and exactly their epochs and batch size
    "reduce_lr_on_plateau": False,
    "precision": "float32",  # a preset leaves it to the device
    "label_smoothing": 0.0,  # neither article smoothed its labels
}


def test_the_presets_are_named_for_what_they_teach_and_the_old_names_still_work():
    assert sorted(PRESETS) == ["augment-224", "big-head-64"]
    for name, preset in PRESETS.items():
        assert isinstance(preset, Preset) and preset.name == name and preset.title and preset.notes
        assert TrainConfig.from_dict(json.loads(preset.config.to_json())) == preset.config  # round-trips
        assert "Seed" not in preset.label and "seed" not in preset.label
    assert get_preset("seed-004") is PRESETS["augment-224"] and get_preset("seed-000") is PRESETS["big-head-64"]
    assert apply_preset("seed-000", epochs=2) == PRESETS["big-head-64"].config.replace(epochs=2)


def test_seed_004_fills_every_setting():
    assert apply_preset("seed-004").to_dict() == {
        **DEFAULTS,
        "weights": "imagenet",
        "image_size": 224,
        "batch_size": 20,
        "epochs": 10,
        "optimizer": "rmsprop",
        "learning_rate": 1e-4,
        "freeze_at": 18,
        "head": {"pooling": "flatten", "dense": [512], "dropout": 0.5, "output": "sigmoid", "normalize": False},
        "augment": {
            "enabled": True,
            "flip": True,
            "rotation": pytest.approx(40 / 360),
            "zoom": 0.2,
            "translation": 0.2,
            "contrast": 0.0,
        },
    }


def test_seed_000_fills_every_setting():
    assert apply_preset("seed-000").to_dict() == {
        **DEFAULTS,
        "weights": "imagenet",
        "image_size": 64,
        "batch_size": 32,
        "epochs": 50,
        "optimizer": "adam",
        "learning_rate": 1e-4,
        "freeze_at": 18,
        "head": {
            "pooling": "flatten",
            "dense": [1024, 1024, 512],
            "dropout": 0.0,
            "output": "softmax",
            "normalize": False,
        },
        "augment": {"enabled": False, "flip": True, "rotation": 0.1, "zoom": 0.1, "translation": 0.1, "contrast": 0.1},
    }


def test_the_notes_say_what_changed_and_why():
    notes_004 = " ".join(PRESETS["augment-224"].notes)
    for fragment in (
        "1/255",
        "preprocess_input",
        "steps_per_epoch=100",
        "one pass",
        "shear_range=0.2",
        "RandomShear",
        "40/360",
        "over an hour",
    ):
        assert fragment in notes_004
    notes_000 = " ".join(PRESETS["big-head-64"].notes)
    for fragment in (
        "Flatten",
        "model.layers[:20]",
        "19 layers",
        "23 in all",
        "only the last 3 layers train",
        "not 'the last 5'",
        "3,673,602",
        "preprocess_input",
        "unscaled",
    ):
        assert fragment in notes_000


def test_apply_preset_changes_and_unknown_names():
    assert apply_preset("big-head-64", weights="none", epochs=1) == PRESETS["big-head-64"].config.replace(
        weights="none", epochs=1
    )
    with pytest.raises(
        ValueError, match=r"Expected one of \['augment-224', 'big-head-64'\]. Received: preset='seed-999'"
    ):
        apply_preset("seed-999")


def _seed_000_model(flatten: bool) -> keras.Model:
    """Seed 000's model exactly as its code builds it (optionally with the Flatten it needs)."""
    base = keras.applications.VGG16(include_top=False, weights=None, input_shape=(64, 64, 3))
    x = keras.layers.Flatten()(base.output) if flatten else base.output
    x = keras.layers.Dense(1024, activation="relu")(x)
    x = keras.layers.Dense(1024, activation="relu")(x)
    x = keras.layers.Dense(512, activation="relu")(x)
    preds = keras.layers.Dense(2, activation="softmax")(x)
    model = keras.Model(base.input, preds)
    for layer in model.layers[:20]:
        layer.trainable = False
    for layer in model.layers[20:]:
        layer.trainable = True
    return model


def test_what_seed_000s_layers_20_froze():
    as_written = _seed_000_model(flatten=False)
    assert len(as_written.layers) == 19 + 4 == 23
    assert tuple(as_written.output.shape) == (None, 2, 2, 2)  # Dense on the 4-D map: not one output per image
    assert as_written.layers[19].name.startswith("dense") and not as_written.layers[19].trainable  # first Dense(1024)
    trainable = [layer for layer in as_written.layers if layer.trainable and layer.weights]
    assert [layer.units for layer in trainable] == [1024, 512, 2]  # the last 3, not "the last 5"
    assert sum(layer.count_params() for layer in trainable) == 1_575_426

    flattened = _seed_000_model(flatten=True)
    assert len(flattened.layers) == 24 and isinstance(flattened.layers[19], keras.layers.Flatten)
    assert [layer.units for layer in flattened.layers if layer.trainable and layer.weights] == [1024, 1024, 512, 2]

    ours = build_for(apply_preset("seed-000", weights="none"), 2)
    assert param_counts(ours) == (3_673_602, 14_714_688)  # whole head trains, all of VGG16 frozen
    assert sum(layer.count_params() for layer in flattened.layers if layer.trainable) == 3_673_602


def test_seed_004_at_224_px_on_a_cpu_takes_an_hour():
    config = apply_preset("seed-004")
    slow = estimate(config, n_train=2000, n_val=1000, speed=230.0)  # the article's data, a 2-core CPU
    assert slow.route == "end_to_end"  # augmentation: the frozen base runs again every epoch
    assert 5 * 60 < slow.epoch_seconds < 8 * 60 and slow.total_seconds > 3600
    fast = estimate(config.replace(augment=config.augment.__class__(enabled=False)), 2000, 1000, speed=230.0)
    assert fast.route == "cached" and fast.epoch_seconds < 1 and fast.total_seconds < slow.total_seconds / 8


def test_seed_004_model_matches_the_article():
    model = build_for(apply_preset("seed-004", weights="none"), 2)
    assert param_counts(model) == (7 * 7 * 512 * 512 + 512 + 512 + 1, 14_714_688)
    assert tuple(model.output.shape) == (None, 1)


def test_cli_train_with_a_preset(tiny_dataset, tmp_path, capsys):
    from tlcore.cli import main

    runs = tmp_path / "runs"
    code = main(
        [
            "train",
            "--preset",
            "seed-000",
            "--data",
            str(tiny_dataset),
            "--epochs",
            "1",
            "--image-size",
            "32",
            "--weights",
            "none",
            "--runs-dir",
            str(runs),
            "--json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0, out.err
    summary = json.loads(out.out)
    assert summary["status"] == "completed" and summary["path"] == "cached"
    config = json.loads((runs / summary["run_dir"].rsplit("/", 1)[-1] / "run.json").read_text())["config"]
    assert config["head"] == {
        "pooling": "flatten",
        "dense": [1024, 1024, 512],
        "dropout": 0.0,
        "output": "softmax",
        "normalize": False,
    }
    assert (
        config["optimizer"],
        config["learning_rate"],
        config["epochs"],
        config["image_size"],
        config["weights"],
    ) == ("adam", 1e-4, 1, 32, "none")
    assert "preset seed-000" in out.err and "layers[:20]" in out.err

    assert main(["train", "--preset", "nope", "--data", str(tiny_dataset)]) == 2
    assert "Received: preset='nope'" in capsys.readouterr().err
    assert main(["train", "--preset", "seed-000", "--config", str(runs), "--data", str(tiny_dataset)]) == 2
    assert "use one of them" in capsys.readouterr().err
