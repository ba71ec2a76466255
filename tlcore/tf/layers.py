"""Custom layers saved inside our models (registered, so safe-mode loading works)."""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from tlcore.architecture import SCRIPT_PREPROCESS

# ImageNet channel means in BGR order, as keras.applications.vgg16.preprocess_input uses.
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@keras.saving.register_keras_serializable(package="tlcore")
class CaffePreprocess(keras.layers.Layer):
    """VGG16's own input preprocessing as a layer: RGB 0..255 -> BGR minus ImageNet mean.

    Equal to keras.applications.vgg16.preprocess_input ("caffe" mode). It is
    *not* a 1/255 rescale: VGG16's ImageNet weights expect this input.
    """

    def call(self, inputs: Any) -> Any:
        bgr = ops.flip(ops.cast(inputs, self.compute_dtype), axis=-1)
        return bgr - ops.convert_to_tensor(_CAFFE_MEAN_BGR, dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape


# A model saved by a script `tlcore code` wrote names the script's own copy of this layer.
keras.saving.get_custom_objects()[SCRIPT_PREPROCESS] = CaffePreprocess
