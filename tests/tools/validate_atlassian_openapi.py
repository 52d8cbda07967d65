#!/usr/bin/env python3
"""Validates captured HTTP exchanges against Atlassian's admin OpenAPI files with openapi-core.

Usage: validate_atlassian_openapi.py SPEC_DIR EXCHANGES.json

EXCHANGES.json is a list of objects:
  {"name", "method", "path", "query", "status", "headers": {...}, "body": "<text>",
   "expect": "valid" | "invalid"}

Each response is validated against the spec that owns its path:
  /admin/v1/...  cloud-admin-organization.v1-2023-08.openapi.json (official)
  /admin/v2/...  cloud-admin-organization-v2-directories.derived.openapi.yaml (derived)
  /users/...     cloud-admin-user-management.openapi.json (official)

The derived v2 file documents almost no error statuses; for a 4xx that it does not list for
the operation, the body is validated against the admin error envelopes the specs define
(ProxyError for 401/429, ApplicationErrors otherwise; both from the official v1 file) and the
result says so. Any other undocumented status is a failure. Likewise, an error status the
admin specs document without a body schema (common in both organization files) has its body
checked against those envelopes as well as against the operation.

One adjustment is made to the user-management file: its `Manageability.Rule.Simple`
discriminates `oneOf` on the boolean `allowed`, which OpenAPI 3.0 does not allow
(discriminator properties are strings) and which openapi-core therefore cannot resolve. The
discriminator is dropped; the `oneOf` still decides, as `Manageability.Allowed` requires
`allowed: true` and `Manageability.Unallowed` requires `allowed: false` and a `reason`.

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

HOST = "https://api.atlassian.com"

SPECS = {
    "v1": "cloud-admin-organization.v1-2023-08.openapi.json",
    "v2": "cloud-admin-organization-v2-directories.derived.openapi.yaml",
    "um": "cloud-admin-user-management.openapi.json",
}


def load(spec_dir: Path, name: str) -> dict:
    text = (spec_dir / name).read_text(encoding="utf-8")
    return yaml.safe_load(text) if name.endswith((".yaml", ".yml")) else json.loads(text)


def drop_boolean_discriminators(spec: dict) -> None:
    for schema in spec.get("components", {}).get("schemas", {}).values():
        disc = schema.get("discriminator") if isinstance(schema, dict) else None
        if disc and disc.get("propertyName") == "allowed":
            del schema["discriminator"]


def which(path: str) -> str:
    if path.startswith("/admin/v1/"):
        return "v1"
    if path.startswith("/admin/v2/"):
        return "v2"
    if path.startswith("/users/"):
        return "um"
    raise ValueError(f"no spec owns {path}")


def envelope_validator(v1: dict, schema_name: str) -> OAS30Validator:
    """A validator for one v1 component schema, with the v1 components for $refs."""
    schema = {"$ref": f"#/components/schemas/{schema_name}", "components": v1["components"]}
    return OAS30Validator(schema)


def documented_statuses(raw: dict, path: str, method: str, spec_key: str):
    """The operation matching `path`: its template and its responses by status."""
    prefix = "/admin" if spec_key == "v1" else ""
    for template, ops in raw["paths"].items():
        full = prefix + template
        t_parts = full.strip("/").split("/")
        p_parts = path.strip("/").split("/")
        if len(t_parts) != len(p_parts):
            continue
        if all(t.startswith("{") or t == p for t, p in zip(t_parts, p_parts)):
            op = ops.get(method.lower())
            if op is not None:
                return full, op.get("responses", {})
    return None, {}


def check_envelope(body: bytes, status: int, proxy, app_errors) -> None:
    """ProxyError for 401/429, a non-empty ApplicationErrors list otherwise."""
    data = json.loads(body)
    validator = proxy if status in (401, 429) else app_errors
    errors = sorted(validator.iter_errors(data), key=str)
    if errors:
        raise ValueError("; ".join(e.message for e in errors[:3]))
    if status not in (401, 429) and not data.get("errors"):
        raise ValueError("error envelope has no errors[]")


def main() -> int:
    spec_dir = Path(sys.argv[1])
    exchanges = json.loads(Path(sys.argv[2]).read_text(encoding="utf-8"))
    raw = {k: load(spec_dir, v) for k, v in SPECS.items()}
    drop_boolean_discriminators(raw["um"])
    apis = {k: OpenAPI(SchemaPath.from_dict(v)) for k, v in raw.items()}
    proxy = envelope_validator(raw["v1"], "ProxyError")
    app_errors = envelope_validator(raw["v1"], "Errors.ApplicationErrors.Model")

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
            key = which(path)
            template, statuses = documented_statuses(raw[key], path, method, key)
            if template is None:
                raise ValueError(f"{method} {path} is not an operation of the {key} spec")
            if str(status) in statuses or "default" in statuses:
                args = {}
                for pair in filter(None, (ex.get("query") or "").split("&")):
                    k, _, v = pair.partition("=")
                    args[k] = v
                request = MockRequest(HOST, method.lower(), path, args=args)
                response = MockResponse(
                    body, status_code=status, headers=headers, content_type=content_type
                )
                apis[key].validate_response(request, response)
                how = f"{SPECS[key]} {method} {template} {status}"
                documented = statuses.get(str(status), statuses.get("default", {}))
                if status >= 400 and key != "um" and "content" not in documented:
                    check_envelope(body, status, proxy, app_errors)
                    how += " (+ error envelope: no body schema documented)"
            elif key == "v2" and 400 <= status < 500:
                check_envelope(body, status, proxy, app_errors)
                what = "ProxyError" if status in (401, 429) else "ApplicationErrors"
                how = f"{what} envelope (status {status} undocumented for v2 {template})"
            else:
                raise ValueError(
                    f"status {status} is not documented for {method} {template} in {SPECS[key]}"
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
