/* The smallest Arduino API the exported library uses, for a compile check only (tests/test_arduino.py).
 * It declares what the Arduino mbed core declares for these names; nothing here runs. */
#ifndef ARDUINO_H_STUB
#define ARDUINO_H_STUB

#include <stddef.h>
#include <stdint.h>

class HardwareSerialStub {
public:
    void begin(unsigned long baud);
    int available(void);
    int read(void);
    size_t write(uint8_t c);
    explicit operator bool() const;
};

extern HardwareSerialStub Serial;

unsigned long micros(void);
void setup(void);
void loop(void);

#endif
