"""Which test modules need TensorFlow, Ray, a browser or another process: the lanes the fast lane leaves out.

Measured by running each module on its own process (TensorFlow's when any test imported it); the fast lane
(scripts/test.sh --fast) fails a test that imports TensorFlow, naming its module. test_transfer needs the
real ImageNet weights and trains.
"""

from __future__ import annotations

TENSORFLOW = frozenset(
    {
        "test_app",
        "test_architecture",
        "test_bad_corpus",
        "test_class_board",
        "test_class_mode",
        "test_classroom",
        "test_cli",
        "test_cli_changes",
        "test_codegen",
        "test_compiled_epochs",
        "test_devices",
        "test_explain",
        "test_explain_compare",
        "test_export",
        "test_faults",
        "test_feature_store",
        "test_featuremaps",
        "test_fit_options",
        "test_gradcam",
        "test_inference",
        "test_jobs",
        "test_label_smoothing",
        "test_lr_finder",
        "test_model",
        "test_neighbours",
        "test_ownership",
        "test_page_compare",
        "test_page_dataset",
        "test_page_export",
        "test_page_feature_maps",
        "test_page_gradcam",
        "test_page_inference",
        "test_page_lr_finder",
        "test_page_model",
        "test_page_probe",
        "test_page_runs",
        "test_page_runs_changes",
        "test_page_sweep",
        "test_page_train",
        "test_presets",
        "test_probe",
        "test_races",
        "test_release",
        "test_runs",
        "test_schedule",
        "test_sweep",
        "test_training",
        "test_transfer",
        "test_transfer_curve",
        "test_untrusted_models",
        "test_weight_changes",
    }
)
RAY = frozenset({"test_ray"})
BROWSER = frozenset({"test_browser", "test_browser_class", "test_browser_class_layout", "test_browser_layout"})
# Modules whose tests mostly start processes; a module with one quick `python -c` check stays in the fast lane.
SUBPROCESS = frozenset({"test_cli_lr_find", "test_layout", "test_unusable_datasets"})
LANES = {"tensorflow": TENSORFLOW, "ray": RAY, "browser": BROWSER, "subprocess": SUBPROCESS}


def lanes_of(module: str) -> list[str]:
    """The lanes of a test module ("tests.test_ray" or "test_ray"): none for a fast one."""
    name = module.rsplit(".", 1)[-1]
    return [lane for lane, modules in LANES.items() if name in modules]
