"""Property tests: whatever bytes or text arrive, only a TinyqError may escape.

Three readers take data from outside: the .tflite reader (files from anywhere), the
protocol parser (whatever a device or a noisy serial line prints) and the board loader
(board files users write). Each is fed thousands of mutated real inputs. The figures
are quoted in the README ("What tinyq guarantees"); TINYQ_FUZZ_EXAMPLES raises them.

Malformed flatbuffers are one kind of bad file; well-formed ones with hostile values (zero
and huge dimensions, scales of 0, inf or NaN, zero points out of range, quantization axes
past the shape, buffers shorter than their tensors, absurd strides and windows) are the
other (tests/hostile.py makes them). Each must be refused with a TinyqError or built
exactly: the generated C run on the host and compared with TFLM, byte for byte.
TINYQ_FUZZ_BUILDS sets how many of those end-to-end checks run.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyq.compile.analyze import analyze, tflite_kind
from tinyq.boards import BOARDS_DIR, load_board_file
from tinyq.errors import TinyqError
from tinyq.graph import parse_tflite
from tinyq.compile.plan import plan_model
from tinyq.device.protocol import parse_log

DATA = Path(__file__).parent / "data"
EXAMPLES = int(os.environ.get("TINYQ_FUZZ_EXAMPLES", "2000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

TINY = (DATA / "tiny_int8.tflite").read_bytes()
BUILDS = int(os.environ.get("TINYQ_FUZZ_BUILDS", "16"))


@st.composite
def mutated(draw, seed: bytes):
    """``seed`` with a few bytes overwritten, a slice cut out or repeated, or a truncation."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["set", "cut", "dup", "truncate", "int32"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "set":
            data[i] = draw(st.integers(0, 255))
        elif kind == "int32":  # flatbuffer offsets and lengths are 32-bit: hit them whole
            v = draw(st.sampled_from([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000, len(data), len(data) + 4]))
            data[i : i + 4] = v.to_bytes(4, "little")
        elif kind == "cut":
            del data[i : i + draw(st.integers(1, 64))]
        elif kind == "dup":
            data[i:i] = data[i : i + draw(st.integers(1, 64))]
        else:
            del data[i:]
    return bytes(data)


def only_tinyq_errors(fn, *args) -> None:
    """Run ``fn``; a TinyqError is an answer, anything else escapes and fails the property."""
    try:
        fn(*args)
    except TinyqError:
        pass


def _read_and_plan(buf: bytes) -> None:
    # Past the reader too: a mutated file that passes the gate goes on to the plan, as in a build.
    g = parse_tflite(buf, "fuzz.tflite")
    tflite_kind(g)
    analyze(g, gate=False)
    analyze(g)
    plan_model(g)


@FUZZ
@given(mutated(TINY))
def test_tflite_reader_raises_only_tinyq_errors(buf):
    only_tinyq_errors(_read_and_plan, buf)


@st.composite
def hostile_models(draw, seed: bytes = TINY):
    """``seed`` with one hostile but well-formed value (tests/hostile.py), or two."""
    from hostile import DIMS, OPTIONS, SCALES, ZERO_POINTS, hostile

    values = {"dim": DIMS, "scale": SCALES, "zero_point": ZERO_POINTS, "axis": [-1, 1, 2, 3, 5, 2**31 - 1],
              "short_buffer": [1, 2, 4, 1000], "option": OPTIONS}
    buf = seed
    for _ in range(draw(st.integers(1, 2))):
        kind = draw(st.sampled_from(sorted(values)))
        edited = hostile(buf, kind, draw(st.integers(0, 63)), draw(st.sampled_from(values[kind])),
                         draw(st.integers(0, 3)))
        if edited is None:  # the value does not fit that field's type: nothing to test
            continue
        buf = edited
    return buf


def _plan_and_emit(buf: bytes):
    from tinyq.compile.emit.model import emit_model

    g = parse_tflite(buf, "hostile.tflite")
    tflite_kind(g)
    analyze(g)
    return g, emit_model(plan_model(g), buf, source="hostile.tflite")


@FUZZ
@given(hostile_models())
def test_hostile_values_raise_only_tinyq_errors(buf):
    only_tinyq_errors(_plan_and_emit, buf)


@settings(FUZZ, max_examples=BUILDS)
@given(hostile_models())
def test_hostile_models_are_refused_or_built_exact(buf):
    """What passes every check is built, and the generated C must then give TFLM's bytes (TFLM runs in a
    worker: a hostile model may make it abort, which is a refusal too, in one line)."""
    import numpy as np

    from tinyq.infra import isolate
    from tinyq.compile.hostrun import run_generated

    try:
        g, files = _plan_and_emit(buf)
        x = np.random.default_rng(0).integers(-128, 128, size=(3, *g.input_tensors[0].shape[1:]), dtype=np.int8)
        expected, _, _ = isolate.call("tinyq.model.reference:reference_outputs", buf, x, what="TFLM")
    except TinyqError as e:
        assert "\n" not in e.message and e.hint
        return
    host = run_generated(files, x.reshape(len(x), -1), expected.shape[1:])
    assert np.array_equal(host, expected)


