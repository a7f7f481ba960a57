"""Units a reader sees: bytes in the binary unit that suits them, watts with an SI prefix."""

from __future__ import annotations

_UNITS = ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B"))


def unit_for(nbytes: float) -> tuple[float, str]:
    """The binary unit that suits a capacity: GiB for 80 GiB, MiB for 512 MiB, KiB for SRAM."""
    for scale, name in _UNITS:
        if nbytes >= scale:
            return scale, name
    return 1, "B"


_WATTS = ((1e6, "MW"), (1e3, "kW"), (1.0, "W"), (1e-3, "mW"), (1e-6, "uW"))


def watts(w: float) -> str:
    """Watts with the SI prefix that suits them: 2.954 mW, 574.5 W, 946.6 kW."""
    for scale, unit in _WATTS:
        if abs(w) >= scale:
            return f"{w / scale:.4g} {unit}"
    return f"{w * 1e9:.4g} nW"
