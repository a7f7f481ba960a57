"""The lab's twelve missions as data (one TOML file per track and part).

Loaded by :mod:`trainwall.challenges.mission`; see docs/DESIGN.md, "The lab, as missions".
"""
