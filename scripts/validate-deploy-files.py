#!/usr/bin/env python3
"""Validate the deployment files against their JSON schemas.

Checks
  * render.yaml against the Render Blueprint schema;
  * every fromService / fromDatabase / fromGroup reference in render.yaml
    names a service / database / environment group defined in the file (and,
    for fromService, with the right type);
  * compose/docker-compose.yml against the Compose Specification schema;
  * every depends_on in the compose file names a defined service.

Usage:
    python3 scripts/validate-deploy-files.py [--schemas DIR]

DIR defaults to $SCHEMA_DIR, then ../shared/schemas next to the repository
(the layout used on this project's machines). Needs PyYAML and jsonschema
(pip install pyyaml jsonschema). Exits non-zero on the first failing file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import jsonschema
import yaml

REPO = Path(__file__).resolve().parent.parent


def load_schema(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def schema_errors(document: object, schema: dict) -> list[str]:
    # Pick the validator from the schema's own "$schema" (draft-07 for
    # compose, 2020-12 for Render); tolerate the missing "#" in
    # "https://json-schema.org/draft-07/schema".
    declared = str(schema.get("$schema", "")).rstrip("#")
    validators = {
        "http://json-schema.org/draft-07/schema": jsonschema.Draft7Validator,
        "https://json-schema.org/draft-07/schema": jsonschema.Draft7Validator,
        "https://json-schema.org/draft/2020-12/schema": jsonschema.Draft202012Validator,
    }
    cls = validators.get(declared) or jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema).iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def render_reference_errors(blueprint: dict) -> list[str]:
    services = {s["name"]: s.get("type") for s in blueprint.get("services", [])}
    databases = {d["name"] for d in blueprint.get("databases", [])}
    groups = {g["name"] for g in blueprint.get("envVarGroups", [])}
    problems = []
    for service in blueprint.get("services", []):
        for env in service.get("envVars", []):
            where = f"{service['name']}: {env.get('key', env.get('fromGroup'))}"
            if "fromService" in env:
                ref = env["fromService"]
                if ref["name"] not in services:
                    problems.append(f"{where}: fromService names unknown service {ref['name']!r}")
                elif services[ref["name"]] != ref["type"]:
                    problems.append(
                        f"{where}: fromService {ref['name']!r} has type "
                        f"{services[ref['name']]!r}, not {ref['type']!r}"
                    )
                if ("property" in ref) == ("envVarKey" in ref):
                    problems.append(f"{where}: fromService needs exactly one of property/envVarKey")
                if "envVarKey" in ref:
                    target = next(s for s in blueprint["services"] if s["name"] == ref["name"])
                    keys = {e.get("key") for e in target.get("envVars", [])}
                    if ref["envVarKey"] not in keys:
                        problems.append(
                            f"{where}: {ref['name']!r} defines no env var {ref['envVarKey']!r}"
                        )
            if "fromDatabase" in env and env["fromDatabase"]["name"] not in databases:
                problems.append(
                    f"{where}: fromDatabase names unknown database {env['fromDatabase']['name']!r}"
                )
            if "fromGroup" in env and env["fromGroup"] not in groups:
                problems.append(f"{where}: fromGroup names unknown group {env['fromGroup']!r}")
    names = [s["name"] for s in blueprint.get("services", [])] + sorted(databases)
    duplicates = {n for n in names if names.count(n) > 1}
    problems += [f"duplicate resource name {n!r}" for n in sorted(duplicates)]
    return problems


def compose_reference_errors(project: dict) -> list[str]:
    services = project.get("services", {})
    problems = []
    for name, service in services.items():
        deps = service.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            if dep not in services:
                problems.append(f"{name}: depends_on names unknown service {dep!r}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_dir = os.environ.get("SCHEMA_DIR") or str(REPO.parent / "shared" / "schemas")
    parser.add_argument("--schemas", default=default_dir, help="directory holding the schemas")
    args = parser.parse_args()
    schemas = Path(args.schemas)

    checks = [
        (
            REPO / "render.yaml",
            schemas / "render-blueprint.schema.json",
            render_reference_errors,
        ),
        (
            REPO / "compose" / "docker-compose.yml",
            schemas / "compose-spec.schema.json",
            compose_reference_errors,
        ),
    ]
    failed = 0
    for document_path, schema_path, reference_check in checks:
        with document_path.open(encoding="utf-8") as fh:
            document = yaml.safe_load(fh)
        problems = schema_errors(document, load_schema(schema_path))
        problems += reference_check(document)
        rel = document_path.relative_to(REPO)
        if problems:
            failed += 1
            print(f"FAIL {rel} ({schema_path.name})")
            for problem in problems:
                print(f"  - {problem}")
        else:
            print(f"ok   {rel} ({schema_path.name})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
