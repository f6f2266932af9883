"""``unix:///path/to/socket``: an emulator's console on a Unix-domain socket, for ``serial.serial_for_url``.

An emulator given a TCP port must be told the number before it binds it, so two tinyq
runs at once can be handed the same free port and one connects to the other's
emulator. A socket file in a folder of the run's own cannot be shared.
"""

from __future__ import annotations

import socket
import urllib.parse

from serial.serialutil import SerialException
from serial.urlhandler import protocol_socket


class Serial(protocol_socket.Serial):
    """pyserial's socket:// port, connected to a Unix-domain socket instead of a TCP address."""

    def open(self):
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        if self.is_open:
            raise SerialException("Port is already open.")
        self.logger = None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(protocol_socket.POLL_TIMEOUT)
            sock.connect(self.from_url(self.portstr))
        except OSError as e:
            sock.close()
            raise SerialException(f"Could not open port {self.portstr}: {e}") from e
        sock.setblocking(False)
        self._socket = sock
        self._reconfigure_port()
        self.is_open = True
        self.reset_input_buffer()
        self.reset_output_buffer()

    def from_url(self, url: str) -> str:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "unix" or not parts.path:
            raise SerialException(f'expected "unix:///path/to/socket", got {url!r}')
        return parts.path
