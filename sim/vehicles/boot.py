"""A simulated ArduCopter's start-up: the texts and milestones of a real one, on time.

`BootSequence` keeps only where the start-up is (its own clock origin, the next recorded step,
when the next "PreArm:" reminder is due); the vehicle asks it what is due and acts on the
milestones ("heartbeat", "standby", "origin", "using_gps").

>>> boot = BootSequence(fast_start=True)
>>> [ev for _, ev in boot.due(0.02)]
[None, None, 'heartbeat']
>>> boot.gyros_settling(0.3), boot.gyros_settling(0.5)
(True, False)
"""
from __future__ import annotations

_INFO, _DEBUG = 6, 7  # MAV_SEVERITY

# Start-up as recorded (vehicle seconds after boot, 1x): (t, [(severity, text)], event)
RECORDED: list[tuple[float, list[tuple[int, str]], str | None]] = [
    (0.10, [(_DEBUG, "RCInput: decoding UDP (Pulses)")], None),
    (0.20, [(_INFO, "Calibrating barometer")], None),
    (0.90, [], "heartbeat"),
    (1.80, [(_INFO, "Barometer 1 calibration complete"), (_INFO, "Barometer 2 calibration complete")], None),
    (2.35, [(_INFO, "ArduPilot Ready"), (_INFO, "AHRS: DCM active")], None),
    (2.90, [], "standby"),
    (4.35, [(_INFO, "EKF3 IMU0 initialised"), (_INFO, "EKF3 IMU1 initialised"),
            (_INFO, "AHRS: EKF3 active")], None),
    (5.70, [(_INFO, "EKF3 IMU0 tilt alignment complete"), (_INFO, "EKF3 IMU1 tilt alignment complete")], None),
    (5.80, [(_INFO, "EKF3 IMU0 MAG0 initial yaw alignment complete"),
            (_INFO, "EKF3 IMU1 MAG0 initial yaw alignment complete")], None),
    (9.70, [(_INFO, "GPS 1: probing for u-blox at 230400 baud"), (_INFO, "GPS 1: detected u-blox")], None),
    (19.90, [], "origin"),
    (19.94, [(_INFO, "Field Elevation Set: {alt}m")], None),
    (20.10, [(_INFO, "EKF3 IMU1 origin set")], None),
    (41.30, [(_INFO, "EKF3 IMU0 is using GPS")], "using_gps"),
    (41.50, [(_INFO, "EKF3 IMU1 is using GPS")], None),
]
BOOT_ARMABLE_S = 41.3  # "EKF3 IMU0 is using GPS"
GYROS_SETTLED_S = 21.0  # before this a pre-arm check says "Gyros inconsistent"
FAST_START_SCALE = 0.02  # fast start: the same sequence, armable after ~0.8 s
PREARM_REPORT_PERIOD_S = 30.0


class BootSequence:
    """Where one vehicle is in its start-up; `restart(now)` on a reboot."""

    def __init__(self, fast_start: bool = False) -> None:
        self.fast_start = fast_start
        self.scale = FAST_START_SCALE if fast_start else 1.0
        self.restart(0.0)

    def restart(self, now: float) -> None:
        self.t0 = now  # vehicle time of power-on (time_boot_ms counts from here)
        self._next = 0
        self._gyros_ok_s = now + GYROS_SETTLED_S * self.scale
        self._next_prearm_s = now + PREARM_REPORT_PERIOD_S * (0.5 if self.fast_start else 1.0)

    def due(self, now: float) -> list[tuple[list[tuple[int, str]], str | None]]:
        """The recorded steps due by `now` and not yet taken: (texts, milestone or None) each."""
        out = []
        while self._next < len(RECORDED) and now - self.t0 >= RECORDED[self._next][0] * self.scale:
            _, texts, milestone = RECORDED[self._next]
            out.append((texts, milestone))
            self._next += 1
        return out

    def prearm_report_due(self, now: float) -> bool:
        """True once per PREARM_REPORT_PERIOD_S: time to repeat why the vehicle cannot arm."""
        if now < self._next_prearm_s:
            return False
        self._next_prearm_s = now + PREARM_REPORT_PERIOD_S
        return True

    def gyros_settling(self, now: float) -> bool:
        return now < self._gyros_ok_s
