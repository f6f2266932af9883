"""The kernel descriptors, one module a kernel family or operator: :mod:`core` (the structs and kernels
every model uses, in tq_params.h's order), then every other module of this package in name order.

An operator's module holds its parameter struct, its :class:`~tinyq.compile.ops.kernel.Kernel` and its
lowering (CONTRIBUTING.md, "Adding an element-wise operator")."""

import importlib
import pkgutil

from tinyq.compile.ops.kernels import core  # noqa: F401  (first: tq_chan_t and the shared structs)

for _m in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _m != "core":
        importlib.import_module(f"{__name__}.{_m}")
