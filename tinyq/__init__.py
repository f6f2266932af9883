"""tinyq: a Keras model to a microcontroller as full-int8 C, measured on the device.

Stages (each a module with one job, chained by :mod:`tinyq.pipeline`):
load -> quantize -> analyze -> plan -> emit -> build -> flash -> measure.
"""

__version__ = "0.1.0"
