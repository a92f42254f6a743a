"""Checks TOML files against a JSON Schema, as an editor's TOML language server would; run by
tests/schema.rs.

Usage: check_schema.py SCHEMA.json FILE.toml...
Prints one JSON object: for each file, the list of problems (path and message); exits 0.
"""

import json
import sys
import tomllib

import jsonschema

schema = json.load(open(sys.argv[1]))
jsonschema.Draft7Validator.check_schema(schema)
validator = jsonschema.Draft7Validator(schema)
report = {}
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        document = tomllib.load(f)
    report[path] = [
        {"path": "/".join(str(p) for p in error.absolute_path), "message": error.message}
        for error in validator.iter_errors(document)
    ]
print(json.dumps(report))
