"""pyserial URL handlers of tinyq's own (``serial.protocol_handler_packages``)."""
