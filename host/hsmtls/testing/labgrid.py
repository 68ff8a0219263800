"""The board's serial port from a labgrid target (`pytest --lg-env env.yaml`).

labgrid's exporter runs ser2net in front of each RawSerialPort / USBSerialPort it
exports; a client that holds the place gets a NetworkSerialPort (host, port, speed,
protocol rfc2217 or raw). That is, for hsmtls, `rfc2217://host:port` (or
`socket://host:port`); a RawSerialPort in a local environment is its device path.
"""

from __future__ import annotations

from typing import Any


class LabgridError(Exception):
    pass


def serial_port(target: Any) -> tuple[str, int]:
    """(port or URL, baud) of the target's serial port resource."""
    from labgrid.exceptions import NoResourceFoundError
    from labgrid.resource import NetworkSerialPort, RawSerialPort

    for cls in (NetworkSerialPort, RawSerialPort):
        try:
            r = target.get_resource(cls)
        except NoResourceFoundError:
            continue
        if cls is RawSerialPort:
            return r.port, r.speed
        scheme = "rfc2217" if r.protocol == "rfc2217" else "socket"
        return f"{scheme}://{r.host}:{r.port}", r.speed
    raise LabgridError(f"the labgrid target {target.name!r} has no NetworkSerialPort or RawSerialPort: add one to "
                       "its resources (or acquire the place that has it: labgrid-client -p PLACE acquire)")
