"""Does the generated training script (`python -m tlcore code`) predict what the lab's run predicts?

For each seed: the lab trains the defaults (128 px, head only, the ImageNet weights file) on the bundled
sample's own train/validation folders (`train_and_record`), and the script written for the same settings
runs as a learner runs it (`python train.py` in a folder of its own, nothing of the lab importable). Both
saved models then predict the sample's validation images: the share with the same top class, and each
model's accuracy. The two cannot be bit-identical (the script decodes and resizes with Keras' own
`image_dataset_from_directory`, shuffles with its own order, and does no feature caching: its header says so).

    python -m bench.script_agreement [--seeds 1,2,3]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from bench._common import SAMPLE_DATA, emit, load_average, note, rounded, run_facts, setup, weights_file


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default 1,2,3)")
    args = parser.parse_args()
    setup()
    load_before = load_average()
    weights = str(weights_file())
    import keras

    from tlcore.codegen import training_script
    from tlcore.config import TrainConfig
    from tlcore.data import scan
    from tlcore.runs import RunStore
    from tlcore.script_folder import DataFolder
    from tlcore.tf.inference import probabilities
    from tlcore.tf.layers import CaffePreprocess
    from tlcore.tf.model import load_run_model
    from tlcore.tf.pipeline import decode_all
    from tlcore.tf.training import train_and_record

    info = scan(SAMPLE_DATA)
    rows = []
    with tempfile.TemporaryDirectory(prefix="tllab-bench-script-") as tmp:
        for seed in (int(s) for s in args.seeds.split(",")):
            config = TrainConfig(weights=weights, seed=seed)
            result, run = train_and_record(config, info, RunStore(Path(tmp) / "runs"))
            folder = Path(tmp) / f"script-{seed}"
            folder.mkdir()
            (folder / "train.py").write_text(training_script(config, DataFolder.from_info(info), f"seed {seed}"))
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}  # nothing of the lab importable
            done = subprocess.run([sys.executable, "train.py"], cwd=folder, env=env, capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemExit(f"the script for seed {seed} failed:\n{done.stderr[-2000:]}")
            (saved,) = folder.glob("*.keras")
            script_model = keras.models.load_model(
                saved, custom_objects={"train_py>CaffePreprocess": CaffePreprocess}, compile=False
            )
            paths, labels = info.items("validation")  # both models on the same pixels: the lab's decoding
            pixels = decode_all(paths, config.image_size).astype(np.float32)
            lab = probabilities(load_run_model(run.run_dir), pixels).argmax(axis=1)
            script = probabilities(script_model, pixels).argmax(axis=1)
            row = {
                "seed": seed,
                "images": len(labels),
                "same_top_class": int(np.sum(lab == script)),
                "agreement": rounded(float(np.mean(lab == script))),
                "lab_accuracy": rounded(float(np.mean(lab == np.asarray(labels)))),
                "script_accuracy": rounded(float(np.mean(script == np.asarray(labels)))),
                "lab_epochs": len(result.history),
            }
            note(f"seed {seed}: {row}")
            rows.append(row)
    emit(
        {
            "benchmark": "script_agreement",
            **run_facts(load_before),
            "seeds": rows,
            "mean_agreement": rounded(float(np.mean([r["agreement"] for r in rows]))),
        }
    )


if __name__ == "__main__":
    main()
