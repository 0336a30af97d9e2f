#!/usr/bin/env python3
"""Query JSON-lines logs for scripts/integration-test.sh (the library's log, the origin's and
mitmproxy's request logs).

    jsonl.py count FILE COND...    print how many lines match every condition
    jsonl.py show  FILE COND...    print the matching lines
    jsonl.py field FILE KEY COND...  print KEY of each matching line

A condition is KEY=VALUE (equal, compared as text; `null` matches a missing or null value),
KEY~TEXT (contains TEXT) or KEY!=VALUE. KEY may name nested fields with dots:
rule.pattern, headers.authorization. A missing file has no lines. Python 3 stdlib only.
"""

import json
import re
import sys


def lookup(entry, key):
    value = entry
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def as_text(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def parse(condition):
    match = re.match(r"^([A-Za-z0-9_.-]+)(!=|=|~)(.*)$", condition, re.S)
    if not match:
        sys.exit(f"jsonl.py: bad condition {condition!r} (KEY=VALUE, KEY!=VALUE or KEY~TEXT)")
    return match.groups()


def matches(entry, conditions):
    for key, op, want in conditions:
        have = as_text(lookup(entry, key))
        if op == "=" and have != want:
            return False
        if op == "!=" and have == want:
            return False
        if op == "~" and want not in have:
            return False
    return True


def entries(path):
    try:
        with open(path) as f:
            lines = f.readlines()
    except FileNotFoundError:
        return
    for line in lines:
        line = line.strip()
        if line:
            yield json.loads(line)


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("count", "show", "field"):
        sys.exit(__doc__)
    command, path, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    key = None
    if command == "field":
        key, rest = rest[0], rest[1:]
    conditions = [parse(c) for c in rest]
    found = [e for e in entries(path) if matches(e, conditions)]
    if command == "count":
        print(len(found))
    elif command == "show":
        for e in found:
            print(json.dumps(e, sort_keys=True))
    else:
        for e in found:
            print(as_text(lookup(e, key)))


if __name__ == "__main__":
    main()
