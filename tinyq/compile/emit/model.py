"""Emit the model as C: weights as const arrays, one kernel call per op, a static arena."""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache

import jinja2
import numpy as np

from tinyq import __version__
from tinyq.graph import Graph
from tinyq.compile.plan import MemoryPlan, shared_arrays
from tinyq.resources import TEMPLATES_DIR

_CTYPES = {"INT8": "int8_t", "INT32": "int32_t", "INT16": "int16_t", "UINT8": "uint8_t", "INT64": "int64_t", "FLOAT32": "float"}


def c_comment(text: str) -> str:
    """``text`` made safe inside a C or C++ comment: printable ASCII only (a newline would end a
    ``//`` comment, a trailing backslash continue it), and no ``*/`` or ``/*``."""
    safe = "".join(c if " " <= c <= "~" and c != "\\" else "?" for c in str(text))
    return safe.replace("*/", "*?").replace("/*", "?*")


@lru_cache(maxsize=None)
def environment() -> jinja2.Environment:
    """The jinja environment every tinyq template is rendered with."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )
    env.filters["comment"] = c_comment
    return env


def _rows(items: list[str], per_row: int) -> list[str]:
    return [", ".join(items[i : i + per_row]) + "," for i in range(0, len(items), per_row)]


def c_rows(values, per_row: int = 16) -> list[str]:
    """Format integers as C initializer rows, ``per_row`` a line, each ending in a comma."""
    return _rows([str(int(v)) for v in np.asarray(values).ravel()], per_row)


def const_rows(ctype: str, values) -> list[str]:
    """Initializer rows of an op's ConstArray: structs as {...}, uint32 words in hex, integers as they are."""
    if values and isinstance(values[0], tuple):
        return _rows(["{" + ", ".join(str(int(v)) for v in t) + "}" for t in values], 4)
    if ctype == "uint32_t":
        return _rows([f"0x{int(v):08x}u" for v in values], 8)
    return c_rows(values)


def _c_ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)


def _tensor_expr(graph: Graph, plan: MemoryPlan, index, written: bool, prefix: str,
                 shared: dict[str, str] | None = None) -> str:
    if isinstance(index, str):
        return (shared or {}).get(index[1:], f"{prefix}_{index[1:]}")
    if index < 0:
        return "NULL"
    t = graph.tensors[index]
    if t.is_constant:
        return f"tq_w{index}"
    # Activations are passed as bytes, whatever their type: a kernel that reads or writes other values (ARG_MAX's
    # int32 / int64 indices, the float ends) takes them as void *, and RESHAPE copies them as bytes.
    return f"ARENA({'' if written else 'const '}int8_t, {plan.offsets[index]})"


def _resolve(fields, prefix: str, scratch: int | None, shared: dict[str, str] | None = None) -> list[tuple[str, object]]:
    """A params struct's fields as C: "@name" is the call's ConstArray (or the earlier call's it shares,
    ``shared``: name -> C name), "$scratch" its scratch in the arena."""
    out = []
    for f, v in fields:
        if isinstance(v, str) and v.startswith("@"):
            name, _, rest = v[1:].partition(" ")
            v = (shared or {}).get(name, f"{prefix}_{name}") + (f" {rest}" if rest else "")
        elif v == "$scratch":
            v = f"(void *)(tq_arena + {scratch})"
        out.append((f, v))
    return out


def _call_consts(call, prefix: str, pname: str, scratch: int | None,
                 shared: dict[str, str] | None = None) -> tuple[list[dict], dict | None]:
    """A call's const arrays (less those it shares with an earlier call) and its params struct, for the template."""
    shared = shared or {}
    arrays = [{"cname": f"{prefix}_{a.name}", "ctype": a.ctype, "count": len(a.values),
               "rows": const_rows(a.ctype, a.values)} for a in call.arrays if a.name not in shared]
    struct = ({"type": call.params_type, "name": pname, "fields": _resolve(call.params, prefix, scratch, shared)}
              if call.params_type else None)
    return arrays, struct