def test_the_hostile_edits_reach_past_the_reader():
    """The hostile strategy is only worth its figure if edited models get past parsing into the planner and
    the host check, and if every kind of edit is taken."""
    from hostile import hostile

    kinds = {"dim": 3, "scale": 1e-3, "zero_point": 5, "axis": 3, "short_buffer": 1, "option": 2}
    for kind, value in kinds.items():
        assert hostile(TINY, kind, 1, value) not in (None, TINY), kind
    # A value a converter could have written is built, not refused.
    _plan_and_emit(hostile(TINY, "zero_point", 0, 5))


def _log() -> str:
    return (DATA / "logs" / "digits_qemu.log").read_text()


LOG_LINES = _log().splitlines()
TOKENS = ["tinyq-info", "tinyq-ready", "tq-run", "tq-median", "tq-output", "tq-stack", "tq-done infer",
          "tq-layer", "tq-done profile", "tq-error", "tq-fault", "m-lap-us-", "v=1", "v=2", "model=", "in=",
          "zz", "-1", "99999999999999999999", "\x00", "\r", "\u00e9", " ", "=", "0x"]


@st.composite
def transcripts(draw):
    lines = list(LOG_LINES)
    for _ in range(draw(st.integers(1, 10))):
        op = draw(st.sampled_from(["drop", "dup", "splice", "token", "cut"]))
        if not lines:
            lines.append(draw(st.sampled_from(TOKENS)))
            continue
        i = draw(st.integers(0, len(lines) - 1))
        if op == "drop":
            del lines[i]
        elif op == "dup":
            lines.insert(i, lines[draw(st.integers(0, len(lines) - 1))])
        elif op == "splice":
            j = draw(st.integers(0, len(lines[i])))
            lines[i] = lines[i][:j] + draw(st.sampled_from(TOKENS)) + lines[i][j:]
        elif op == "token":
            lines.insert(i, " ".join(draw(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=5))))
        else:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
    return "\n".join(lines)


@FUZZ
@given(transcripts())
def test_protocol_parser_raises_only_tinyq_errors(text):
    only_tinyq_errors(parse_log, text)


@FUZZ
@given(st.text(max_size=400))
def test_protocol_parser_on_any_text(text):
    only_tinyq_errors(parse_log, text)


NANO = tomllib.loads((BOARDS_DIR / "nano33.toml").read_text())
VALUES = st.one_of(st.integers(-2**40, 2**40), st.text(max_size=12), st.booleans(), st.floats(allow_nan=True),
                   st.none(), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))


def _toml(d: dict, prefix: str = "") -> str:
    """A minimal TOML writer for the fuzzer's dicts (strings escaped with json's rules)."""
    import json

    flat = [(k, v) for k, v in d.items() if not isinstance(v, dict)]
    tables = [(k, v) for k, v in d.items() if isinstance(v, dict)]
    out = []
    for k, v in flat:
        if v is None:
            continue
        if isinstance(v, bool):
            val = "true" if v else "false"
        elif isinstance(v, float):
            val = repr(v) if v == v and abs(v) != float("inf") else ("nan" if v != v else ("inf" if v > 0 else "-inf"))
        elif isinstance(v, (int, list)):
            val = json.dumps(v)
        else:
            val = json.dumps(str(v))
        out.append(f"{json.dumps(str(k))} = {val}")
    for k, v in tables:
        name = f"{prefix}.{json.dumps(str(k))}" if prefix else json.dumps(str(k))
        out.append(f"\n[{name}]")
        out.append(_toml(v, name))
    return "\n".join(out)


@st.composite
def boards(draw):
    import copy

    d = copy.deepcopy(NANO)
    for _ in range(draw(st.integers(1, 4))):
        table = draw(st.sampled_from([None, *[k for k, v in d.items() if isinstance(v, dict)]]))
        target = d if table is None else d[table]
        if not isinstance(target, dict):
            continue
        op = draw(st.sampled_from(["set", "drop", "add"]))
        keys = list(target)
        if op == "set" and keys:
            target[draw(st.sampled_from(keys))] = draw(VALUES)
        elif op == "drop" and keys:
            del target[draw(st.sampled_from(keys))]
        else:
            target[draw(st.text(min_size=1, max_size=8))] = draw(VALUES)
    return d


@FUZZ
@given(boards())
def test_board_loader_raises_only_tinyq_errors(tmp_path_factory, board):
    path = tmp_path_factory.getbasetemp() / "nano33.toml"
    path.write_text(_toml(board))
    only_tinyq_errors(load_board_file, path)


@FUZZ
@given(st.binary(max_size=300))
def test_board_loader_on_any_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.getbasetemp() / "nano33.toml"
    path.write_bytes(raw)
    only_tinyq_errors(load_board_file, path)


def test_the_mutators_reach_the_interesting_cases():
    """The fuzzers above are only worth their figures if they reach past the first check."""
    from hypothesis import find

    find(mutated(TINY), lambda b: b[4:8] == b"TFL3" and b != TINY)  # a valid identifier, other contents
    report = parse_log("\n".join(LOG_LINES))
    assert report.info is not None and report.infers
