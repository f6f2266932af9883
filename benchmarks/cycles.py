"""An estimate of Cortex-M4 cycles from the instructions QEMU executes.

QEMU's -icount counts instructions; a Cortex-M4 spends more than one cycle on some.
This runs one inference with QEMU's execution log (every translated block's
instructions, every block executed), keeps the blocks of the model's own code (the
generated model and firmware/kernels, found by addr2line), and weights each executed
instruction by the Cortex-M4 Technical Reference Manual's timings: single loads 2
cycles (no pipelining of neighbours assumed), LDRD/STRD 3, LDM/STM/PUSH/POP 1 + N
registers (+2 when loading pc), stores 1, unconditional branches 3, conditional ones 2
(taken or not, on average), everything else 1 (SMLAD, SMMLAR, SXTB16, MUL and MLA are
single-cycle on the M4). Flash wait states are not modelled. The result is the model
code's cycles per instruction, which times the measured instruction count gives an
estimate: a model, not a measurement.
"""

from __future__ import annotations

import collections
import re
import subprocess
import tempfile
from pathlib import Path

_MULTI = {"ldm", "ldmia", "ldmdb", "ldmfd", "stm", "stmia", "stmdb", "stmea", "push", "pop"}
_INSN = re.compile(r"0x([0-9a-f]{8}):\s+(?:[0-9a-f]{4}\s){1,2}\s*(\S+)\s*(.*)")
_EXEC = re.compile(r"\[[0-9a-f]+/([0-9a-f]+)/")


def _registers(operands: str) -> int:
    listed = re.search(r"\{([^}]*)\}", operands)
    if not listed:
        return 1
    n = 0
    for part in listed.group(1).split(","):
        lo, _, hi = part.strip().partition("-")
        n += int(re.sub(r"\D", "", hi)) - int(re.sub(r"\D", "", lo)) + 1 if hi else 1
    return n


def cycles_of(mnemonic: str, operands: str) -> int:
    """Cortex-M4 cycles of one instruction (see the module docstring for the model)."""
    m = mnemonic.split(".")[0]
    if m in _MULTI:
        return 1 + _registers(operands) + (2 if "pc" in operands and m.startswith(("pop", "ldm")) else 0)
    if m in ("ldrd", "strd"):
        return 3
    if m.startswith("ldr"):
        return 2
    if m.startswith("str"):
        return 1
    if m in ("udiv", "sdiv"):
        return 7
    if m in ("b", "bl", "bx", "blx"):
        return 3
    if m in ("cbz", "cbnz") or (len(m) == 3 and m[0] == "b" and m not in ("bic", "bfi", "bfc")):
        return 2
    return 1


def _model_code(elf: Path, addrs: list[int]) -> set[int]:
    """The block addresses whose source is the generated model or a kernel."""
    out = subprocess.run(["arm-none-eabi-addr2line", "-e", str(elf), *(hex(a) for a in addrs)],
                         capture_output=True, text=True, check=True).stdout.splitlines()
    return {a for a, where in zip(addrs, out) if "/kernels/" in where or "tq_model.c" in where}


def cycles_per_instruction(elf: Path, board, inputs) -> tuple[int, float]:
    """Run one inference of ``inputs[:1]`` traced; (model instructions, estimated cycles per instruction)."""
    from tinyq.device.devices import open_device
    from tinyq.report.measure import drive

    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "exec.log"
        with open_device("qemu", board, elf, extra_args=["-d", "exec,nochain,in_asm", "-D", str(log)]) as dev:
            drive(dev.transport, inputs[:1], runs=1, warmup=0, timeout=900)
        blocks: dict[int, list[tuple[str, str]]] = {}
        executed: collections.Counter = collections.Counter()
        current = None
        with log.open() as f:
            for line in f:
                if line.startswith("IN:"):
                    current = None
                elif m := _INSN.match(line):
                    if current is None:
                        current = int(m.group(1), 16)
                        blocks[current] = []
                    blocks[current].append((m.group(2), m.group(3)))
                elif line.startswith("Trace") and (m := _EXEC.search(line)):
                    executed[int(m.group(1), 16)] += 1
    ours = _model_code(elf, sorted(executed))
    insns = cycles = 0
    for a in ours:
        for mnemonic, operands in blocks.get(a, ()):
            insns += executed[a]
            cycles += executed[a] * cycles_of(mnemonic, operands)
    return insns, cycles / insns if insns else 0.0
