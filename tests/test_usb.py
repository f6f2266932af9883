"""The USB CDC-ACM protocol layer, compiled for the host and driven by setup packets.

There is no USB device model in QEMU or Renode, so the firmware's USB stack is tested
here at the level it was written for: the protocol layer (`firmware/usb/tq_usb_cdc.c`)
answers setup packets with descriptors and request outcomes; the register layer that
moves those bytes through the nRF52840's USBD has not run on silicon in CI.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

import pytest

from tinyq.boards import get_board
from tinyq.resources import FIRMWARE_DIR

HARNESS = Path(__file__).parent / "data" / "usb" / "harness.c"
DEVICE_ID = (0x89ABCDEF, 0x01234567)  # FICR DEVICEID[0], [1]


@pytest.fixture(scope="module")
def usb(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("no host C compiler")
    lib = tmp_path_factory.mktemp("usb") / "libusb_harness.so"
    subprocess.run(["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    "-I", str(FIRMWARE_DIR / "usb"), str(FIRMWARE_DIR / "usb" / "tq_usb_cdc.c"), str(HARNESS),
                    "-o", str(lib)], check=True, capture_output=True, text=True)
    h = ctypes.CDLL(str(lib))
    board = get_board("nano33")
    h.h_init(board.usb.vid, board.usb.pid, board.usb.manufacturer.encode(), board.usb.product.encode(), *DEVICE_ID)
    return Usb(h, board)


class Usb:
    def __init__(self, h, board):
        self.h, self.board = h, board

    def setup(self, request_type, request, value=0, index=0, length=0):
        pkt = (ctypes.c_uint8 * 8)(*struct.pack("<BBHHH", request_type, request, value, index, length))
        out = (ctypes.c_uint8 * 512)()
        flags = ctypes.c_int()
        n = self.h.h_setup(pkt, out, ctypes.byref(flags))
        f = flags.value
        return bytes(out[:n]), {"stall": bool(f & 1), "zlp": bool(f & 2), "data_out": bool(f & 4)}

    def out(self, data: bytes) -> int:
        return self.h.h_out((ctypes.c_uint8 * len(data))(*data), len(data))

    def state(self):
        s = (ctypes.c_int * 4)()
        self.h.h_state(s)
        return {"address": s[0], "configuration": s[1], "bootloader": s[2], "lines": s[3]}

    def descriptor(self, kind, index=0, length=0xFFFF):
        return self.setup(0x80, 6, (kind << 8) | index, 0x0409 if kind == 3 else 0, length)


def parse(blob: bytes) -> list[bytes]:
    """Split a descriptor set by bLength, checking each length fits."""
    out, i = [], 0
    while i < len(blob):
        n = blob[i]
        assert n >= 2 and i + n <= len(blob), f"bad bLength {n} at {i}"
        out.append(blob[i:i + n])
        i += n
    return out


def test_device_descriptor(usb):
    d, f = usb.descriptor(1)
    assert not f["stall"] and len(d) == 18 and d[0] == 18 and d[1] == 1
    bcd_usb, cls, sub, proto, ep0, vid, pid, _, im, ip, isn, ncfg = struct.unpack("<HBBBBHHHBBBB", d[2:])
    assert bcd_usb == 0x0200
    assert (cls, sub, proto) == (0xEF, 0x02, 0x01)  # interface association in use
    assert ep0 == 64 and ncfg == 1 and (im, ip, isn) == (1, 2, 3)
    # The board's own application VID/PID (Arduino 0x2341:0x805a), from boards/nano33.toml.
    assert (vid, pid) == (usb.board.usb.vid, usb.board.usb.pid) == (0x2341, 0x805A)


def test_configuration_descriptor(usb):
    blob, f = usb.descriptor(2)
    assert not f["stall"]
    descs = parse(blob)
    cfg = descs[0]
    assert cfg[1] == 2 and struct.unpack("<H", cfg[2:4])[0] == len(blob) == 75
    assert cfg[4] == 2 and cfg[5] == 1 and cfg[7] & 0x80
    kinds = [(d[1], d[2] if d[1] == 0x24 else None) for d in descs[1:]]
    assert kinds == [(11, None), (4, None), (0x24, 0x00), (0x24, 0x01), (0x24, 0x02), (0x24, 0x06), (5, None),
                     (4, None), (5, None), (5, None)]
    iad, comm, header, callm, acm, union, notify, data, ep_out, ep_in = descs[1:]
    assert (iad[2], iad[3], iad[4], iad[5]) == (0, 2, 0x02, 0x02)  # interfaces 0-1: CDC ACM
    assert (comm[2], comm[4], comm[5], comm[6]) == (0, 1, 0x02, 0x02)
    assert struct.unpack("<H", header[3:5])[0] == 0x0110
    assert callm[4] == 1 and acm[3] & 0x02 and (union[3], union[4]) == (0, 1)
    assert (data[2], data[4], data[5]) == (1, 2, 0x0A)
    endpoints = {d[2]: (d[3] & 3, struct.unpack("<H", d[4:6])[0]) for d in (notify, ep_out, ep_in)}
    assert endpoints == {0x83: (3, 8), 0x02: (2, 64), 0x81: (2, 64)}
    for d in descs:
        assert d[0] == {2: 9, 4: 9, 5: 7, 11: 8}.get(d[1], d[0])


def _string(usb, i) -> str:
    d, f = usb.descriptor(3, i)
    assert not f["stall"] and d[1] == 3 and d[0] == len(d)
    return d[2:].decode("utf-16-le")


def test_string_descriptors(usb):
    langs, _ = usb.descriptor(3, 0)
    assert langs == bytes([4, 3, 0x09, 0x04])
    assert _string(usb, 1) == usb.board.usb.manufacturer
    assert _string(usb, 2) == usb.board.usb.product
    assert _string(usb, 3) == "0123456789ABCDEF"  # FICR DEVICEID[1] then [0]
    assert usb.descriptor(3, 4)[1]["stall"]


@pytest.mark.parametrize("length", [8, 18, 64, 255, 0xFFFF])
def test_get_descriptor_never_answers_more_than_asked(usb, length):
    d, f = usb.descriptor(1, length=length)
    assert len(d) == min(18, length) and not f["zlp"]
    c, f = usb.descriptor(2, length=length)
    assert len(c) == min(75, length)
    assert not f["zlp"]  # 75 is not a whole number of 64-byte packets


def test_zero_length_packet_after_a_short_answer_of_whole_packets(usb, tmp_path):
    # A 31-character product string is a 64-byte descriptor: one whole packet.
    usb.h.h_init(0x2341, 0x805A, b"tinyq", b"x" * 31, *DEVICE_ID)
    try:
        d, f = usb.descriptor(3, 2, length=255)
        assert len(d) == 64 and f["zlp"]          # shorter than asked, ends on a packet boundary
        d, f = usb.descriptor(3, 2, length=64)
        assert len(d) == 64 and not f["zlp"]      # exactly what was asked
    finally:
        b = usb.board.usb
        usb.h.h_init(b.vid, b.pid, b.manufacturer.encode(), b.product.encode(), *DEVICE_ID)


def test_address_configuration_status(usb):
    usb.h.h_reset()
    assert usb.setup(0x00, 5, 17)[1] == {"stall": False, "zlp": False, "data_out": False}
    assert usb.state()["address"] == 17
    assert usb.setup(0x80, 8, length=1)[0] == b"\x00"
    assert not usb.setup(0x00, 9, 1)[1]["stall"]
    assert usb.state()["configuration"] == 1 and usb.setup(0x80, 8, length=1)[0] == b"\x01"
    assert usb.setup(0x00, 9, 2)[1]["stall"]                      # no configuration 2
    assert usb.setup(0x80, 0, length=2)[0] == b"\x00\x00"         # device status
    assert usb.setup(0x81, 10, index=1, length=1)[0] == b"\x00"   # interface 1, alternate 0
    assert not usb.setup(0x02, 1, 0, 0x81)[1]["stall"]            # CLEAR_FEATURE(ENDPOINT_HALT)
    usb.h.h_reset()
    assert usb.state()["address"] == 0 and usb.state()["configuration"] == 0


@pytest.mark.parametrize("packet", [
    (0x80, 6, 0x0600, 0, 10),   # DEVICE_QUALIFIER: full speed only
    (0x80, 6, 0x0700, 0, 9),    # OTHER_SPEED_CONFIGURATION
    (0x80, 6, 0x0201, 0, 9),    # configuration index 1
    (0x80, 99, 0, 0, 0),        # unknown standard request
    (0xC0, 1, 0, 0, 4),         # vendor request
    (0x21, 0x20, 0, 0, 5),      # SET_LINE_CODING of the wrong length
    (0x21, 0x20, 0, 1, 7),      # class request to the data interface
    (0x22, 0x20, 0, 0, 7),      # class request to an endpoint
])
def test_unknown_or_malformed_requests_stall(usb, packet):
    assert usb.setup(*packet)[1]["stall"]


def test_line_coding_round_trip(usb):
    d, f = usb.setup(0x21, 0x20, 0, 0, 7)
    assert f["data_out"] and d == b""
    coding = struct.pack("<IBBB", 921600, 0, 0, 8)
    assert usb.out(coding) == 0
    assert usb.setup(0xA1, 0x21, 0, 0, 7)[0] == coding
    assert usb.out(coding) == 1  # no OUT data stage pending: stall


def _set_baud(usb, baud):
    usb.setup(0x21, 0x20, 0, 0, 7)
    usb.out(struct.pack("<IBBB", baud, 0, 0, 8))


def test_the_1200_baud_touch_asks_for_the_bootloader(usb):
    usb.h.h_init(usb.board.usb.vid, usb.board.usb.pid, b"m", b"p", *DEVICE_ID)
    _set_baud(usb, 115200)
    usb.setup(0x21, 0x22, 0b11)           # port opened: DTR and RTS
    usb.setup(0x21, 0x22, 0b00)           # closed at 115200: nothing
    assert usb.state()["bootloader"] == 0
    _set_baud(usb, 1200)
    usb.setup(0x21, 0x22, 0b11)
    assert usb.state()["bootloader"] == 0  # still open
    usb.setup(0x21, 0x22, 0b10)           # DTR dropped at 1200 baud
    assert usb.state()["bootloader"] == 1


def test_remote_wakeup_is_not_accepted(usb):
    # The configuration does not advertise remote wake-up (bmAttributes 0x80): a request error.
    assert usb.setup(0x00, 3, 1)[1]["stall"]   # SET_FEATURE(DEVICE_REMOTE_WAKEUP)
    assert usb.setup(0x00, 1, 1)[1]["stall"]   # CLEAR_FEATURE(DEVICE_REMOTE_WAKEUP)


def test_dtr_does_not_survive_a_bus_reset(usb):
    usb.h.h_reset()
    usb.setup(0x00, 9, 1)
    usb.setup(0x21, 0x22, 0b11)
    assert usb.state()["lines"] == 3
    usb.h.h_reset()
    assert usb.state()["lines"] == 0 and usb.state()["bootloader"] == 0


# ---------------------------------------------------------------------------------------
# The real drivers on a register-level model of the nRF52840's USBD, UARTE, POWER and CLOCK
# (tests/data/usb/nrf52_model.c), driven by a scripted host.

DATA = Path(__file__).parent / "data" / "usb"
STATS = ("dma_overlap", "e199", "bad_ptr", "in_overwrite", "out_dropped", "dup_out", "dup_in", "stall_seen_out",
         "resets", "gpregret_at_reset", "ctl_open_at_reset", "status_done", "recursion", "device_dead", "steps",
         "address", "pullup", "enable", "gpregret")


@pytest.fixture(scope="module")
def device_lib(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("no host C compiler")
    lib = tmp_path_factory.mktemp("usbdev") / "libdevice.so"
    rt, u = FIRMWARE_DIR / "runtime", FIRMWARE_DIR / "usb"
    subprocess.run(["gcc", "-std=c99", "-D_POSIX_C_SOURCE=200809L", "-O1", "-Wall", "-Wextra", "-Werror", "-shared",
                    "-fPIC", "-pthread", "-DTQ_MMIO_HOST", "-DTQ_CONSOLE_USB", "-I", str(DATA), "-I", str(u),
                    "-I", str(rt), str(u / "tq_usb_cdc.c"), str(u / "tq_usbd_nrf52.c"),
                    str(rt / "console_nrf52_uarte.c"), str(rt / "tq_protocol.c"), str(DATA / "nrf52_model.c"),
                    str(DATA / "device.c"), "-o", str(lib)], check=True, capture_output=True, text=True)
    return lib


class Host:
    """A USB host (and a UART terminal) scripted against the model; one fresh device per instance."""

    def __init__(self, lib: Path, tmp: Path, vbus=1, hfxo_never=0, usbd_never_ready=0, hfxo_running=0):
        copy = tmp / f"dev{id(self)}.so"      # a fresh copy: the firmware's statics start from zero
        shutil.copy2(lib, copy)
        self.h = ctypes.CDLL(str(copy))
        self.h.m_now_us.restype = ctypes.c_uint32
        self.h.m_init(vbus, hfxo_never, usbd_never_ready, hfxo_running)
        self.usb_in = b""
        self.uart = b""
        assert self.h.h_start() == 0

    def stats(self) -> dict:
        o = (ctypes.c_int64 * len(STATS))()
        self.h.m_stats(o)
        return dict(zip(STATS, o))

    def stop(self):
        self.h.m_kill()
        self.h.h_join()

    def wait(self, cond, timeout=10.0, what="condition"):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            if self.stats()["device_dead"] and not self.stats()["resets"]:
                raise AssertionError(f"the device thread died waiting for {what}: {self.stats()}")
            time.sleep(0.001)
        raise AssertionError(f"timed out waiting for {what}; stats {self.stats()}; usb {self.usb_in[-200:]!r}; "
                             f"uart {self.uart[-200:]!r}")

    # control transfers
    def control(self, rt, req, value=0, index=0, length=0, data=b"", timeout=5.0):
        setup = struct.pack("<BBHHH", rt, req, value, index, length)
        self.h.m_control((ctypes.c_uint8 * 8)(*setup), (ctypes.c_uint8 * max(1, len(data)))(*data), len(data))
        out = (ctypes.c_uint8 * 4096)()
        n = ctypes.c_uint32()
        state = [0]

        def done():
            state[0] = self.h.m_control_result(out, ctypes.byref(n))
            return state[0] != 0
        self.wait(done, timeout, f"control {setup.hex()}")
        return bytes(out[:n.value]), state[0] == 2

    def get_descriptor(self, kind, index=0, length=64):
        d, stall = self.control(0x80, 6, (kind << 8) | index, 0x0409 if kind == 3 else 0, length)
        assert not stall
        return d

    def bus_reset(self):
        self.wait(lambda: self.h.m_pulled_up(), what="pull-up")
        self.h.m_bus_reset()
        self.wait(lambda: not self.h.m_bus_reset_pending(), what="bus reset")

    def enumerate(self, os_name="linux"):
        self.bus_reset()
        if os_name == "windows":                      # 64-byte device read, reset, then addressed
            assert len(self.get_descriptor(1, length=64)) == 18
            self.bus_reset()
        elif os_name == "linux":
            assert len(self.get_descriptor(1, length=64)) == 18
        assert self.control(0x00, 5, 9)[1] is False and self.stats()["address"] == 9
        if os_name == "macos":                        # 8 bytes first: bMaxPacketSize0
            assert self.get_descriptor(1, length=8)[7] == 64
        dev = self.get_descriptor(1, length=18)
        assert dev[0] == 18 and struct.unpack("<HH", dev[8:12]) == (0x2341, 0x805A)
        head = self.get_descriptor(2, length=9)
        total = struct.unpack("<H", head[2:4])[0]
        assert len(self.get_descriptor(2, length=255 if os_name == "windows" else total)) == total == 75
        for i in (0, 1, 2, 3):
            if os_name == "macos":
                n = self.get_descriptor(3, i, length=2)[0]
                assert len(self.get_descriptor(3, i, length=n)) == n
            else:
                assert self.get_descriptor(3, i, length=255)[1] == 3
        assert self.control(0x80, 6, 0x0600, 0, 10)[1]          # DEVICE_QUALIFIER: stall (full speed)
        assert self.control(0x00, 9, 1) == (b"", False)          # SET_CONFIGURATION 1

    def open(self, baud=115200):
        for ep in (0x02, 0x81):                                  # the host resets its pipes
            assert self.control(0x02, 1, 0, ep) == (b"", False)   # (the model resets the host's toggle)
        assert self.control(0x21, 0x20, 0, 0, 7, struct.pack("<IBBB", baud, 0, 0, 8)) == (b"", False)
        self.h.m_reading(1)
        assert self.control(0x21, 0x22, 3) == (b"", False)       # DTR and RTS up

    def close(self):
        assert self.control(0x21, 0x22, 0) == (b"", False)
        self.h.m_reading(0)

    def send(self, data: bytes):
        self.h.m_bulk_out((ctypes.c_uint8 * len(data))(*data), len(data))

    def pump(self):
        buf = (ctypes.c_uint8 * 65536)()
        n = self.h.m_take_in(buf, len(buf))
        self.usb_in += bytes(buf[:n])
        n = self.h.m_uart_take(buf, len(buf))
        self.uart += bytes(buf[:n])

    def until(self, marker: bytes, where="usb", timeout=20.0, start=0) -> bytes:
        def seen():
            self.pump()
            return marker in getattr(self, "usb_in" if where == "usb" else "uart")[start:]
        self.wait(seen, timeout, f"{marker!r} on {where}")
        text = self.usb_in if where == "usb" else self.uart
        return text[start:text.index(marker, start) + len(marker)]

    def clean(self):
        s = self.stats()
        bad = {k: s[k] for k in ("dma_overlap", "e199", "bad_ptr", "in_overwrite", "out_dropped", "dup_out",
                                 "dup_in", "recursion")}
        assert not any(bad.values()), bad


@pytest.fixture
def host(device_lib, tmp_path):
    made = []

    def make(**kw):
        made.append(Host(device_lib, tmp_path, **kw))
        return made[-1]
    yield make
    for h in made:
        h.stop()


def _session(h: Host):
    """Open, greeting, info, a 6 KB input line, infer, output as the same C computes it."""
    start = len(h.usb_in)
    h.open()
    h.until(b"tinyq-ready\n", start=start)                         # greeted on open (defect 1)
    data = bytes((i * 37 + 11) & 0xFF for i in range(6144))
    start = len(h.usb_in)
    h.send(b"load " + data.hex().encode() + b"\n")
    assert b"tq-ok load" in h.until(b"tinyq-ready\n", start=start)
    start = len(h.usb_in)
    h.send(b"infer 3 1\n")
    reply = h.until(b"tq-done infer\n", start=start)
    out = (ctypes.c_int8 * 16)()
    h.h.h_reference((ctypes.c_int8 * 6144)(*[b - 256 if b > 127 else b for b in data]), out)
    assert f"tq-output {bytes(x & 0xFF for x in out).hex()}".encode() in reply
    assert reply.count(b"tq-run ") == 3


@pytest.mark.parametrize("os_name", ["linux", "windows", "macos"])
def test_enumeration_and_a_full_session_on_the_model(host, os_name):
    h = host()
    h.until(b"consoles=uart+usb", where="uart")
    h.enumerate(os_name)
    _session(h)
    # the same line again, while the host also reads descriptors during the output (EP0 and bulk DMA)
    start = len(h.usb_in)
    h.send(b"infer 40 0\n")
    for _ in range(10):
        assert len(h.get_descriptor(2, length=255)) == 75
    h.until(b"tq-done infer\n", start=start)
    h.clean()
    assert h.stats()["device_dead"] == 0


def test_long_lines_lose_nothing_with_a_slow_console(host):
    # 12 KB of hex in one go at full-speed packet rates: the driver must NAK, not drop (defect 3).
    h = host()
    h.enumerate()
    h.open()
    h.until(b"tinyq-ready\n")
    for k in range(3):
        data = bytes((i * (k + 3) + k) & 0xFF for i in range(6144))
        start = len(h.usb_in)
        h.send(b"load " + data.hex().encode() + b"\ninfer 1 0\n")
        reply = h.until(b"tq-done infer\n", start=start)
        assert b"tq-ok load" in reply and b"tq-error" not in reply
        out = (ctypes.c_int8 * 16)()
        h.h.h_reference((ctypes.c_int8 * 6144)(*[b - 256 if b > 127 else b for b in data]), out)
        assert f"tq-output {bytes(x & 0xFF for x in out).hex()}".encode() in reply
    h.clean()


def test_the_1200_baud_touch_resets_into_the_bootloader_after_the_status_stage(host):
    h = host()
    h.enumerate()
    h.open(baud=1200)
    h.until(b"tinyq-ready\n")
    t0 = time.monotonic()
    assert h.control(0x21, 0x22, 0) == (b"", False)     # DTR dropped: the host's request completes
    h.wait(lambda: h.stats()["resets"] == 1, 5.0, "the reset")
    waited = time.monotonic() - t0
    s = h.stats()
    assert s["gpregret_at_reset"] == 0xB0                # DFU_MAGIC_SERIAL_ONLY_RESET (defect 2)
    assert s["ctl_open_at_reset"] == 0                   # no control transfer cut short (defect 4)
    assert waited >= 0.2 - 0.01


def test_the_touch_is_cancelled_by_reopening(host):
    h = host()
    h.enumerate()
    h.open(baud=1200)
    h.control(0x21, 0x22, 0)
    h.control(0x21, 0x22, 3)                             # opened again within 200 ms
    time.sleep(0.4)
    assert h.stats()["resets"] == 0


def test_clear_halt_resets_the_data_toggle_and_halt_is_real(host):
    h = host()
    h.enumerate()
    h.open()
    h.until(b"tinyq-ready\n")
    start = len(h.usb_in)
    h.send(b"info\n")                                    # one packet: the OUT toggle is now DATA1
    h.until(b"tinyq-ready\n", start=start)
    h.close()
    start = len(h.usb_in)
    h.open()                                             # CLEAR_FEATURE(HALT): both sides DATA0 (defect 5)
    start += len(h.until(b"tinyq-ready\n", start=start, timeout=5))   # the greeting
    h.send(b"info\n")
    assert b"tinyq-info" in h.until(b"tinyq-ready\n", start=start, timeout=5)
    # SET_FEATURE(HALT) stalls the endpoint and GET_STATUS says so; CLEAR_FEATURE undoes both
    assert h.control(0x02, 3, 0, 0x02) == (b"", False)
    assert h.control(0x82, 0, 0, 0x02, 2) == (b"\x01\x00", False)
    h.send(b"info\n")
    h.wait(lambda: h.stats()["stall_seen_out"] > 0, 5, "a STALL on the halted endpoint")
    assert h.control(0x02, 1, 0, 0x02) == (b"", False)
    assert h.control(0x82, 0, 0, 0x02, 2) == (b"\x00\x00", False)
    start = len(h.usb_in)
    h.until(b"tinyq-ready\n", start=start)               # the queued line goes through after the clear
    assert h.control(0x82, 0, 0, 0x05, 2)[1]             # no endpoint 5: stall
    h.clean()


def test_a_bus_reset_mid_session_closes_the_port(host):
    h = host()
    h.enumerate()
    h.open()
    h.until(b"tinyq-ready\n")
    h.bus_reset()
    h.enumerate()                                        # configured again, no port open (defect 6)
    start = len(h.uart)
    h.h.m_reading(1)
    h.h.m_uart_push(b"info\n", 5)
    h.until(b"tinyq-ready\n", where="uart", start=start, timeout=5)
    assert h.h.tq_usb_console_live() == 0
    h.pump()
    assert b"tinyq-info" not in h.usb_in[h.usb_in.rindex(b"tinyq-ready\n") + 12:]   # nothing written to USB
    _session(h)                                          # and a real open after it works
    h.clean()


def test_open_close_fifty_times(host):
    h = host()
    h.enumerate()
    for i in range(50):
        start = len(h.usb_in)
        h.open()
        h.until(b"tinyq-ready\n", start=start, timeout=5)
        start = len(h.usb_in)
        h.send(b"info\n")
        assert b"consoles=uart+usb" in h.until(b"tinyq-ready\n", start=start, timeout=5)
        h.close()
    h.clean()


def test_a_host_that_never_reads_does_not_hang_the_board(host):
    h = host()
    h.enumerate()
    h.open()
    h.h.m_reading(0)                                     # the port is open, nobody reads
    start = len(h.uart)
    h.send(b"infer 30 0\n")
    h.until(b"tq-done infer\n", where="uart", start=start, timeout=10)   # bounded: the UART carries on
    h.h.m_reading(1)                                     # a reader again: USB carries on
    start = len(h.usb_in)
    h.send(b"info\n")
    h.until(b"tinyq-ready\n", start=start, timeout=5)
    h.clean()


def test_vbus_removed_and_restored(host):
    h = host()
    h.enumerate()
    h.open()
    h.until(b"tinyq-ready\n")
    h.h.m_vbus(0)
    h.wait(lambda: h.stats()["enable"] == 0 and h.stats()["pullup"] == 0, 5, "USBD off without VBUS")
    start = len(h.uart)
    h.h.m_uart_push(b"info\n", 5)
    h.until(b"tinyq-ready\n", where="uart", start=start, timeout=5)
    h.h.m_vbus(1)
    h.enumerate()
    _session(h)
    h.clean()


@pytest.mark.parametrize("fault", ["hfxo_never", "usbd_never_ready"])
def test_usb_bring_up_that_never_finishes_falls_back_to_the_uart(host, fault):
    h = host(**{fault: 1})
    h.until(b"consoles=uart,usb-failed", where="uart", timeout=10)
    start = len(h.uart)
    h.h.m_uart_push(b"info\n", 5)
    assert b"tinyq-info" in h.until(b"tinyq-ready\n", where="uart", start=start, timeout=5)


def test_uart_receive_keeps_bytes_waiting_in_the_fifo(host):
    # Several bytes arrive at once (the RX FIFO holds them): each must be read once (defect 8).
    h = host(vbus=0)
    h.until(b"consoles=uart,usb-off", where="uart")
    for _ in range(5):
        start = len(h.uart)
        h.h.m_uart_push(b"info\n", 5)
        reply = h.until(b"tinyq-ready\n", where="uart", start=start, timeout=5)
        assert b"tinyq-info" in reply and b"tq-error" not in reply


# ---------------------------------------------------------------------------------------
# The host side: the touch and the board's USB ids.

class _FakeSerial:
    """serial.Serial as pyserial behaves when the board resets under the DTR drop."""

    raise_on_dtr: BaseException | None = None
    opened: list = []

    def __init__(self, port, baud):
        self.port, self.baud = port, baud
        _FakeSerial.opened.append((port, baud))

    @property
    def dtr(self):
        return True

    @dtr.setter
    def dtr(self, value):
        if _FakeSerial.raise_on_dtr is not None:
            raise _FakeSerial.raise_on_dtr

    def close(self):
        pass


@pytest.mark.parametrize("error", [
    OSError(71, "Protocol error"),                         # Linux: TIOCMBIC on a vanishing port
    OSError(6, "Device not configured"),                   # macOS: ENXIO
    "serial",                                              # Windows: SerialException from ClearCommError
])
def test_the_touch_survives_what_pyserial_raises_when_the_board_resets(monkeypatch, error):
    import serial

    from tinyq.device.upload import touch_1200bps

    _FakeSerial.raise_on_dtr = serial.SerialException("ClearCommError failed") if error == "serial" else error
    _FakeSerial.opened = []
    monkeypatch.setattr(serial, "Serial", _FakeSerial)
    touch_1200bps("/dev/ttyACM0")                          # no exception: the touch reached the board
    assert _FakeSerial.opened == [("/dev/ttyACM0", 1200)]


def test_the_touch_reports_a_port_that_cannot_be_opened(monkeypatch):
    import serial

    from tinyq.errors import TransportError
    from tinyq.device.upload import touch_1200bps

    def refuse(*a):
        raise OSError(13, "Permission denied")
    monkeypatch.setattr(serial, "Serial", refuse)
    with pytest.raises(TransportError, match="1200-baud"):
        touch_1200bps("/dev/ttyACM0")


@pytest.mark.parametrize("pid,mode", [(0x805A, "application"), (0x015A, "application"), (0x025A, "application"),
                                      (0x005A, "bootloader"), (0x8057, None)])
def test_discovery_knows_every_id_the_nano33_enumerates_as(pid, mode):
    from types import SimpleNamespace

    from tinyq.device.ports import find_ports

    board = get_board("nano33")
    p = SimpleNamespace(device="/dev/ttyACM0", vid=0x2341, pid=pid, serial_number="X", description="Nano")
    found = find_ports({board.id: board}, [p])
    assert [f.mode for f in found] == ([mode] if mode else [])


def test_bossac_on_windows_is_found_under_localappdata(tmp_path, monkeypatch):
    from tinyq.device.ports import find_bossac

    exe = tmp_path / "Arduino15/packages/arduino/tools/bossac/1.9.1-arduino2/bossac.exe"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\necho 'Version 1.9.1-arduino2'\n")
    exe.chmod(0o755)
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert find_bossac(path=os.devnull) == (str(exe), "1.9.1-arduino2")


def test_a_long_infer_still_answers_the_host(host):
    """The host's control requests (a port opened elsewhere, line coding) time out after about 5 s on Linux: the
    protocol services the console between runs, so a long `infer` answers them within a run, not at its end."""
    h = host()
    h.until(b"consoles=uart+usb", where="uart")
    h.enumerate("linux")
    _session(h)
    start = len(h.usb_in)
    h.send(b"infer 1 40000\n")  # tens of thousands of warm-ups of the stand-in model: seconds without a poll
    time.sleep(0.3)
    t0 = time.monotonic()
    assert len(h.get_descriptor(1, length=18)) == 18
    answered = time.monotonic() - t0
    h.until(b"tq-done infer\n", start=start, timeout=120)
    finished = time.monotonic() - t0
    assert answered < 0.5 < finished, (answered, finished)
