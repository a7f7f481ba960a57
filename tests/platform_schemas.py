"""The results-file shapes the platforms publish, written down as JSON Schemas.

* Gradescope: gradescope-autograders.readthedocs.io/en/latest/specs/ ("Output format"):
  top-level ``score`` (optional if every test has one), ``execution_time``, ``output``,
  ``output_format``, ``test_output_format``, ``test_name_format``, ``visibility``,
  ``stdout_visibility``, ``extra_data``, ``tests``, ``leaderboard``; a test has
  ``score``, ``max_score``, ``status`` ("passed" | "failed"), ``name``,
  ``name_format``, ``number``, ``output``, ``output_format``, ``tags``, ``visibility``,
  ``extra_data``; visibility is one of hidden, after_due_date, after_published, visible.
  trainwall's contract (issue 4) also requires each test's name, score, max_score,
  output, visibility and status.
* PrairieLearn: docs.prairielearn.com/externalGrading/ ("Grading results"): ``score``
  in [0, 1] is mandatory for a gradable submission; ``gradable: false`` marks an
  invalid submission, with ``format_errors`` a string or an array of strings; the
  ``<pl-external-grader-results>`` element renders ``message``, ``output``, ``images``
  and ``tests[]`` of ``name``, ``description``, ``points``, ``max_points``,
  ``message``, ``output``, ``images``. The results file must stay under 1 MB.
"""

VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}

GRADESCOPE = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number"},
        "output": {"type": "string"},
        "output_format": FORMAT,
        "test_output_format": FORMAT,
        "test_name_format": FORMAT,
        "visibility": VISIBILITY,
        "stdout_visibility": VISIBILITY,
        "extra_data": {"type": "object"},
        "leaderboard": {"type": "array"},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "score", "max_score", "output", "visibility", "status"],
                "properties": {
                    "score": {"type": "number"},
                    "max_score": {"type": "number", "minimum": 0},
                    "status": {"enum": ["passed", "failed"]},
                    "name": {"type": "string"},
                    "name_format": FORMAT,
                    "number": {"type": "string"},
                    "output": {"type": "string"},
                    "output_format": FORMAT,
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "visibility": VISIBILITY,
                    "extra_data": {"type": "object"},
                },
            },
        },
    },
    "required": ["score", "tests"],
}

_IMAGES = {"type": "array", "items": {"anyOf": [
    {"type": "string"},
    {"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}, "label": {"type": "string"}}},
]}}

PRAIRIELEARN = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "gradable": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "message": {"type": "string"},
        "output": {"type": "string"},
        "images": _IMAGES,
        "format_errors": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "tests": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "points", "max_points"],
                "properties": {
                    "name": {"type": "string"},
                    "description": {"type": "string"},
                    "points": {"type": "number"},
                    "max_points": {"type": "number"},
                    "message": {"type": "string"},
                    "output": {"type": "string"},
                    "images": _IMAGES,
                },
            },
        },
    },
    "if": {"properties": {"gradable": {"const": False}}, "required": ["gradable"]},
    "then": {"required": ["format_errors"]},
    "else": {"required": ["score"]},
}
