"""Device: where firmware runs. devices (one adapter per kind of target, from a registry), launch (emulators),
upload (one strategy per uploader a board file can name), transport and serial handlers (bytes to the host),
protocol (what the firmware prints, parsed), ports (boards found on USB)."""
