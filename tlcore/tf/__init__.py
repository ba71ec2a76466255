"""The TensorFlow side of the engine: every module here imports Keras / TensorFlow at its top.

tf.data pipelines (pipeline), our registered layers (layers), building, cutting and loading models
(backbones, model), training with Keras' fit (training; on cached features compiled_epochs and
fused_optimizers), the sweep's runner (sweep), prediction,
evaluation and Grad-CAM (inference, gradcam), and the augmentation preview (augment).

The rest of tlcore never imports this package at module level: where it starts TensorFlow work
(a job's worker, a CLI command) it imports from here inside that function.
"""
