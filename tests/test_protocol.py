"""The protocol parser on transcripts captured from real firmware (and hand-made edge cases)."""

from pathlib import Path

import numpy as np
import pytest

from tinyq.device.devices import Clock
from tinyq.errors import DeviceTimeoutError, ProtocolError, VerificationError
from tinyq.report.measure import check, evaluate
from tinyq.device.protocol import is_protocol_line, parse_info, parse_log

#: QEMU's SysTick at 25 MHz under icount: 40 instructions a tick; silicon: DWT cycles.
QEMU = Clock("instructions", 40.0, "QEMU icount")
SILICON = Clock("cycles", None, "DWT")

LOGS = Path(__file__).parent / "data" / "logs"


def test_qemu_transcript_of_the_digits_model():
    r = parse_log((LOGS / "digits_qemu.log").read_text())
    assert r.info.board == "nano33" and r.info.target == "qemu" and r.info.timer == "systick"
    assert r.info.input_bytes == 64 and r.info.output_bytes == 10 and r.info.arena_bytes == 6144 + 2304  # activations + im2col scratch
    assert len(r.infers) == 3
    first = r.infers[0]
    assert len(first.run_ticks) == 5 and first.median_ticks == sorted(first.run_ticks)[2]
    assert len(first.lap_us) == 2 and first.lap_us[1] > first.lap_us[0]
    assert all(len(i.output) == 10 for i in r.infers)
    assert [op for op, _ in r.layers][:2] == ["CONV_2D", "DEPTHWISE_CONV_2D"] and len(r.layers) == 10
    assert r.complete and not r.fault and not r.errors


def test_board_transcript_with_noise_and_an_error():
    r = parse_log((LOGS / "real_board_noise.log").read_text())
    assert r.info.timer == "dwt" and r.info.timer_hz == 64_000_000
    assert r.infers[0].run_ticks == (1280, 1270, 1300) and r.infers[0].output == bytes([0x7F, 0x80])
    assert r.errors == ("unknown command",)
    assert not is_protocol_line(r.lines[0]) and is_protocol_line(r.lines[1])


def test_fault_is_reported():
    r = parse_log((LOGS / "fault.log").read_text())
    assert r.fault and not r.infers
    with pytest.raises(DeviceTimeoutError, match="faulted"):
        evaluate(r, np.zeros((1, 10), np.int8), 64_000_000, QEMU)


def test_measurement_units_on_emulator_and_silicon():
    r = parse_log((LOGS / "digits_qemu.log").read_text())
    expected = np.stack([np.frombuffer(i.output, np.int8) for i in r.infers])
    m = evaluate(r, expected, 64_000_000, QEMU)
    assert m.cycles_kind == "instructions" and m.cycles == r.infers[0].median_ticks * 40
    assert m.latency_us == pytest.approx(m.cycles / 64, rel=1e-3)
    assert m.outputs_match and m.inputs_checked == 3 and len(m.layers) == 10
    check(m)
    board = parse_log((LOGS / "real_board_noise.log").read_text())
    mb = evaluate(board, np.array([[127, -128]], np.int8), 64_000_000, SILICON)
    assert mb.cycles_kind == "cycles" and mb.cycles == 1280 and mb.latency_us == 20.0


def test_mismatching_output_fails_verification():
    r = parse_log((LOGS / "digits_qemu.log").read_text())
    expected = np.stack([np.frombuffer(i.output, np.int8) for i in r.infers]).copy()
    expected[1, 3] ^= 1
    m = evaluate(r, expected, 64_000_000, QEMU)
    assert m.mismatched_inputs == (1,)
    with pytest.raises(VerificationError, match="1 of 3"):
        check(m)


@pytest.mark.parametrize("line", [
    "tinyq-info v=2 board=x",
    "tinyq-info v=1 board=nano33 in=notanumber",
])
def test_bad_info_lines(line):
    with pytest.raises(ProtocolError):
        parse_info(line)


def test_truncated_infer_answer():
    text = (LOGS / "digits_qemu.log").read_text().replace("tq-median", "tq-medianx", 1)
    with pytest.raises(ProtocolError, match="missing"):
        parse_log(text)


def test_incomplete_transcript_is_not_complete():
    text = (LOGS / "digits_qemu.log").read_text()
    cut = text[: text.index("tq-done infer")]
    r = parse_log(cut)
    assert not r.complete and not r.infers


def test_the_boot_line_names_the_consoles_and_older_firmware_still_parses():
    line = ("tinyq-info v=1 board=nano33 target=board model=f36bd8c97155 in=64 out=10 arena=6656 ops=10 "
            "macs=774784 timer=dwt timer_hz=64000000 cpu_hz=64000000 static_ram=7036 flash=77120 stack=8192")
    assert parse_info(line).consoles == ""
    assert parse_info(line + " consoles=uart+usb").consoles == "uart+usb"
