"""The board database: shipped boards load, invalid board files are rejected by name and key."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from tinyq.boards import BOARDS_DIR, get_board, load_board_file, load_boards
from tinyq.cli import cli
from tinyq.errors import BoardError

INVALID = Path(__file__).parent / "data" / "boards_invalid"


def test_shipped_boards_load_with_their_memory():
    boards = load_boards()
    assert {"nano33", "nrf52840dk", "disco_f407"} <= set(boards)
    nano = boards["nano33"]
    assert nano.chip.name == "nRF52840"
    assert nano.chip.clock_hz == 64_000_000
    assert nano.chip.flash_bytes == 1024 * 1024 and nano.chip.ram_bytes == 256 * 1024
    # The Arduino bootloader takes the first 64 KB: the application starts after it.
    assert nano.upload.bootloader_bytes == 64 * 1024
    assert nano.memory.flash_origin == 0x10000
    assert nano.memory.flash_bytes == 1024 * 1024 - 64 * 1024
    assert nano.upload.touch_1200bps
    assert nano.emulator.qemu.machine == "mps2-an386"
    assert nano.emulator.renode.platform.endswith("arduino_nano_33_ble.repl")
    f407 = boards["disco_f407"]
    # The main SRAM, contiguous at 0x20000000 (its 64 KB CCM lies elsewhere); flash at 0x08000000.
    assert f407.chip.flash_bytes == 1024 * 1024 and f407.chip.ram_bytes == 128 * 1024
    assert f407.chip.flash_origin == 0x0800_0000 and f407.memory.flash_origin == 0x0800_0000


# file -> the key the error message must name
EXPECTED = {
    "missing_key.toml": ("chip.clock_hz", "missing key"),
    "unknown_key.toml": ("console.parity", "unknown key"),
    "wrong_type.toml": ("chip.clock_hz", "integer"),
    "ram_too_big.toml": ("memory.ram_bytes", "larger than the chip"),
    "flash_too_big.toml": ("memory.flash_bytes", "larger than the chip"),
    "not_toml.toml": ("not valid TOML", ""),
    "id_mismatch.toml": ("id:", "does not match the file name"),
    "bad_uart.toml": ("console.uart", "nrf52_uarte"),
    "tiny_stack.toml": ("memory.stack_bytes", "greater than or equal to 1024"),
    # memory maps (issue #25): every range inside its region, its chip and its twin, aligned
    "flash_over_ram.toml": ("chip.flash_bytes", "runs outside the Cortex-M Code region"),
    "app_over_bootloader.toml": ("memory.flash_origin (0x00008000)", "below the end of the bootloader"),
    "ram_outside_chip.toml": ("memory.ram_origin", "is not inside the chip's RAM"),
    "misaligned_flash.toml": ("memory.flash_origin (0x00010010)", "not a multiple of 1024"),
    "odd_stack.toml": ("memory.stack_bytes (8,190)", "not a multiple of 8"),
    "twin_too_small.toml": ("memory.flash_bytes", "does not fit mps2-an386's flash"),
}


def test_every_invalid_file_has_an_expectation():
    assert sorted(p.name for p in INVALID.glob("*.toml")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_invalid_board_file_is_rejected_naming_file_and_key(name):
    with pytest.raises(BoardError) as exc:
        load_board_file(INVALID / name)
    msg = exc.value.message
    assert name in msg
    for needle in EXPECTED[name]:
        assert needle in msg
    assert "\n" not in msg


def test_a_folder_with_one_invalid_board_is_rejected():
    with pytest.raises(BoardError):
        load_boards(INVALID)


def test_unknown_board_lists_known_ones():
    with pytest.raises(BoardError) as exc:
        get_board("uno")
    assert "unknown board 'uno'" in exc.value.message
    assert "nano33" in exc.value.hint


def test_shipped_files_are_named_by_id():
    for path in BOARDS_DIR.glob("*.toml"):
        assert load_board_file(path).id == path.stem


def test_cli_boards_json_lists_memory():
    result = CliRunner().invoke(cli, ["boards", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["id"]: r for r in json.loads(result.output)}
    assert rows["nano33"]["flash_bytes"] == 983_040
    assert rows["nano33"]["ram_bytes"] == 262_144
    assert rows["nano33"]["clock_hz"] == 64_000_000
    assert rows["disco_f407"]["chip"] == "STM32F407VG"


def test_cli_boards_table():
    result = CliRunner().invoke(cli, ["boards"])
    assert result.exit_code == 0
    assert "nano33" in result.output and "64MHz" in result.output and "960 KB" in result.output
