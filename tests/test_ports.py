"""Finding the board on USB and the Arduino fork of bossac, with faked port lists and executables.

No board is attached here: `serial.tools.list_ports` results are built as pyserial builds
them (ListPortInfo), and bossac is a script that prints what each real bossac prints.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from serial.tools.list_ports_common import ListPortInfo

from tinyq.boards import get_board
from tinyq.cli import cli
from tinyq.errors import ToolchainError, TransportError
from tinyq.device.ports import discover, find_bossac, find_ports


def port(device, vid=None, pid=None, serial=None, description="n/a"):
    p = ListPortInfo(device, skip_link_detection=True)
    p.vid, p.pid, p.serial_number, p.description = vid, pid, serial, description
    return p


NANO_APP = port("/dev/ttyACM0", 0x2341, 0x805A, "0123456789ABCDEF", "Nano 33 BLE (tinyq)")
NANO_BOOT = port("/dev/ttyACM1", 0x2341, 0x005A, None, "Arduino Nano 33 BLE")
FTDI = port("/dev/ttyUSB0", 0x0403, 0x6001, "A50285BI", "FT232R")
BUILTIN = port("/dev/ttyS0")


def test_a_board_in_application_or_bootloader_mode_is_found():
    nano = get_board("nano33")
    assert discover(nano, [FTDI, NANO_APP, BUILTIN]).device == "/dev/ttyACM0"
    found = discover(nano, [NANO_BOOT, BUILTIN])
    assert (found.device, found.mode) == ("/dev/ttyACM1", "bootloader")


def test_none_or_two_boards_say_what_was_found():
    nano = get_board("nano33")
    with pytest.raises(TransportError, match=r"no Arduino Nano 33 BLE found on USB .*found: /dev/ttyUSB0 \(0403:6001\), /dev/ttyS0"):
        discover(nano, [FTDI, BUILTIN])
    second = port("/dev/ttyACM2", 0x2341, 0x805A, "FEDCBA9876543210")
    with pytest.raises(TransportError, match=r"2 Arduino Nano 33 BLE boards found: /dev/ttyACM0 .*/dev/ttyACM2") as e:
        discover(nano, [NANO_APP, second])
    assert "--port" in e.value.hint


def test_boards_ports_lists_connected_boards(monkeypatch):
    import tinyq.device.ports

    monkeypatch.setattr(tinyq.device.ports, "_list_ports", lambda: [FTDI, NANO_APP, NANO_BOOT])
    r = CliRunner().invoke(cli, ["boards", "--ports"])
    assert r.exit_code == 0
    assert r.output.splitlines() == [
        "/dev/ttyACM0 (nano33, application, 2341:805a, serial 0123456789ABCDEF)",
        "/dev/ttyACM1 (nano33, bootloader, 2341:005a)",
    ]
    assert [f.board for f in find_ports(ports=[FTDI])] == []


def _fake_bossac(path: Path, version_line: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho 'Usage: bossac [OPTION...] [FILE]'\necho '{version_line}'\nexit 1\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_bossac_from_the_arduino_install_is_preferred(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    debian = _fake_bossac(tmp_path / "bin" / "bossac", "Basic Open Source SAM-BA Application (BOSSA) Version 1.9.1")
    arduino = _fake_bossac(tmp_path / ".arduino15/packages/arduino/tools/bossac/1.9.1-arduino2/bossac",
                           "Basic Open Source SAM-BA Application (BOSSA) Version 1.9.1-arduino2")
    exe, version = find_bossac(path=str(debian.parent))
    assert (exe, version) == (str(arduino), "1.9.1-arduino2")


def test_platformio_bossac_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    pio = _fake_bossac(tmp_path / ".platformio/packages/tool-bossac-nordicnrf52/bossac", "Version 1.9.1-arduino2")
    assert find_bossac(path=os.devnull)[0] == str(pio)


def test_debians_bossac_is_refused_with_how_to_get_the_fork(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    debian = _fake_bossac(tmp_path / "bin" / "bossac", "Basic Open Source SAM-BA Application (BOSSA) Version 1.9.1")
    with pytest.raises(ToolchainError, match=r"found only .*bossac \(1\.9\.1\)") as e:
        find_bossac(path=str(debian.parent))
    assert "arduino-cli core install arduino:mbed_nano" in e.value.hint


def test_no_bossac_at_all(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ToolchainError, match="bossac not found"):
        find_bossac(path=str(tmp_path))
