"""Compile: from an int8 graph to firmware. analyze (what the model is, whether it runs), plan (memory and
kernels, as passes), emit (C from templates), hostrun (the generated C against TFLM on the host), firmware
(the cross-compile), budget (flash and RAM before anything is compiled)."""
