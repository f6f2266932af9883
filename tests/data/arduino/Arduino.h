/* The smallest Arduino API the exported library uses, for a compile check only (tests/test_arduino.py).
 * It declares what the Arduino cores declare for these names (ArduinoCore-API's Print and Stream, as the
 * mbed core has them); nothing here runs. */
#ifndef ARDUINO_H_STUB
#define ARDUINO_H_STUB

#include <stddef.h>
#include <stdint.h>

#define DEC 10

class HardwareSerialStub {
public:
    void begin(unsigned long baud);
    int available(void);
    int read(void);
    size_t write(uint8_t c);
    explicit operator bool() const;
    size_t print(const char[]);
    size_t print(char);
    size_t print(int, int = DEC);
    size_t print(unsigned int, int = DEC);
    size_t print(long, int = DEC);
    size_t print(unsigned long, int = DEC);
    size_t print(double, int = 2);
    size_t println(const char[]);
    size_t println(int, int = DEC);
    size_t println(unsigned long, int = DEC);
    size_t println(double, int = 2);
    size_t println(void);
};

extern HardwareSerialStub Serial;

unsigned long micros(void);
void delay(unsigned long ms);
void setup(void);
void loop(void);

#endif
