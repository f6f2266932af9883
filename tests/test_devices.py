"""One device interface: the same builds run on every emulator this machine has (the `dut`
fixture), and Renode runs the very ELF that goes on the board.

Renode is in no registry reachable from CI: its cases skip there, saying so, and run
where `renode` (1.14) is on PATH.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import DIGITS, MLPERF
from tinyq.cli import cli
from tinyq.device.devices import EMULATORS, REGISTRY, Device, device_class

needs_toolchain = pytest.mark.skipif(
    shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
    reason="qemu-system-arm or arm-none-eabi-gcc not installed",
)
needs_renode = pytest.mark.skipif(shutil.which("renode") is None,
                                  reason="Renode is not installed (it is in no registry reachable here)")
# One worker runs this whole module (pytest-xdist --dist loadgroup): its module fixtures are made once.
pytestmark = [pytest.mark.xdist_group("test_devices"), needs_toolchain]

MODELS = ["digits", "kws_ref_model", "ad01_int8", "pretrainedResnet_quant",
          pytest.param("vww_96_int8", marks=pytest.mark.slow)]


def _tflite(name: str, digits_tflite: bytes, tmp: Path) -> Path:
    if name == "digits":
        p = tmp / "digits_int8.tflite"
        p.write_bytes(digits_tflite)
        return p
    p = MLPERF / f"{name}.tflite"
    if not p.is_file():
        pytest.skip(f"the MLPerf Tiny models are not at {MLPERF}")
    return p


@pytest.fixture(scope="module")
def builds(digits_tflite, tmp_path_factory):
    """name -> a nano33 build folder, made once per module."""
    made: dict[str, Path] = {}

    def get(name: str, board: str = "nano33") -> Path:
        key = f"{name}-{board}"
        if key not in made:
            tmp = tmp_path_factory.mktemp(key)
            r = CliRunner().invoke(cli, ["build", str(_tflite(name, digits_tflite, tmp)), "--board", board,
                                         "-o", str(tmp / "b")])
            assert r.exit_code == 0, r.output
            made[key] = tmp / "b"
        return made[key]

    return get


def flash(build: Path, device: str, *extra) -> dict:
    r = CliRunner().invoke(cli, ["flash", "--build", str(build), "--emulator", device, "--json", *extra])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_runs_bit_exact_on_every_device(builds, dut, name):
    m = flash(builds(name), dut, "--runs", "1", "--warmup", "0")
    assert m["outputs_match"] and m["inputs_checked"] == 8
    assert m["cycles_kind"] == "instructions"
    # The board firmware in Renode, the twin's in QEMU: which ELF ran is in the boot line.
    assert m["target"] == device_class(dut).firmware_target
    # The nano33 board firmware has a USB console too; without VBUS (no emulator has USB) it stays off.
    assert m["consoles"] == {"qemu": "uart", "renode": "uart,usb-off"}[dut]


@pytest.mark.renode
@needs_renode
@pytest.mark.parametrize("name", MODELS)
def test_renode_latency_agrees_with_qemu(builds, name):
    """Renode at the board's clock counts one instruction a SysTick tick; QEMU counts them by icount."""
    b = builds(name)
    q = flash(b, "qemu", "--runs", "3")
    r = flash(b, "renode", "--runs", "3")
    assert r["outputs_match"] and q["outputs_match"]
    assert abs(r["cycles"] - q["cycles"]) <= 0.01 * q["cycles"], (r["cycles"], q["cycles"])


@pytest.mark.renode
@needs_renode
def test_console_works_on_the_stock_renode_nrf52840(builds):
    """nrf52840dk uses Renode's stock cpus/nrf52840.repl, whose uart0 is a UARTE (EasyDMA only)."""
    m = flash(builds("digits", "nrf52840dk"), "renode", "--runs", "1")
    assert m["board"] == "nrf52840dk" and m["outputs_match"]


@pytest.mark.renode
@needs_renode
def test_sigterm_stops_renode_and_all_it_started(builds):
    p = subprocess.Popen([sys.executable, "-m", "tinyq.cli", "flash", "--build", str(builds("digits")),
                          "--emulator", "renode", "--runs", "64", "--warmup", "1000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    from test_signals import alive, children, wait_for

    launcher = wait_for(lambda: children(p.pid), what="Renode to start")[0][0]
    group = launcher  # the emulator leads its own process group
    wait_for(lambda: any("Renode.exe" in c for _, c in _group(group)), timeout=60, what="mono to start")
    time.sleep(2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 128 + signal.SIGTERM, err
    assert _group(group) == [], "a Renode process survived tinyq"
    assert not alive(launcher)


def _group(pgid: int) -> list[tuple[int, str]]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
                if int(stat[2]) == pgid and stat[0] != "Z":
                    out.append((int(d.name), (d / "cmdline").read_bytes().replace(b"\0", b" ").decode()))
            except (OSError, ValueError, IndexError):
                pass
    return out


def test_devices_come_from_one_registry():
    """The CLI's --emulator choices are the registry's emulators; each adapter names its firmware."""
    flash_cmd = cli.commands["flash"]
    choices = next(p for p in flash_cmd.params if p.name == "emulator").type.choices
    assert tuple(choices) == EMULATORS
    for name, cls in REGISTRY.items():
        assert issubclass(cls, Device) and cls.name == name
        assert cls.firmware_target in ("qemu", "board")


def test_no_device_names_in_the_pipeline():
    """No if/elif on emulator names is left outside the registry."""
    import inspect

    from tinyq.report import measure
    from tinyq import pipeline
    for module in (pipeline, measure):
        src = inspect.getsource(module)
        for name in REGISTRY:
            assert f'== "{name}"' not in src and f"== '{name}'" not in src, (module.__name__, name)


def test_validation_on_the_device(digits_build, dut):
    """`flash --eval`: every evaluation sample through the device; it must agree with the host int8 model
    byte for byte, and its top-1 is the host's."""
    out, report = digits_build
    m = flash(out, dut, "--runs", "1", "--warmup", "0", "--eval", str(DIGITS / "test.npz"))
    v = m["validation"]
    q = report["quantization"]
    assert v["samples"] == 360
    assert v["bit_exact_with_host_int8"] == 1.0 and v["top1_agreement_with_host_int8"] == 1.0
    assert v["device_top1"] == pytest.approx(q["quant_accuracy"])
    assert v["float_top1"] == pytest.approx(q["float_accuracy"])
    assert 0.9 <= v["top1_agreement_with_float"] <= 1.0


def test_renode_runs_the_board_firmware_with_only_its_uarte_define(digits_build, tmp_path):
    """Renode 1.14's UARTE model needs its own receive re-arm order, which would lose a byte on silicon: the
    Renode device rebuilds the build's own board sources with that one define, and the board's ELF stays as
    it was. (Runs without Renode: only the compile is checked here.)"""
    from tinyq.boards import get_board
    from tinyq.device.devices import RenodeDevice

    out, report = digits_build
    board_elf = out / report["firmware"]["board"]["elf"]
    before = board_elf.read_bytes()
    variant = RenodeDevice(get_board("nano33"), board_elf).renode_variant(tmp_path / "renode")
    assert variant.is_file() and variant.read_bytes() != before
    assert board_elf.read_bytes() == before
    size = lambda elf: subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                                      check=True).stdout
    text = lambda elf: int(next(l.split()[1] for l in size(elf).splitlines() if l.startswith(".text")))
    # One more store in rx_rearm, nothing else: the variant is the board firmware plus a few bytes.
    assert 0 < text(variant) - text(board_elf) <= 16
