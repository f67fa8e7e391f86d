"""Checks every example in reprod's openapi.json against the schema it illustrates (JSON Schema 2020-12,
as OpenAPI 3.1 uses), so that a documented example cannot drift from the answer it shows.

Usage: check_examples.py OPENAPI.json
Prints one line per example checked and exits 1 on the first that does not validate, or when an operation's
success answer has no example.
"""

import json
import sys

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

with open(sys.argv[1]) as f:
    doc = json.load(f)
registry = Registry().with_resource("urn:openapi", Resource.from_contents(doc, default_specification=DRAFT202012))


def pointer(*parts):
    """A JSON pointer into the document, so that the schema's own `#/components/...` references resolve."""
    return "urn:openapi#" + "".join("/" + p.replace("~", "~0").replace("/", "~1") for p in parts)


checked = 0
missing = []
for path, ops in doc["paths"].items():
    for method, op in ops.items():
        if not isinstance(op, dict) or "responses" not in op:
            continue
        for code, response in op["responses"].items():
            for media, content in response.get("content", {}).items():
                if "example" not in content:
                    if code.startswith("2"):
                        missing.append(f"{method.upper()} {path} {code} {media}")
                    continue
                schema = {"$ref": pointer("paths", path, method, "responses", code, "content", media, "schema")}
                if "schema" not in content:
                    schema = {}
                errors = list(Draft202012Validator(schema, registry=registry).iter_errors(content["example"]))
                if errors:
                    print(f"{method.upper()} {path} {code} {media}: {errors[0].message} at {list(errors[0].absolute_path)}")
                    sys.exit(1)
                checked += 1
                print(f"ok {method.upper()} {path} {code} {media}")
if missing:
    print("no example: " + "; ".join(missing))
    sys.exit(1)
print(f"{checked} examples valid")
