"""The training cost model (one implementation, used by everything) and, later, the
Pyomo formulations and the exhaustive certifier that search over it."""
