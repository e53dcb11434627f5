"""Everything simulated: ArduCopter-compatible vehicles (`sim.vehicles`), the SITL launcher
(`sim.sitl`), the synthetic camera and simulated riders.

`SimError` is the package's one root error; library errors are re-raised from it.
"""


class SimError(Exception):
    """Something in the simulator or the SITL launcher failed; the message says what."""
