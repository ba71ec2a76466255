"""VGG16's facts are written once (tlcore.backbone_facts) and everything else reads them."""

from __future__ import annotations

import io
import subprocess
import sys
import tokenize
from pathlib import Path

from tlcore import advisor, backbone_facts, config, sweep
from tlcore.backbone_facts import (
    BLOCK5,
    BLOCKS4_5,
    DEFAULT_BACKBONE,
    EVERYTHING,
    HEAD_ONLY,
    VGG16,
    VGG16_BLOCK_BOUNDARIES,
    VGG16_CHAIN,
    VGG16_CONVS,
    VGG16_LAST_CONV,
    VGG16_LAYERS,
)
from tlcore.backbones import get_backbone

ROOT = Path(__file__).resolve().parents[1]


def test_vgg16s_facts():
    assert DEFAULT_BACKBONE == VGG16 == "vgg16"
    assert VGG16_LAYERS == len(VGG16_CHAIN) == 18 and len(VGG16_CONVS) == 13
    assert VGG16_BLOCK_BOUNDARIES == (0, 3, 6, 10, 14, 18)
    assert (HEAD_ONLY, BLOCK5, BLOCKS4_5, EVERYTHING) == (18, 14, 10, 0)
    assert VGG16_LAST_CONV == "block5_conv3"


def test_the_registry_the_config_the_advisor_and_the_sweep_read_them():
    spec = get_backbone(DEFAULT_BACKBONE)
    assert spec.name == VGG16 and spec.num_layers == VGG16_LAYERS
    assert spec.block_boundaries == VGG16_BLOCK_BOUNDARIES and spec.last_conv_layer == VGG16_LAST_CONV
    assert config.TrainConfig().backbone == DEFAULT_BACKBONE
    assert config.TrainConfig().freeze_at == HEAD_ONLY and config.FineTuneConfig().freeze_at == BLOCK5
    assert config.VGG16_LAYERS is VGG16_LAYERS
    assert (advisor.HEAD_ONLY, advisor.BLOCK5, advisor.BLOCKS4_5, advisor.EVERYTHING) == (
        HEAD_ONLY,
        BLOCK5,
        BLOCKS4_5,
        EVERYTHING,
    )
    assert tuple(reversed(VGG16_BLOCK_BOUNDARIES)) == sweep.DEFAULT_POINTS  # the head alone first


def test_the_facts_module_imports_no_tlcore_module_so_config_can_read_it():
    code = (
        "import sys, tlcore.backbone_facts\n"
        "print(sorted(m for m in sys.modules if m.startswith('tlcore.')), 'tensorflow' in sys.modules)\n"
        "import tlcore.config\n"
    )  # no import cycle: config reads the facts module first
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['tlcore.backbone_facts']", "False"]


def test_no_vgg16_string_outside_the_facts_module():
    """The backbone's name is written once: every other module of the engine and the pages names it by constant."""
    found = []
    for path in sorted(
        [
            *(ROOT / "tlcore").rglob("*.py"),
            *(ROOT / "dashboard").rglob("*.py"),
            *(ROOT / "pages").glob("*.py"),
            ROOT / "app.py",
        ]
    ):
        if path.name == Path(backbone_facts.__file__).name:
            continue
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if token.type == tokenize.STRING and token.string.strip("'\"").lower() == VGG16:
                found.append(f"{path.relative_to(ROOT)}:{token.start[0]}")
    assert found == []
