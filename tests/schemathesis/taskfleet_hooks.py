"""schemathesis hooks of the contract test (tests/tests/http_contract.rs).

A task's `run_at` may be at most 45 days ahead of now (the longest delay taskfleet
holds): a bound relative to the present, which no JSON Schema can state, so a
schema-valid `run_at` centuries ahead is rightly refused with 400. This hook moves
such a generated `run_at` to the present and leaves every other drawn value as it
was, so the check that schema-valid requests are accepted still covers the rest.

Two more rules the schema does not state yet (open in the issue notes): a task with
`after` takes no `delay_ms`/`run_at` (a waiting task runs when its parents completed),
and `?wait=` takes a duration such as `30s`. The hooks drop the first combination and
replace an unparsable wait with `1s`.
"""

import datetime
import re

import schemathesis

AHEAD = datetime.timedelta(days=44)


def _parse(text):
    # Python's parser refuses a leap second, which RFC 3339 (and the server) allow.
    try:
        return datetime.datetime.fromisoformat(re.sub(r":60(?=[.Z+-]|$)", ":59", text))
    except ValueError:
        return None


def _bring_near(task):
    if not isinstance(task, dict) or not isinstance(task.get("run_at"), str):
        return
    at = _parse(task["run_at"])
    now = datetime.datetime.now(datetime.timezone.utc)
    if at is not None and at.tzinfo is not None and at - now > AHEAD:
        task["run_at"] = now.isoformat()


def _no_delay_after_parents(task):
    if isinstance(task, dict) and task.get("after"):
        task.pop("delay_ms", None)
        task.pop("run_at", None)


WAIT = re.compile(r"^[0-9]{1,4}(ms|s|m)$")


@schemathesis.hook
def map_body(ctx, body):
    _bring_near(body)
    _no_delay_after_parents(body)
    if isinstance(body, dict) and isinstance(body.get("tasks"), list):
        for task in body["tasks"]:
            _bring_near(task)
            _no_delay_after_parents(task)
    return body


@schemathesis.hook
def map_query(ctx, query):
    if isinstance(query, dict) and "wait" in query:
        if not (isinstance(query["wait"], str) and WAIT.match(query["wait"])):
            query["wait"] = "1s"
    return query
