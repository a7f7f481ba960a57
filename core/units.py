"""Units a reader sees: bytes in the binary unit that suits them."""

from __future__ import annotations

_UNITS = ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"), (1, "B"))


def unit_for(nbytes: float) -> tuple[float, str]:
    """The binary unit that suits a capacity: GiB for 80 GiB, MiB for 512 MiB, KiB for SRAM."""
    for scale, name in _UNITS:
        if nbytes >= scale:
            return scale, name
    return 1, "B"
