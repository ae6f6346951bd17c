"""A speed trick, isolated: Keras's Adam with each update done by TensorFlow's fused kernel.

Keras 3 writes Adam's update as about a dozen elementwise ops per variable, each a pass through
memory; for our 13.3 M weights on a 2-core CPU that took 37-40 ms a step, TF's fused
`ResourceApplyAdam` kernel 11 ms (docs/performance.md). Same rule, hyperparameters, slots and
checkpoints as keras.optimizers.Adam (tests/test_fused_adam.py compares the two).

It reads Adam's private slot lists (`_momentums`, `_velocities`, `_get_variable_index`), so it
is used only with the Keras versions it was checked against, on one device; anywhere else
`make_adam` returns the plain keras.optimizers.Adam and says so in one warning line.
"""

import sys

import keras
import tensorflow as tf

CHECKED_KERAS_VERSIONS = ("3.15",)  # major.minor releases this was tested with
PRIVATE_NAMES = ("_momentums", "_velocities", "_get_variable_index")
_warned = set()  # reasons already printed: one line per process, not one per optimizer


class FusedAdam(keras.optimizers.Adam):
    """keras.optimizers.Adam whose per-variable update runs in one ResourceApplyAdam kernel."""

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:  # the fused kernel has no AMSGrad
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        local_step = tf.cast(self.iterations + 1, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle,
            m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle,
            beta1_power=tf.pow(tf.cast(self.beta_1, dtype), local_step),
            beta2_power=tf.pow(tf.cast(self.beta_2, dtype), local_step),
            lr=tf.cast(learning_rate, dtype),
            beta1=tf.cast(self.beta_1, dtype),
            beta2=tf.cast(self.beta_2, dtype),
            epsilon=tf.cast(self.epsilon, dtype),
            grad=tf.cast(gradient, dtype),
        )


def unsupported_reason(replicas=1):
    """Why the fused path cannot be used here, or None when it can."""
    version = ".".join(keras.__version__.split(".")[:2])
    if version not in CHECKED_KERAS_VERSIONS:
        return f"keras {keras.__version__} is not a version it was checked with"
    if replicas > 1:
        return f"it updates one device's variables, and this run has {replicas} replicas"
    probe = keras.optimizers.Adam()
    probe.build([keras.Variable(0.0)])
    missing = [name for name in PRIVATE_NAMES if not hasattr(probe, name)]
    if missing:
        return f"keras.optimizers.Adam has no {', '.join(missing)}"
    return None


def make_adam(learning_rate, beta_1, beta_2, fused=True, replicas=1):
    """FusedAdam where it is supported and asked for, else keras.optimizers.Adam (with a
    one-line warning on stderr when the fused path was asked for but cannot be used)."""
    if fused:
        reason = unsupported_reason(replicas)
        if reason is None:
            return FusedAdam(learning_rate, beta_1=beta_1, beta_2=beta_2)
        if reason not in _warned:
            _warned.add(reason)
            print(
                f"warning: fused Adam off ({reason}); using keras.optimizers.Adam", file=sys.stderr
            )
    return keras.optimizers.Adam(learning_rate, beta_1=beta_1, beta_2=beta_2)
