"""One transport for every way bytes reach the host: a serial port, QEMU's or Renode's socket.

All are opened with :func:`serial.serial_for_url` ("/dev/ttyACM0", "socket://127.0.0.1:PORT",
"unix:///run/dir/console" through tinyq's own URL handler), so the code that talks to the
firmware is the same for a board and an emulator.
"""

from __future__ import annotations

import time

from tinyq.errors import DeviceTimeoutError, TransportError

_HANDLERS = "tinyq.device.serial_handlers"


class Transport:
    """A line-oriented connection to a device."""

    def __init__(self, url: str, baudrate: int = 115200, timeout: float = 0.2, connect_timeout: float = 10.0,
                 wait_for_peer: bool | None = None):
        """Open ``url``. ``wait_for_peer``: keep trying until ``connect_timeout`` (an emulator that has
        not opened its end yet); by default for socket URLs, not for a board's port."""
        import serial

        if _HANDLERS not in serial.protocol_handler_packages:
            serial.protocol_handler_packages.append(_HANDLERS)
        if wait_for_peer is None:
            wait_for_peer = url.startswith(("socket://", "unix://"))
        self.url = url
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                self._port = serial.serial_for_url(url, baudrate=baudrate, timeout=timeout, exclusive=True)
                break
            except (serial.SerialException, OSError, ValueError) as e:
                msg = str(e)
                busy = "busy" in msg.lower() or "lock" in msg.lower()
                if busy or not wait_for_peer or time.monotonic() > deadline:
                    hint = ("another program (a serial monitor?) has the port open: close it" if busy
                            else "check the port name and permissions (add yourself to the dialout group)")
                    raise TransportError(f"cannot open {url}: {msg}", hint=hint) from e
                time.sleep(0.05)  # the emulator has not opened its socket yet
        self._buf = b""
        self.transcript: list[str] = []
        self.closed_by_peer = False

    def write_line(self, line: str) -> None:
        """Send one line (a newline is added)."""
        import serial

        try:
            self._port.write(line.encode("ascii") + b"\n")
            self._port.flush()
        except (serial.SerialException, OSError) as e:
            raise TransportError(f"{self.url}: write failed ({e})") from e

    def read_until(self, sentinels: tuple[str, ...], timeout: float) -> list[str]:
        """Read lines until one equals a sentinel; return the lines read (sentinel included).

        The peer closing the connection (QEMU exiting) ends the data; a silent
        device past ``timeout`` raises :class:`DeviceTimeoutError`.
        """
        import serial

        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            while b"\n" in self._buf:
                raw, self._buf = self._buf.split(b"\n", 1)
                line = raw.decode("ascii", "replace").strip()
                if not line:
                    continue
                lines.append(line)
                self.transcript.append(line)
                if line in sentinels or line == "tq-fault":
                    return lines
            if self.closed_by_peer:
                return lines
            if time.monotonic() > deadline:
                raise DeviceTimeoutError(
                    f"{self.url}: no {' / '.join(sentinels)} within {timeout:.0f} s "
                    f"(last line: {lines[-1] if lines else (self.transcript[-1] if self.transcript else 'nothing')!r})"
                )
            try:
                # What is waiting, or block (up to the port timeout) for the first byte: a fixed
                # read(4096) would sit out the whole timeout whenever less than that arrives.
                chunk = self._port.read(max(1, self._port.in_waiting))
            except (serial.SerialException, OSError):
                # QEMU closed its socket: everything it sent has been read.
                self.closed_by_peer = True
                chunk = b""
            self._buf += chunk

    def close(self) -> None:
        try:
            self._port.close()
        except Exception:  # noqa: BLE001 - closing a dead socket must not mask the real error
            pass

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
