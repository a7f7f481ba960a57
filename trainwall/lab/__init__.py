"""``trainwall lab``: the workbench, a marimo app for the twelve missions (``pip install '.[lab]'``).

:mod:`trainwall.lab.model` holds a student's session without marimo (tested headless);
:mod:`trainwall.lab.app` draws it; :func:`trainwall.lab.launch.serve` starts the app on
127.0.0.1.
"""
