"""tinyq: a Keras model to a microcontroller as full-int8 C, measured on the device.

Stages (chained by :mod:`tinyq.pipeline`), in sub-packages whose imports flow one way:
model (load -> quantize), compile (analyze -> plan -> emit -> firmware), device (flash), report (measure).
"""

__version__ = "0.1.0"
