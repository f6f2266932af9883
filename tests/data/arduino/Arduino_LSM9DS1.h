/* The part of the Arduino_LSM9DS1 library's API (LSM9DS1.h, v1.1) the IMU example calls, for a compile check only. */
#ifndef ARDUINO_LSM9DS1_STUB
#define ARDUINO_LSM9DS1_STUB

class LSM9DS1Class {
public:
    int begin();
    void end();
    int readAcceleration(float &x, float &y, float &z);
    int accelerationAvailable();
    int readGyroscope(float &x, float &y, float &z);
    int gyroscopeAvailable();
};

extern LSM9DS1Class IMU;

#endif
