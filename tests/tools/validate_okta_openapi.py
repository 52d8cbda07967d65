#!/usr/bin/env python3
"""Validates captured HTTP exchanges against Okta's management OpenAPI file with openapi-core.

Usage: validate_okta_openapi.py SPEC.yaml EXCHANGES.json

SPEC.yaml is shared/specs/okta/okta-users-groups-logs-hooks.yaml (a trimmed copy of Okta's
management-oneOfInheritance.yaml with the users, groups, System Log and hook paths).

EXCHANGES.json is a list of objects:
  {"name", "method", "path", "query", "status", "headers": {...}, "body": "<text>",
   "expect": "valid" | "invalid"}

Each response is validated with openapi-core against the operation the path and method
name. Okta documents few error statuses per operation (no 401 anywhere, for instance); an
error status the operation does not document is validated against the spec's `Error` schema
instead, and the result says so. Every error body (documented or not) must moreover carry all
five fields Okta always sends (errorCode, errorSummary, errorLink, errorId, errorCauses): the
spec's `Error` schema marks none of them required, so this is checked separately. A 403 with
an empty body is accepted only when it carries `www-authenticate: ... insufficient_scope`
(Okta's answer to a token without the scope).

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

HOST = "https://acme.okta.com"
ERROR_FIELDS = ("errorCode", "errorSummary", "errorLink", "errorId", "errorCauses")


def operation(raw: dict, path: str, method: str):
    """The template and responses of the operation matching `path`."""
    p_parts = path.strip("/").split("/")
    best = None
    for template, ops in raw["paths"].items():
        t_parts = template.strip("/").split("/")
        if len(t_parts) != len(p_parts):
            continue
        if all(t.startswith("{") or t == p for t, p in zip(t_parts, p_parts)):
            op = ops.get(method.lower())
            if op is None:
                continue
            literal = sum(1 for t in t_parts if not t.startswith("{"))
            if best is None or literal > best[0]:
                best = (literal, template, op.get("responses", {}))
    return (best[1], best[2]) if best else (None, {})


def check_error_fields(body: bytes) -> None:
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("error body is not an object")
    missing = [f for f in ERROR_FIELDS if f not in data]
    if missing:
        raise ValueError(f"error body lacks {', '.join(missing)}")
    if not isinstance(data["errorCauses"], list):
        raise ValueError("errorCauses is not a list")


def main() -> int:
    spec_path = Path(sys.argv[1])
    exchanges = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    raw = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
    api = OpenAPI(SchemaPath.from_dict(raw))
    error_schema = {"$ref": "#/components/schemas/Error", "components": raw["components"]}
    error_validator = OAS30Validator(error_schema)

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
            template, responses = operation(raw, path, method)
            if template is None:
                raise ValueError(f"{method} {path} is not an operation of {spec_path.name}")
            if status == 403 and not body.strip():
                www = headers.get("www-authenticate", "")
                if "insufficient_scope" not in www:
                    raise ValueError("empty 403 without www-authenticate insufficient_scope")
                how = f"{method} {template} 403 insufficient_scope (empty body)"
            elif str(status) in responses or "default" in responses:
                args = {}
                for pair in filter(None, (ex.get("query") or "").split("&")):
                    k, _, v = pair.partition("=")
                    args[k] = v
                request = MockRequest(HOST, method.lower(), path, args=args)
                response = MockResponse(
                    body, status_code=status, headers=headers, content_type=content_type
                )
                api.validate_response(request, response)
                how = f"{spec_path.name} {method} {template} {status}"
                if status >= 400:
                    check_error_fields(body)
                    how += " (+ all five Okta error fields)"
            elif status >= 400:
                data = json.loads(body)
                errors = sorted(error_validator.iter_errors(data), key=str)
                if errors:
                    raise ValueError("; ".join(e.message for e in errors[:3]))
                check_error_fields(body)
                how = f"Error schema (status {status} undocumented for {method} {template})"
            else:
                raise ValueError(
                    f"status {status} is not documented for {method} {template}"
                )
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
