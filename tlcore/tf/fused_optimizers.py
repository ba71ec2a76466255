"""Keras' Adam and SGD with each variable's update as one fused TensorFlow kernel, for the cached route's epochs.

Keras 3 writes an optimizer's update as a dozen element-wise ops per variable
(Adam: subtract, multiply, square, add, sqrt, divide, three assigns...); on a
head with a 512 x 256 kernel they are most of a cached epoch's time.
TensorFlow's training kernels do the same arithmetic in one pass. Everything
else (step counter, learning rate and its changes by callbacks, loss scaling,
clipping, weight decay, the optimizer variables) is Keras' own, so a fused
optimizer trains the same weights as its Keras twin. Used only for the cached
route's trainable suffix, never saved: a saved model never names these classes.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf


class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam with each variable updated by one `ResourceApplyAdam`.

    m += (g - m)(1 - beta_1); v += (g^2 - v)(1 - beta_2);
    var -= alpha m / (sqrt(v) + epsilon), alpha = lr sqrt(1 - beta_2^t) / (1 - beta_1^t),
    exactly `keras.optimizers.Adam.update_step` (amsgrad excepted: Keras' own update runs).
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].handle,
            v=self._velocities[index].handle,
            beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step),
            lr=tf.cast(learning_rate, dtype),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )
        return None


class FusedSGD(keras.optimizers.SGD):
    """keras.optimizers.SGD with momentum, each variable updated by one `ResourceApplyKerasMomentum`.

    m = momentum m - lr g; var += m (Nesterov: var += momentum m - lr g), exactly
    `keras.optimizers.SGD.update_step` (without momentum Keras' own update runs).
    """

    def update_step(self, gradient: Any, variable: Any, learning_rate: Any) -> None:
        if self.momentum == 0:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        tf.raw_ops.ResourceApplyKerasMomentum(
            var=variable.handle,
            accum=self.momentums[self._get_variable_index(variable)].handle,
            lr=tf.cast(learning_rate, dtype),
            grad=tf.cast(gradient, dtype),
            momentum=tf.cast(self.momentum, dtype),
            use_nesterov=self.nesterov,
        )
        return None
