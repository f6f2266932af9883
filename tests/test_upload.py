"""Uploaders are strategies chosen by the board file; each is driven here with fakes (no board, no tool runs)
and must run the commands a board needs, in order, and end on the board's console."""

from __future__ import annotations

import subprocess
import typing
from pathlib import Path

import pytest

from tinyq.boards import Upload, get_board
from tinyq.errors import ToolchainError, TransportError
from tinyq.device import upload
from tinyq.device.ports import FoundPort
from tinyq.device.upload import UPLOADERS, uploader_for

BIN, HEX = Path("/b/firmware.bin"), Path("/b/firmware.hex")


def _found(device, mode):
    return FoundPort(device, "nano33", mode, 0x2341, 0x805A if mode == "application" else 0x005A, None, "Nano 33 BLE")


class FakePorts:
    """The board on USB: in its application at ttyACM0, in its bootloader (after the touch) at ttyACM1."""

    def __init__(self):
        self.asked = []

    def discover(self, board):
        self.asked.append("discover")
        return _found("/dev/ttyACM0", "application")

    def find_bossac(self):
        return "/arduino/bossac", "1.9.1-arduino2"

    def wait_for_board(self, board, mode, timeout):
        self.asked.append(f"wait {mode}")
        return _found("/dev/ttyACM1" if mode == "bootloader" else "/dev/ttyACM2", mode)


class FakeRun:
    def __init__(self, returncode=0, stderr="", hang=False):
        self.commands, self.returncode, self.stderr, self.hang = [], returncode, stderr, hang

    def __call__(self, cmd, **kw):
        self.commands.append(cmd)
        if self.hang:
            raise subprocess.TimeoutExpired(cmd, kw.get("timeout"))
        return subprocess.CompletedProcess(cmd, self.returncode, "", self.stderr)


def test_every_method_a_board_file_may_name_has_an_uploader():
    # boards.py states the methods a board file may give (it cannot import the target stage): one list, held here.
    assert set(typing.get_args(Upload.model_fields["method"].annotation)) == set(UPLOADERS)


def test_bossac_touches_the_board_writes_its_bootloader_port_and_finds_the_console(monkeypatch):
    touched = []
    monkeypatch.setattr(upload, "touch_1200bps", touched.append)
    ports, run = FakePorts(), FakeRun()
    console = uploader_for(get_board("nano33"), run=run, ports=ports).upload(BIN, HEX, None)
    assert touched == ["/dev/ttyACM0"]
    assert run.commands == [["/arduino/bossac", "--port=ttyACM1", "-U", "-i", "-e", "-w", str(BIN), "-R"]]
    assert ports.asked == ["discover", "wait bootloader", "wait application"]
    assert console == "/dev/ttyACM2"


def test_an_upload_that_fails_or_hangs_is_one_transport_error(monkeypatch):
    monkeypatch.setattr(upload, "touch_1200bps", lambda port: None)
    with pytest.raises(TransportError, match="upload failed: no device") as e:
        uploader_for(get_board("nano33"), run=FakeRun(1, "no device"), ports=FakePorts()).upload(BIN, HEX, None)
    assert "double-tap" in e.value.hint
    with pytest.raises(TransportError, match="did not finish in 120 s"):
        uploader_for(get_board("nano33"), run=FakeRun(hang=True), ports=FakePorts()).upload(BIN, HEX, None)


def test_pyocd_writes_the_hex_and_keeps_the_port_given(monkeypatch):
    monkeypatch.setattr(upload.shutil, "which", lambda tool: f"/usr/bin/{tool}")
    run = FakeRun()
    dk = get_board("nrf52840dk")  # a J-Link on the DK: no bootloader, no USB console of the firmware's own
    assert uploader_for(dk, run=run, ports=FakePorts()).upload(BIN, HEX, "/dev/ttyACM5") == "/dev/ttyACM5"
    assert run.commands == [["/usr/bin/pyocd", "flash", "-t", "nrf52840", str(HEX)]]
    with pytest.raises(TransportError, match="give the serial port of its UART with --port"):
        uploader_for(dk, run=FakeRun(), ports=FakePorts()).upload(BIN, HEX, None)


def test_a_missing_tool_is_said_before_anything_runs(monkeypatch):
    monkeypatch.setattr(upload.shutil, "which", lambda tool: None)
    run = FakeRun()
    with pytest.raises(ToolchainError, match="pyocd not found"):
        uploader_for(get_board("nrf52840dk"), run=run, ports=FakePorts()).upload(BIN, HEX, "/dev/ttyACM5")
    assert run.commands == []
