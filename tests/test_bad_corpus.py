"""Every kind of bad file at once, in one dataset: the scan, the Dataset page, training and the CLI.

The corpus (tests/badcorpus.py) puts broken, foreign and odd files between
good images; each test checks one consumer against the corpus's table of
expectations.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.state import SOURCE_FOLDER, K
from tests.badcorpus import BAD_FILES, CONVERTED, IGNORED, BadFile, Corpus, build_bad_corpus, deny_reads, files_on_disk
from tests.conftest import ROOT
from tests.helpers import TINY_CONFIG, skipped_table
from tlcore.config import HeadConfig
from tlcore.data import DatasetInfo, scan
from tlcore.data_problems import display_path
from tlcore.imageio import open_rgb


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Corpus:
    """Built once: every test here only reads it."""
    return build_bad_corpus(tmp_path_factory.mktemp("bad") / "corpus")


@pytest.fixture
def denied(corpus, monkeypatch) -> Corpus:
    """The corpus with its unreadable file made unreadable for this test."""
    deny_reads(monkeypatch, corpus.denied)
    return corpus


@pytest.fixture
def info(denied) -> DatasetInfo:
    return scan(denied.root)


def _loaded(info: DatasetInfo) -> list[Path]:
    return [p for per_class in info.files.values() for paths in per_class.values() for p in paths]


# --- the scan ----------------------------------------------------------------------------


def test_the_corpus_has_every_kind_of_bad_input(corpus):
    outcomes = [f.outcome for f in corpus.files]
    assert sum(f.skipped for f in corpus.files) == 12
    assert outcomes.count(CONVERTED) == 10
    assert outcomes.count(IGNORED) == 4
    assert len({f.relpath for f in corpus.files}) == len({f.kind for f in corpus.files}) == len(corpus.files)


@pytest.mark.parametrize("bad", BAD_FILES, ids=lambda f: f.kind)
def test_scan_handles_each_kind(denied, info, bad: BadFile):
    path = denied.path(bad)
    skipped = {s.path: s.reason for s in info.skipped}
    if bad.outcome == IGNORED:
        assert path in info.ignored
        assert path not in skipped and path not in _loaded(info)
    elif bad.outcome == CONVERTED:
        assert path in info.files["train"]["cats"]  # under train/cats, sub-folders included
        assert path not in skipped and path not in info.ignored
        img = open_rgb(path)
        assert img.mode == "RGB"
        for (x, y), colour in bad.pixels:
            got = img.getpixel((x, y))
            assert isinstance(got, tuple)  # an RGB pixel
            assert all(abs(a - b) <= bad.tolerance for a, b in zip(got, colour)), ((x, y), got, colour)
    else:
        assert path in skipped, f"{bad.kind} was not skipped"
        assert bad.outcome in skipped[path]
        assert path not in _loaded(info) and path not in info.ignored


def test_scan_accounts_for_every_file_exactly_once(denied, info):
    on_disk = files_on_disk(denied.root)
    loaded, skipped = _loaded(info), [s.path for s in info.skipped]
    assert len(loaded) + len(skipped) + len(info.ignored) == len(on_disk) == info.files_on_disk
    assert set(loaded) | set(skipped) | set(info.ignored) == on_disk
    # nothing skipped or ignored beyond what the table expects
    assert sorted(skipped) == sorted(denied.path(f) for f in denied.select(skipped=True))
    assert sorted(info.ignored) == sorted(denied.path(f) for f in denied.select(outcome=IGNORED))


def test_every_good_image_around_the_bad_ones_loads(denied, info):
    assert info.class_names == ["cats", "dogs"]
    for split in ("train", "validation"):
        paths, _ = info.items(split)
        assert sorted(paths) == denied.usable(split)
    converted = len(denied.select(outcome=CONVERTED))
    assert info.counts() == {"train": {"cats": 8 + converted, "dogs": 8}, "validation": {"cats": 8, "dogs": 8}}
    assert info.warnings == []


def test_skip_reasons_are_short_single_lines(info):
    for item in info.skipped:
        assert item.reason and "\n" not in item.reason and len(item.reason) <= 200


# --- the Dataset page ------------------------------------------------------------------------


def test_dataset_page_lists_every_skipped_file_with_its_reason(denied):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=90)
    at.session_state[K.source] = SOURCE_FOLDER
    at.session_state[K.folder] = str(denied.root)
    at.run()
    assert not at.exception
    assert at.title[0].value == "Dataset"
    assert not at.main.error
    table = skipped_table(at)
    shown = dict(zip(table["file"], table["reason"]))
    expected = denied.select(skipped=True)
    assert len(shown) == len(table) == len(expected)
    for bad in expected:
        name = display_path(os.path.relpath(denied.path(bad), denied.root))
        assert name in shown, name
        assert bad.outcome in shown[name], (name, shown[name])
    ignored = len(denied.select(outcome=IGNORED))
    assert f"{ignored} other file(s) ignored" in " ".join(c.value for c in at.main.caption)


# --- training ----------------------------------------------------------------------------------


def test_training_on_the_rest_completes_with_every_usable_image(denied, info, runs_dir, caplog):
    from tlcore.runs import RunStore
    from tlcore.tf.training import prepare_data, train_and_record

    config = TINY_CONFIG.replace(head=HeadConfig(dense=(8,)))  # its dropout: the default
    with caplog.at_level(logging.WARNING, logger="tlcore.tf.pipeline"):
        data = prepare_data(info, config.image_size)
        result, run = train_and_record(config, info, RunStore(), data=data)
    assert result.status == "completed", result.reason
    assert len(result.history) == 1
    assert len(data.train) == info.num_images("train") == len(denied.usable("train"))
    assert len(data.validation) == len(denied.usable("validation"))
    # no image was stood in for by a blank one: every file decoded as in the scan
    assert not [r for r in caplog.records if "blank image" in r.getMessage()]
    assert run.record.dataset.skipped == len(denied.select(skipped=True))
    assert (run.run_dir / "model.keras").is_file()


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_scan_json_reports_every_skipped_file(denied, capsys):
    # In-process, so the injected permission error applies.
    from tlcore.cli import main

    assert main(["scan", str(denied.root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    reported = {item["path"]: item["reason"] for item in report["skipped"]}
    expected = denied.select(skipped=True)
    assert len(reported) == len(expected)
    for bad in expected:
        assert bad.outcome in reported[str(denied.path(bad))]
    assert report["ignored"] == len(denied.select(outcome=IGNORED))
    assert report["counts"]["train"] == {"cats": 8 + len(denied.select(outcome=CONVERTED)), "dogs": 8}


def test_python_m_tlcore_scan_on_the_corpus_exits_0(corpus):
    # A real subprocess, where no read can be denied to root: the locked file
    # loads there, and every other bad file is reported as in-process.
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.run(
        [sys.executable, "-m", "tlcore", "scan", str(corpus.root), "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    report = json.loads(proc.stdout)
    reported = {item["path"]: item["reason"] for item in report["skipped"]}
    readable = [f for f in corpus.select(skipped=True) if corpus.path(f) not in corpus.denied]
    assert set(reported) == {str(corpus.path(f)) for f in readable}
    for bad in readable:
        assert bad.outcome in reported[str(corpus.path(bad))]
