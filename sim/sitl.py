"""Launch real ArduCopter SITL processes behind the same endpoints as the built-in simulator.

Instance i runs in its own working directory (its own eeprom.bin and logs) with `-I i`, so it
listens on TCP 127.0.0.1:(base_port + 10*i) and gets sysid i+1, exactly like
`SimulatedFleet`: a client written against one works with the other.

The binary is `binary=`, else $ARDUPILOT_SITL, else `arducopter` on PATH; a defaults file is
`defaults=`, else $ARDUPILOT_DEFAULTS (if set). No binary -> SimError saying how to get one.

Each instance also gets the airframe profile's pack (common/airframe.py): a parameter file
`airframe.parm` in its working directory, loaded after the defaults file, sets BATT_CAPACITY to
the pack's mAh and SIM_BATT_CAP_AH to the same in Ah, so SITL's simulated voltage sags as the
pack drains (stock SITL: 3300 mAh, ~6.5 min of flight, and a voltage that never sags).

A port another process already listens on is refused before anything starts (SITL would fail
to bind it, and we would talk to that other process); a failed start keeps the working
directory and its log, whose path the error names.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from pymavlink.dialects.v20 import ardupilotmega as mavlink

from common.airframe import AirframeProfile
from sim import SimError

log = logging.getLogger(__name__)
HEARTBEAT_TIMEOUT_S = 60.0
AIRFRAME_PARM = "airframe.parm"
STOP_TIMEOUT_S = 5.0


def find_sitl_binary(binary: str | None = None) -> str:
    """The SITL binary to run, or SimError explaining where it is looked for."""
    candidate = binary or os.environ.get("ARDUPILOT_SITL") or shutil.which("arducopter")
    if not candidate:
        raise SimError("no ArduCopter SITL binary found: set ARDUPILOT_SITL=/path/to/arducopter (build it with "
                       "`./waf configure --board sitl && ./waf copter` in an ArduPilot checkout), put `arducopter` "
                       "on PATH, or use the built-in simulator: `patrol sim vehicles`")
    path = Path(candidate)
    if not path.is_file():
        found = shutil.which(candidate)
        if not found:
            raise SimError(f"ArduCopter SITL binary {candidate!r} does not exist")
        path = Path(found)
    if not os.access(path, os.X_OK):
        raise SimError(f"ArduCopter SITL binary {str(path)!r} is not executable")
    return str(path)


@dataclass
class SitlInstance:
    index: int
    port: int
    workdir: Path
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None
    _log_file: object = field(default=None, repr=False)

    @property
    def sysid(self) -> int:
        return self.index + 1

    @property
    def url(self) -> str:
        return f"tcp:127.0.0.1:{self.port}"


class SitlFleet:
    """N ArduCopter SITL processes, started and stopped as an async context manager."""

    def __init__(self, count: int = 1, home: tuple[float, float, float] = (32.0, 119.58, 10.0),
                 speedup: float = 1.0, base_port: int = 5760, binary: str | None = None,
                 defaults: str | None = None, workdir: str | None = None, model: str = "quad",
                 heartbeat_timeout_s: float = HEARTBEAT_TIMEOUT_S, airframe: AirframeProfile | None = None) -> None:
        if count < 1:
            raise SimError(f"a SITL fleet needs at least 1 instance, got count={count}")
        if speedup <= 0:
            raise SimError(f"speedup must be > 0, got {speedup}")
        self.binary = find_sitl_binary(binary)
        defaults = defaults or os.environ.get("ARDUPILOT_DEFAULTS") or None
        if defaults and not Path(defaults).is_file():
            raise SimError(f"SITL defaults file {defaults!r} does not exist")
        self.defaults = str(Path(defaults).resolve()) if defaults else None
        self.count = count
        self.home = home
        self.speedup = speedup
        self.base_port = base_port
        self.model = model
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.airframe = airframe or AirframeProfile()
        self._tmp: Path | None = None  # our own temporary root, removed on a clean stop
        root = Path(workdir) if workdir else None
        if root is None:
            self._tmp = root = Path(tempfile.mkdtemp(prefix="patrol-sitl-"))
        self.instances = [SitlInstance(i, base_port + 10 * i, root / f"instance{i}") for i in range(count)]

    def airframe_params(self) -> dict[str, float]:
        """What each instance is given on top of its defaults: the profile's pack."""
        return {"BATT_CAPACITY": round(self.airframe.pack_mah), "SIM_BATT_CAP_AH": self.airframe.pack_mah / 1000.0}

    def command_for(self, inst: SitlInstance) -> list[str]:
        lat, lon, alt = self.home
        cmd = [self.binary, "--model", self.model, "--speedup", f"{self.speedup:g}",
               "--home", f"{lat},{lon},{alt},0", "-I", str(inst.index), "--sysid", str(inst.sysid)]
        if self.base_port != 5760:
            cmd += ["--base-port", str(self.base_port)]
        # a comma-separated list, later files winning: the airframe's pack over the defaults
        parm = str(inst.workdir / AIRFRAME_PARM)
        cmd += ["--defaults", f"{self.defaults},{parm}" if self.defaults else parm]
        return cmd

    def _check_ports_free(self) -> None:
        """SimError naming a port some other process already listens on."""
        for inst in self.instances:
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.5)
                if probe.connect_ex(("127.0.0.1", inst.port)) == 0:
                    raise SimError(f"port {inst.port} (SITL instance {inst.index}) is already taken by another "
                                   f"process: stop it or choose another --base-port")

    async def start(self) -> SitlFleet:
        self._check_ports_free()
        try:
            for inst in self.instances:
                inst.workdir.mkdir(parents=True, exist_ok=True)
                (inst.workdir / AIRFRAME_PARM).write_text(
                    "".join(f"{name} {value:g}\n" for name, value in self.airframe_params().items()))
                inst.log_path = inst.workdir / "sitl.log"
                inst._log_file = open(inst.log_path, "wb")
                try:
                    inst.process = await asyncio.create_subprocess_exec(
                        *self.command_for(inst), cwd=inst.workdir, stdin=asyncio.subprocess.DEVNULL,
                        stdout=inst._log_file, stderr=asyncio.subprocess.STDOUT, start_new_session=True)
                except OSError as exc:
                    raise SimError(f"cannot start SITL {self.binary}: {exc}") from exc
            await asyncio.gather(*(self._wait_heartbeat(inst) for inst in self.instances))
        except BaseException:
            await self.stop(keep_logs=True)  # the error names a log: it must still be there
            raise
        return self

    async def _wait_heartbeat(self, inst: SitlInstance) -> None:
        """Connect to the instance's TCP port until it sends a HEARTBEAT from its sysid."""
        deadline = time.monotonic() + self.heartbeat_timeout_s
        parser = mavlink.MAVLink(None)
        parser.robust_parsing = True
        while time.monotonic() < deadline:
            if inst.process is not None and inst.process.returncode is not None:
                raise SimError(f"SITL instance {inst.index} exited with {inst.process.returncode}; "
                               f"see {inst.log_path}")
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", inst.port), 2)
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.3)
                continue
            try:
                while time.monotonic() < deadline:
                    data = await asyncio.wait_for(reader.read(4096), max(0.1, deadline - time.monotonic()))
                    if not data:
                        break
                    for m in parser.parse_buffer(data) or []:
                        if m.get_type() == "HEARTBEAT" and m.get_srcSystem() == inst.sysid:
                            return
            except asyncio.TimeoutError:
                break
            finally:
                writer.close()
        raise SimError(f"SITL instance {inst.index} sent no HEARTBEAT on {inst.url} within "
                       f"{self.heartbeat_timeout_s:.0f} s; see {inst.log_path}")

    async def stop(self, keep_logs: bool = False) -> None:
        """SIGTERM each process group, SIGKILL what is left after a few seconds; the temporary
        working directories go too unless `keep_logs`."""
        for inst in self.instances:
            p = inst.process
            if p is not None and p.returncode is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for inst in self.instances:
            p = inst.process
            if p is None:
                continue
            try:
                await asyncio.wait_for(p.wait(), STOP_TIMEOUT_S)
            except asyncio.TimeoutError:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                await p.wait()
            if inst._log_file is not None:
                inst._log_file.close()
                inst._log_file = None
        if self._tmp is not None:
            if keep_logs:
                log.error("SITL working directories kept for their logs: %s", self._tmp)
            else:
                shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    async def __aenter__(self) -> SitlFleet:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, i: int) -> SitlInstance:
        return self.instances[i]
