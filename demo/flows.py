"""Demo workflows, synced into the database by `manage.py migrate`. Nothing fetched from outside."""

from demo import functions
from workflows.flows import Workflow

# --- demo-pipeline: generate in Python, transform in a script, branch, wait, summarise. -----

TRANSFORM = """\
import json, sys
data = json.load(sys.stdin)
squares = [n * n for n in data["numbers"]]
print(f"squared {len(squares)} numbers")
print(json.dumps({"squares": squares, "total": sum(data["numbers"])}))
"""

pipeline = Workflow(
    "demo-pipeline",
    name="Demo pipeline",
    description="Generate numbers, square them in a script, branch on the total, wait, summarise.",
    input_schema={
        "type": "object",
        "properties": {
            "count": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 5},
            "threshold": {"type": "integer", "default": 50},
            "seed": {"type": ["integer", "null"], "default": None},
        },
        "additionalProperties": False,
    },
    output="{{ steps.summarise.output }}",
)
generate = pipeline.python(
    "generate",
    function=functions.generate_numbers,
    args={"count": "{{ default(input.count, 5) }}", "seed": "{{ input.seed }}"},
)
transform = pipeline.script(
    "transform", source=TRANSFORM, input=generate.output, depends_on=[generate], timeout=60
)
check = pipeline.branch(
    "check",
    cases=[("steps.transform.output.total > default(input.threshold, 50)", ["big"])],
    default=["small"],
    depends_on=[transform],
)
big = pipeline.python(
    "big",
    function=functions.label,
    args={"kind": "big", "total": "{{ steps.transform.output.total }}"},
    depends_on=[check],
)
small = pipeline.python(
    "small",
    function=functions.label,
    args={"kind": "small", "total": "{{ steps.transform.output.total }}"},
    depends_on=[check],
)
pause = pipeline.wait("pause", seconds=1, depends_on=[transform])  # not a branch target
pipeline.python(
    "summarise",
    function=functions.summarise,
    args={
        "numbers": "{{ steps.generate.output.numbers }}",
        "squares": "{{ steps.transform.output.squares }}",
        "label": "{{ default(steps.big.output, steps.small.output) }}",
        "waited": pause.output,
    },
    depends_on=[generate, transform, big, small, pause],
)

# --- demo-flaky: a step that fails twice, then succeeds after retries with backoff. ----------

flaky = Workflow(
    "demo-flaky",
    name="Demo flaky step",
    description="Fails its first two attempts and succeeds on the third, with exponential "
    'backoff; input {"fail": true} makes it fail every attempt.',
    input_schema={
        "type": "object",
        "properties": {"fail": {"type": "boolean", "default": False}},
        "additionalProperties": False,
    },
)
flaky.python(
    "unreliable",
    function=functions.flaky,
    args={"succeed_on_attempt": 3, "fail": "{{ default(input.fail, false) }}"},
    retries={
        "max_attempts": 4,
        "backoff": "exponential",
        "delay_seconds": 0.2,
        "max_delay_seconds": 2,
        "jitter": True,
    },
)

# --- demo-long: a script that runs for a while, printing progress; cancel it from the console.

LONG = """\
import os, time
seconds = int(os.environ.get("SECONDS_TO_RUN", "30"))
for i in range(1, seconds + 1):
    print(f"progress {i}/{seconds}", flush=True)
    time.sleep(1)
print('{"slept_seconds": %d}' % seconds)
"""

long = Workflow(
    "demo-long",
    name="Demo long script",
    description="A script that sleeps (30 s by default) printing progress: try cancelling it.",
    input_schema={
        "type": "object",
        "properties": {"seconds": {"type": "integer", "minimum": 1, "maximum": 600, "default": 30}},
        "additionalProperties": False,
    },
)
long.script(
    "sleep",
    source=LONG,
    env={"SECONDS_TO_RUN": "{{ default(input.seconds, 30) }}"},
    timeout=660,
)
