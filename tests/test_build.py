"""Cross-compiling the firmware, and the budget check that runs before it."""

import shutil
from pathlib import Path

import pytest

from tinyq.compile import firmware as build_stage
from tinyq.boards import get_board
from tinyq.compile.budget import CODE_BYTES, USB_CODE_BYTES, check_budget, estimate
from tinyq.compile.firmware import build_firmware
from tinyq.compile.emit.firmware import emit_firmware
from tinyq.compile.emit.model import emit_model
from tinyq.errors import BudgetError, BuildError, ToolchainError
from tinyq.graph import parse_tflite
from tinyq.compile.plan import plan_model

# One worker runs this whole module (pytest-xdist --dist loadgroup): its module fixtures are made once.
pytestmark = [pytest.mark.xdist_group("test_build"), pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="arm-none-eabi-gcc not installed")]


def _shrunk(board, **memory):
    return board.model_copy(update={"memory": board.memory.model_copy(update=memory)})


@pytest.fixture(scope="module")
def digits_files(digits_tflite):
    g = parse_tflite(digits_tflite)
    plan = plan_model(g)
    return g, plan, emit_model(plan, digits_tflite)


@pytest.mark.parametrize("target,origin", [("board", 0x10000), ("qemu", 0x0)])
def test_digits_links_at_the_right_address(tmp_path, digits_files, target, origin):
    from elftools.elf.elffile import ELFFile

    g, plan, files = digits_files
    board = get_board("nano33")
    fw = build_firmware({**files, **emit_firmware(board, target)}, board, target, tmp_path / target)
    with fw.elf.open("rb") as f:
        vectors = ELFFile(f).get_section_by_name(".isr_vector")
        assert vectors["sh_addr"] == origin  # nano33 links after the 64 KB Arduino bootloader
    assert fw.bin.stat().st_size > plan.weight_bytes and fw.hex.read_text().startswith(":")
    # The runtime's code, and the board's USB console where it is linked (the QEMU twin talks over a UART).
    code = CODE_BYTES + (USB_CODE_BYTES if target == "board" and board.console.usb else 0)
    assert plan.weight_bytes < fw.flash_bytes < plan.weight_bytes + code
    assert plan.ram_bytes < fw.static_ram_bytes < plan.ram_bytes + 2048
    assert fw.stack_bytes >= board.memory.stack_bytes
    # The pre-compile estimate is an upper bound of what the linker placed.
    est = estimate(plan, board)
    assert est.flash_bytes >= fw.flash_bytes
    assert est.ram_bytes >= fw.static_ram_bytes + fw.stack_bytes


def test_firmware_too_big_for_ram_fails_to_link_and_leaves_nothing(tmp_path, digits_files):
    g, plan, files = digits_files
    board = _shrunk(get_board("nano33"), ram_bytes=12 * 1024, stack_bytes=8 * 1024)
    out = tmp_path / "fw"
    with pytest.raises(BuildError, match="does not fit nano33"):
        build_firmware({**files, **emit_firmware(board, "qemu")}, board, "qemu", out)
    assert list(tmp_path.iterdir()) == []


def test_missing_cross_compiler(tmp_path, digits_files, monkeypatch):
    monkeypatch.setattr(build_stage.shutil, "which", lambda tool: None)
    board = get_board("nano33")
    with pytest.raises(ToolchainError, match="arm-none-eabi-gcc not found"):
        build_firmware({**digits_files[2], **emit_firmware(board, "qemu")}, board, "qemu", tmp_path / "fw")


def test_budget_fits_nano33(digits_files):
    b = check_budget(digits_files[1], get_board("nano33"))
    assert b.fits and b.breakdown["arena"] == digits_files[1].arena_bytes


def test_budget_ram_overflow_names_arena_and_live_tensors(digits_files):
    board = _shrunk(get_board("nano33"), ram_bytes=12 * 1024)
    with pytest.raises(BudgetError) as e:
        check_budget(digits_files[1], board)
    msg = e.value.message
    assert "RAM" in msg and f"arena {digits_files[1].arena_bytes:,} B" in msg and "live at the peak" in msg


def test_budget_flash_overflow_names_largest_weights(digits_files):
    board = _shrunk(get_board("nano33"), flash_bytes=32 * 1024)
    with pytest.raises(BudgetError) as e:
        check_budget(digits_files[1], board)
    assert "flash" in e.value.message and "largest weights" in e.value.message


def test_platformio_ini_for_board_owners():
    files = emit_firmware(get_board("nano33"), "board")
    ini = files["platformio.ini"]
    assert "platform = nordicnrf52" in ini and "board = nano33ble" in ini
    assert "ORIGIN = 0x00010000" in files["linker.ld"]
    assert "platformio.ini" not in emit_firmware(get_board("nano33"), "qemu")


def test_board_folder_builds_from_its_own_sources(tmp_path, digits_files):
    """The firmware folder holds every source it was built from (what PlatformIO would build from
    src/): compiling src/ alone, with the include paths of the emitted platformio.ini, links."""
    import subprocess

    from tinyq.compile.firmware import CFLAGS, CPU_FLAGS, LDFLAGS

    g, plan, files = digits_files
    board = get_board("nano33")
    fw = build_firmware({**files, **emit_firmware(board, "board")}, board, "board", tmp_path / "board")
    src = fw.elf.parent / "src"
    assert (src / "kernels" / "tq_m4.S").is_file() and (src / "runtime" / "console_nrf52_uarte.c").is_file()
    assert not (src / "runtime" / "console_cmsdk.c").exists()  # only this board's console driver
    assert "-Isrc/runtime" in (src / "platformio.ini").read_text()
    sources = sorted(str(p) for p in src.rglob("*.[cS]"))
    elf = tmp_path / "again.elf"
    subprocess.run(["arm-none-eabi-gcc", *CPU_FLAGS, *CFLAGS, f"-I{src}", f"-I{src / 'kernels'}", f"-I{src / 'runtime'}",
                    *sources, "-T", str(src / "linker.ld"), *LDFLAGS, "-o", str(elf)], check=True, cwd=tmp_path)
    assert elf.stat().st_size > 0