def _band_op(graph: Graph, plan: MemoryPlan, index: int, step) -> dict:
    """A tq_band_run step: each stage's constants and params (its scratch after the windows), and the
    stage table pointing at them and at the windows in the arena."""
    from tinyq.compile.ops.band import window_offsets

    call = step.call
    base = plan.scratch_offsets[index]
    arrays, structs, rows = [], [], []
    *offsets, window_bytes = window_offsets([dict(st.params) for st in call.stages], call.windows)
    for k, (stage, rows_held, at) in enumerate(zip(call.stages, call.windows, offsets)):
        prefix = f"op{index}s{k}"
        a, struct = _call_consts(stage, prefix, f"{prefix}_p", base + window_bytes)
        arrays += a
        structs.append(struct)
        add = "NULL"
        if stage.params2:
            structs.append({"type": stage.params2[0], "name": f"{prefix}_s",
                            "fields": _resolve(stage.params2[1], prefix, base + window_bytes)})
            add = f"&{prefix}_s"
        filt = _tensor_expr(graph, plan, stage.args[1], False, prefix)
        buf = f"ARENA(int8_t, {base + at})" if at is not None else "NULL"
        fn = "tq_conv2d_s8" if stage.function == "tq_conv2d_add_s8" else stage.function  # unused with an ADD
        rows.append(f"{{{fn}, &{prefix}_p, {filt}, {buf}, {rows_held}, {add}}},")
    table = {"cname": f"op{index}_stages", "ctype": "tq_band_stage_t", "count": len(rows), "rows": rows}
    x, skip, y = call.args
    return {"index": index, "name": step.name, "arrays": arrays, "structs": structs, "tables": [table],
            "call": f"tq_band_run(op{index}_stages, {len(rows)}u, {_tensor_expr(graph, plan, x, False, '')}, "
                    f"{_tensor_expr(graph, plan, skip, False, '')}, {_tensor_expr(graph, plan, y, True, '')})"}


#: The tq_model_type_t name of each tensor type a model's input or output may have.
_TYPE_ENUM = {"int8": "TQ_TYPE_INT8", "uint8": "TQ_TYPE_UINT8", "int16": "TQ_TYPE_INT16", "int32": "TQ_TYPE_INT32",
              "int64": "TQ_TYPE_INT64", "float32": "TQ_TYPE_FLOAT32", "bool": "TQ_TYPE_BOOL"}


def model_name(source: str, name: str | None = None) -> str:
    """The build's name as a C identifier (the Arduino, PlatformIO and CMake library name): ``name`` if given,
    else tinyq_<the model file's stem>; anything but letters, digits and underscores becomes an underscore,
    and a leading digit gets an underscore before it."""
    if name is None:
        stem = str(source).replace("\\", "/").rsplit("/", 1)[-1].split(".")[0]
        name = f"tinyq_{stem or 'model'}"
    ident = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return f"_{ident}" if ident[:1].isdigit() else ident


def classifier_classes(graph: Graph) -> int:
    """How many classes the model's first output scores (0: not a classifier): a vector of at least two
    int8 or float32 values ([N] or [1, ..., 1, N])."""
    t = graph.output_tensors[0]
    if t.numpy_dtype.name not in ("int8", "float32") or not t.shape or t.size != t.shape[-1] or t.size < 2:
        return 0
    return int(t.size)


def c_float(value: float) -> str:
    """A float32 as a C float literal that reads back as the same float (9 significant digits)."""
    text = f"{float(value):.9g}"
    return (text if any(c in text for c in ".en") else text + ".0") + "f"


def c_string(text: str) -> str:
    """``text`` as a C string literal: printable ASCII as it is, anything else (UTF-8 bytes included) as
    octal escapes, so any label compiles and prints as the user wrote it."""
    out = []
    for b in str(text).encode("utf-8"):
        c = chr(b)
        out.append("\\" + c if c in '"\\' else c if 32 <= b < 127 and c != "?" else f"\\{b:03o}")
    return '"' + "".join(out) + '"'


def _localised(ops: list[dict]) -> None:
    """Mark, for tq_model_run_with_arena, each op's params structs and tables that hold an arena address (a
    scratch, a band's windows) or point at one that does: that function re-makes them on its stack from the
    caller's arena (file-scope consts can only hold the static arena's addresses)."""
    for op in ops:
        items = [(st["name"], " ".join(str(v) for _, v in st["fields"]), st) for st in op["structs"]]
        items += [(t["cname"], " ".join(t["rows"]), t) for t in op["tables"]]
        local: set[str] = set()
        changed = True
        while changed:
            changed = False
            for name, text, _ in items:
                if name not in local and ("tq_arena" in text or "ARENA(" in text
                                          or any(re.search(rf"\b{n}\b", text) for n in local)):
                    local.add(name)
                    changed = True
        op["local_structs"] = [st for name, _, st in items if name in local and "fields" in st]
        op["local_tables"] = [t for name, _, t in items if name in local and "rows" in t]


def api_facts(plan: MemoryPlan, labels: list[str] | None = None) -> dict:
    """What the generated API says of the model's ends: each input's and output's slot (name, type, shape,
    bytes, offset in its buffer, scale, zero point, place in the arena), its class count and labels (``labels``
    or "0".."N-1"). The model's C and the library's examples are rendered from the same facts."""
    graph = plan.graph

    def slots(side: str) -> list[dict]:
        return [{"name": t.name, "bytes": t.nbytes, "offset": off, "arena": plan.offsets[t.index],
                 "shape": list(t.shape), "type": t.numpy_dtype.name, "enum": _TYPE_ENUM[t.numpy_dtype.name],
                 "elements": t.size, "c_name": c_string(t.name),
                 "scale_c": c_float(t.quant.scale[0] if t.quant else 0.0),
                 # float32 scales printed to 9 digits read back as the very float the .tflite holds
                 "scale": f"{t.quant.scale[0]:.9g}" if t.quant else "", "zp": t.quant.zero_point[0] if t.quant else 0}
                for t, off in graph.io_slots(side)]
    classes = classifier_classes(graph)
    if labels is not None and len(labels) != classes:
        raise ValueError(f"{len(labels)} labels for {classes} classes")
    return {"inputs": slots("input"), "outputs": slots("output"), "classes": classes,
            "labels": list(labels) if labels is not None else [str(k) for k in range(classes)]}


