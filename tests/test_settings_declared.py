"""Each setting declared once (tlcore.setting): validation, names, flags and widgets derive from the fields."""

from __future__ import annotations

import dataclasses

import pytest

from dashboard.state import DECLARED_FIELDS, DEFAULTS, config_to_state, state_to_config
from tlcore.cli import build_parser
from tlcore.cli.options import config_from_args, declared_flags
from tlcore.config import SETTING_NAMES, AugmentConfig, FineTuneConfig, HeadConfig, TrainConfig
from tlcore.setting import NO_WIDGET, Setting, check_fields, declared, setting


def test_every_field_says_its_name_in_words():
    for cls, prefix in (
        (TrainConfig, ""),
        (HeadConfig, "head."),
        (AugmentConfig, "augment."),
        (FineTuneConfig, "fine_tune."),
    ):
        for f in dataclasses.fields(cls):
            if f.name not in ("head", "augment"):  # configs of their own: their fields have the names
                assert SETTING_NAMES[prefix + f.name], f"{prefix}{f.name} declares no words"
    assert SETTING_NAMES["freeze_at"] == "phase 1: layers frozen"
    assert SETTING_NAMES["fine_tune.learning_rate"] == "phase 2 learning rate"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"image_size": 16}, "image_size must be at least 32. Received: image_size=16"),
        ({"optimizer": "adamw"}, "optimizer must be one of ('adam', 'rmsprop', 'sgd'). Received: optimizer='adamw'"),
        ({"freeze_at": 19}, "freeze_at must be between 0 and 18. Received: freeze_at=19"),
        ({"learning_rate": 0.0}, "learning_rate must be positive. Received: learning_rate=0.0"),
        ({"validation_split": 1.0}, "validation_split must be in (0, 1). Received: validation_split=1.0"),
        ({"epochs": 2.5}, "epochs must be a whole number. Received: epochs=2.5"),
        ({"balance_classes": 1}, "balance_classes must be true or false. Received: balance_classes=1"),
        (
            {"early_stopping_patience": 0},
            "early_stopping_patience must be at least 1. Received: early_stopping_patience=0",
        ),
    ],
)
def test_validation_comes_from_the_declarations(changes, message):
    with pytest.raises(ValueError) as caught:  # noqa: PT011 - the whole message is compared below
        TrainConfig(**changes)
    assert str(caught.value) == message


def test_optional_and_nested_values():
    assert TrainConfig(early_stopping_patience=None).early_stopping_patience is None  # None: off
    with pytest.raises(ValueError, match=r"fine_tune.epochs must be at least 1. Received: epochs=0"):
        FineTuneConfig(epochs=0)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\). Received: dropout=1.0"):
        HeadConfig(dropout=1.0)


def test_a_new_declared_field_is_checked_named_and_flagged():
    @dataclasses.dataclass(frozen=True)
    class Example:
        smoothing: float = setting(0.0, Setting("label smoothing", low=0.0, high=1.0, high_open=True, flag=True))

        def __post_init__(self) -> None:
            check_fields(self)

    with pytest.raises(ValueError, match=r"smoothing must be in \[0, 1\)"):
        Example(smoothing=1.0)
    assert [(name, info.label) for name, info in declared(Example)] == [("smoothing", "label smoothing")]


def test_declared_flags_reach_the_config_and_keep_their_place_in_help():
    parser = build_parser()
    args = parser.parse_args(
        [
            "train",
            "--data",
            "d",
            "--epochs",
            "7",
            "--optimizer",
            "sgd",
            "--reduce-lr-on-plateau",
            "--precision",
            "float32",
        ]
    )
    config = config_from_args(args)
    assert (config.epochs, config.optimizer, config.reduce_lr_on_plateau) == (7, "sgd", True)
    assert {name for name, _ in declared_flags()} >= {"epochs", "freeze_at", "learning_rate", "seed", "precision"}
    commands = next(action for action in parser._actions if action.dest == "command").choices
    assert isinstance(commands, dict)  # the subcommands' parsers by name
    help_text = commands["train"].format_help()
    places = [
        help_text.index(flag) for flag in ("--freeze-at", "--epochs", "--image-size", "--weights", "--batch-size")
    ]
    assert places == sorted(places)  # the order --help always had, hand-made --weights among the declared ones
    assert help_text.index("--balance-classes") < help_text.index("--min-steps") < help_text.index("--precision")


def test_the_dashboard_maps_every_declared_field_through_its_name():
    assert set(DECLARED_FIELDS) >= {"epochs", "learning_rate", "reduce_lr_on_plateau", "min_steps"}
    assert not {name for name, info in declared(TrainConfig) if info.widget == NO_WIDGET} & set(DECLARED_FIELDS)
    config = TrainConfig(weights="none", epochs=9, learning_rate=3e-4, reduce_lr_on_plateau=True, min_steps=0)
    state = {**DEFAULTS, **config_to_state(config)}
    assert state["learning_rate"] == 3e-4 and isinstance(state["learning_rate"], float)
    assert state_to_config(state) == config


def test_the_freeze_point_and_image_size_follow_the_backbones_spec(monkeypatch):
    from tlcore import backbones

    vgg16 = backbones.get_backbone("vgg16")
    tiny = dataclasses.replace(vgg16, name="tiny", min_image_size=16, layer_blocks=vgg16.layer_blocks[:5])
    monkeypatch.setitem(backbones.BACKBONES, "tiny", tiny)
    assert TrainConfig(backbone="tiny", image_size=16, freeze_at=5).freeze_at == 5  # VGG16 would refuse 16 px
    with pytest.raises(ValueError, match=r"freeze_at must be between 0 and 5. Received: freeze_at=6"):
        TrainConfig(backbone="tiny", freeze_at=6)
    with pytest.raises(ValueError, match=r"Unknown backbone. Expected one of .*Received: backbone='resnet50'"):
        TrainConfig(backbone="resnet50")
