#!/usr/bin/env python3
"""Validates captured HTTP exchanges with the Graph simulator against the Microsoft Graph v1.0
identity OpenAPI subset (shared/specs/msgraph/graph-v1.0-identity-subset.openapi.yaml) with
openapi-core.

Usage: validate_graph_openapi.py SPEC_YAML EXCHANGES.json

EXCHANGES.json is a list of objects:
  {"name", "method", "path", "query", "status", "headers": {...}, "body": "<text>",
   "expect": "valid" | "invalid"}

The subset is generated from Graph's CSDL (schemas exact, paths hand-written), served at
https://graph.microsoft.com/v1.0. Request paths are the simulator's (`/v1.0/...`); the
function-call paths of the spec are mapped: `/v1.0/users/delta` is `/users/delta()`.

Adjustments to the spec, each because the subset as written cannot tell valid from invalid:
  * Delta items are `oneOf: [user, DeltaRemoved]`. Every property of both is optional and
    `directoryObject` allows additional properties, so every item matches both branches and
    `oneOf` fails even for Graph's own examples. The tombstone is made to require `id` and
    `@removed` (with its `reason`), and the user branch to have no `@removed`; the `oneOf`
    then decides as Graph documents it.
  * A status an operation does not document (410 Gone on a delta link, which the delta
    documentation prescribes but the subset lists no response for) has its body checked
    against the `ODataError` envelope instead, and the result says so. Any other
    undocumented status fails.

An exchange with "expect": "invalid" is a negative control: it passes only when validation
fails. Prints one line per exchange and a closing "N passed, N failed" line; exits 1 on any
failure.
"""

import json
import sys
from pathlib import Path

import yaml
from jsonschema_path import SchemaPath
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse
from openapi_schema_validator import OAS30Validator

HOST = "https://graph.microsoft.com"
FUNCTION_PATHS = {"/users/delta": "/users/delta()", "/groups/delta": "/groups/delta()"}
ENVELOPE_ONLY = {410}


def adjust(spec: dict) -> None:
    schemas = spec["components"]["schemas"]
    removed = schemas.get("DeltaRemoved")
    if removed is not None:
        removed["required"] = ["id", "@removed"]
        removed["properties"]["@removed"]["required"] = ["reason"]
    for ops in spec["paths"].values():
        for op in ops.values():
            if not isinstance(op, dict):
                continue
            content = op.get("responses", {}).get("200", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema", {})
            items = schema.get("properties", {}).get("value", {}).get("items", {})
            one_of = items.get("oneOf")
            if not one_of:
                continue
            items["oneOf"] = [
                (
                    {"allOf": [branch, {"not": {"required": ["@removed"]}}]}
                    if branch.get("$ref", "").endswith("DeltaRemoved") is False
                    else branch
                )
                for branch in one_of
            ]


def spec_path(path: str) -> str:
    rest = path[len("/v1.0"):] if path.startswith("/v1.0") else path
    return FUNCTION_PATHS.get(rest, rest)


def documented(spec: dict, template_path: str, method: str):
    """The operation matching `template_path`: its template and responses by status."""
    p_parts = template_path.strip("/").split("/")
    best = None
    for template, ops in spec["paths"].items():
        t_parts = template.strip("/").split("/")
        if len(t_parts) != len(p_parts):
            continue
        if all(t.startswith("{") or t == p for t, p in zip(t_parts, p_parts)):
            op = ops.get(method.lower())
            if op is None:
                continue
            # Prefer the template with the most literal segments.
            score = sum(1 for t in t_parts if not t.startswith("{"))
            if best is None or score > best[0]:
                best = (score, template, op.get("responses", {}))
    return (best[1], best[2]) if best else (None, {})


def status_documented(responses: dict, status: int) -> bool:
    return str(status) in responses or f"{status // 100}XX" in responses or "default" in responses


def main() -> int:
    spec = yaml.safe_load(Path(sys.argv[1]).read_text(encoding="utf-8"))
    exchanges = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    adjust(spec)
    api = OpenAPI(SchemaPath.from_dict(spec))
    envelope = OAS30Validator(
        {
            "$ref": "#/components/schemas/microsoft.graph.ODataErrors.ODataError",
            "components": spec["components"],
        }
    )

    passed = failed = 0
    for ex in exchanges:
        name = ex.get("name", "?")
        method, path, status = ex["method"], ex["path"], int(ex["status"])
        expect = ex.get("expect", "valid")
        body = ex.get("body", "").encode("utf-8")
        headers = {k.lower(): v for k, v in ex.get("headers", {}).items()}
        content_type = headers.get("content-type", "application/json").split(";")[0].strip()
        problem = None
        how = ""
        try:
            tpath = spec_path(path)
            template, responses = documented(spec, tpath, method)
            if template is None:
                raise ValueError(f"{method} {tpath} is not an operation of the subset")
            if status_documented(responses, status):
                args = {}
                for pair in filter(None, (ex.get("query") or "").split("&")):
                    k, _, v = pair.partition("=")
                    args[k] = v
                request = MockRequest(HOST, method.lower(), "/v1.0" + tpath, args=args)
                response = MockResponse(
                    body, status_code=status, headers=headers, content_type=content_type
                )
                api.validate_response(request, response)
                how = f"{method} {template} {status}"
            elif status in ENVELOPE_ONLY:
                errors = sorted(envelope.iter_errors(json.loads(body)), key=str)
                if errors:
                    raise ValueError("; ".join(e.message for e in errors[:3]))
                how = f"ODataError envelope (status {status} undocumented for {template})"
            else:
                raise ValueError(f"status {status} is not documented for {method} {template}")
        except Exception as e:  # noqa: BLE001 - every failure is reported, not raised
            problem = f"{type(e).__name__}: {e}"
            cause = getattr(e, "__cause__", None)
            if cause is not None:
                problem += f" (cause: {type(cause).__name__}: {str(cause)[:400]})"
        ok = (problem is None) if expect == "valid" else (problem is not None)
        if ok:
            passed += 1
            if expect == "valid":
                print(f"ok   {name}: {how}")
            else:
                print(f"ok   {name}: rejected as expected: {problem[:300]}")
        else:
            failed += 1
            if expect == "valid":
                print(f"FAIL {name}: {method} {path} {status}: {problem}")
            else:
                print(f"FAIL {name}: negative control was accepted ({how})")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