def emit_model(plan: MemoryPlan, tflite: bytes, source: str = "model.tflite", name: str | None = None,
               labels: list[str] | None = None) -> dict[str, str]:
    """Render tq_model.h, tq_model.c, tq_weights.h and tq_weights.c for the model ``plan`` lays out
    (its graph: the model's, plus any tensor a lowering pass added). ``name`` is the build's name
    (:func:`model_name`), ``labels`` the class names of a classifier (else "0".."N-1")."""
    graph = plan.graph
    model_id = hashlib.sha256(tflite).hexdigest()[:12]
    consts = sorted({i for c in plan.kernel_calls for i in c.args
                     if isinstance(i, int) and i >= 0 and graph.tensors[i].is_constant})
    weights = []
    for i in consts:
        t = graph.tensors[i]
        weights.append({
            "name": t.name[:80].replace("*/", "*_/"), "cname": f"tq_w{i}", "ctype": _CTYPES[t.dtype],
            "dtype": t.dtype, "shape": list(t.shape), "count": t.size, "rows": c_rows(t.data),
            "per_channel": bool(t.quant and t.quant.per_channel),
        })
    ops = []
    shared_by: dict[int, dict[str, str]] = {}
    for (k, name), (j, _) in shared_arrays(plan.calls).items():
        shared_by.setdefault(k, {})[name] = f"op{j}_{name}"
    for index, step in enumerate(plan.steps):
        if step.call.stages:
            ops.append(_band_op(graph, plan, index, step))
            continue
        call = step.call
        prefix = f"op{index}"
        scratch = plan.scratch_offsets.get(index)
        shared = shared_by.get(index, {})
        arrays, struct = _call_consts(call, prefix, f"{prefix}_p", scratch, shared)
        outs = set(step.outputs)
        args = [_tensor_expr(graph, plan, i, i in outs or i in call.persistent, prefix, shared) for i in call.args]
        if call.pack_inputs:
            args = ["(const int8_t *const[]){" + ", ".join(args[:-1]) + "}", args[-1]]
        if call.pack_outputs:
            args = [args[0], "(int8_t *const[]){" + ", ".join(args[1:]) + "}"]
        lead = list(call.lead_args) + ([f"&{prefix}_p"] if call.params_type else [])
        structs = [struct] if struct else []
        if call.params2:
            lead.append(f"&{prefix}_s")
            structs.append({"type": call.params2[0], "name": f"{prefix}_s",
                            "fields": _resolve(call.params2[1], prefix, scratch, shared)})
        ops.append({"index": index, "name": step.name, "arrays": arrays, "structs": structs, "tables": [],
                    "call": f"{call.function}({', '.join(lead + args)})"})
    _localised(ops)
    facts = api_facts(plan, labels)
    inputs, outputs, classes = facts["inputs"], facts["outputs"], facts["classes"]
    # State kept between inferences (an SVDF's): tq_model_reset() zeroes it (the arena starts at zero).
    states = [{"name": graph.tensors[t].name, "offset": plan.offsets[t], "bytes": graph.tensors[t].nbytes}
              for t in dict.fromkeys(t for c in plan.calls for t in c.persistent)]
    buffers = [{"offset": b.offset, "size": b.size, "first": b.first, "last": b.last,
                "names": ", ".join(f"t{t}" for t in b.tensors)} for b in plan.buffers]
    ctx = {
        "version": __version__, "source": source, "model_id": model_id,
        "input_bytes": graph.input_bytes, "output_bytes": graph.output_bytes, "single_int8_io": graph.single_int8_io,
        "inputs": inputs, "outputs": outputs, "name": model_name(source, name),
        "max_rank": max([1] + [len(x["shape"]) for x in inputs + outputs]),
        "classes": classes, "labels": [c_string(l) for l in facts["labels"]],
        "arena_bytes": max(plan.arena_bytes, 4), "weight_bytes": plan.weight_bytes,
        "macs": plan.model_macs, "ops": ops, "weights": weights, "buffers": buffers, "states": states,
    }
    env = environment()
    return {name: env.get_template(f"model/{name}.j2").render(**ctx)
            for name in ("tq_model.h", "tq_model.c", "tq_weights.h", "tq_weights.c")}
