"""The shared bottom of trainwall: errors, safe file reading and the configuration schema.

Everything above imports from here; nothing here imports the cost model, the search,
the missions or the entry points (``tests/test_architecture.py`` checks the layers).
"""

#: trainwall's version: the one place it is written (pyproject.toml reads it, as do
#: ``trainwall --version``, the answer keys' ``solved_by`` and the autograder bundle).
VERSION = "0.1.0"
