"""The USB CDC-ACM protocol layer, compiled for the host and driven by setup packets.

There is no USB device model in QEMU or Renode, so the firmware's USB stack is tested
here at the level it was written for: the protocol layer (`firmware/usb/tq_usb_cdc.c`)
answers setup packets with descriptors and request outcomes; the register layer that
moves those bytes through the nRF52840's USBD has not run on silicon in CI.
"""

from __future__ import annotations

import ctypes
import shutil
import struct
import subprocess
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
