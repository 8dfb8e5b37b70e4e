"""The API's OpenAPI 3.1 document (`GET /api/v1/openapi.json`): the contract clients and the
tests rely on."""

from __future__ import annotations

from typing import Any

from monitor import __version__


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_PROBLEM = {"description": "An error (RFC 9457)",
            "content": {"application/problem+json": {"schema": _ref("Problem")}}}
_ERRORS = {"401": _PROBLEM, "403": _PROBLEM, "503": _PROBLEM}
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_LIMIT = {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}}

_SCHEMAS: dict[str, Any] = {
    "Problem": {"type": "object", "required": ["type", "title", "status"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"},
        "status": {"type": "integer"}, "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}}}},
    "Matcher": {"type": "object", "required": ["name", "value"], "properties": {
        "name": {"enum": ["rule", "feed", "channel"]},
        "value": {"type": "string", "description": "a glob (`*`, `?`, `[…]`), or a regular "
                  "expression matching the whole value with isRegex"},
        "isRegex": {"type": "boolean", "default": False}}},
    "NewSilence": {"type": "object", "required": ["matchers", "endsAt", "createdBy",
                                                  "comment"], "properties": {
        "matchers": {"type": "array", "minItems": 1, "items": _ref("Matcher")},
        "startsAt": {"type": "string", "format": "date-time"},
        "endsAt": {"type": "string", "format": "date-time"},
        "createdBy": {"type": "string"}, "comment": {"type": "string"}}},
    "Silence": {"allOf": [_ref("NewSilence"), {"type": "object", "properties": {
        "id": {"type": "string"}, "createdAt": {"type": "string", "format": "date-time"},
        "expiredBy": {"type": ["string", "null"]},
        "status": {"type": "object", "properties": {
            "state": {"enum": ["pending", "active", "expired"]}}}}}]},
    "Alert": {"type": "object", "required": ["id", "rule", "feed", "entry", "event",
                                             "detected_at", "state"], "properties": {
        "id": {"type": "string"}, "rule": {"type": "string"}, "feed": {"type": "string"},
        "entry": {"type": "object", "properties": {
            "id": {"type": "string"}, "title": {"type": "string"},
            "url": {"type": ["string", "null"]}}},
        "event": {"enum": ["new", "updated"]},
        "detected_at": {"type": "string", "format": "date-time"},
        "queued_at": {"type": "string", "format": "date-time"},
        "state": {"type": "object", "description": "channel -> delivery state",
                  "additionalProperties": {"type": "string"}},
        "deliveries": {"type": "object", "description": "channel -> delivery id",
                       "additionalProperties": {"type": "string"}},
        "silenced_by": {"type": ["string", "null"]},
        "acknowledged": {"type": ["object", "null"]},
        "terms": {"type": "array", "items": {"type": "string"}}}},
    "Delivery": {"type": "object", "properties": {
        "id": {"type": "string"}, "kind": {"enum": ["alert", "notice", "digest"]},
        "channel": {"type": "string"}, "state": {"type": "string"},
        "attempts": {"type": "integer"}, "rule": {"type": ["string", "null"]},
        "feed": {"type": "string"}, "title": {"type": "string"},
        "last_error": {"type": ["string", "null"]},
        "silenced_by": {"type": ["string", "null"]}}},
    "TestRule": {"type": "object", "required": ["rule"], "properties": {
        "rule": {"type": "string"}, "text": {"type": "string"},
        "title": {"type": "string"}, "url": {"type": "string"}}},
    "TestResult": {"type": "object", "required": ["rule", "matched"], "properties": {
        "rule": {"type": "string"}, "matched": {"type": "boolean"},
        "explanation": {"type": "array", "items": {"type": "string"}},
        "entries": {"type": "array", "items": {"type": "object"}}}},
}


def document(server: str) -> dict[str, Any]:
    """The OpenAPI document, with `server` (the console's public URL) as its server."""
    paths: dict[str, Any] = {
        "/feeds": {"get": {"summary": "Feeds and their health", "responses": {
            "200": _json({"type": "object"}), **_ERRORS}}},
        "/feeds/{name}/entries": {"get": {
            "summary": "A feed's most recent entries and the rules they match",
            "parameters": [{"name": "name", "in": "path", "required": True,
                            "schema": {"type": "string"}}, _LIMIT],
            "responses": {"200": _json({"type": "object"}), "404": _PROBLEM, **_ERRORS}}},
        "/alerts": {"get": {"summary": "Recent alerts, newest first", "parameters": [_LIMIT],
                            "responses": {"200": _json({"type": "object", "properties": {
                                "alerts": {"type": "array", "items": _ref("Alert")}}}),
                                **_ERRORS}}},
        "/alerts/{id}": {"get": {"summary": "One alert", "parameters": _ID, "responses": {
            "200": _json(_ref("Alert")), "404": _PROBLEM, **_ERRORS}}},
        "/alerts/{id}/ack": {"post": {
            "summary": "Acknowledge an alert", "parameters": _ID,
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "properties": {"comment": {"type": "string"}}}}}},
            "responses": {"200": _json({"type": "object"}), "404": _PROBLEM, **_ERRORS}}},
        "/deliveries": {"get": {
            "summary": "Recent deliveries; `state=dead` for the dead letters",
            "parameters": [{"name": "state", "in": "query", "schema": {"enum": [
                "queued", "sending", "retrying", "held", "delivered", "dead", "silenced",
                "digested"]}}, _LIMIT],
            "responses": {"200": _json({"type": "object", "properties": {
                "deliveries": {"type": "array", "items": _ref("Delivery")}}}), **_ERRORS}}},
        "/deliveries/{id}/retry": {"post": {
            "summary": "Queue a dead delivery again", "parameters": _ID,
            "responses": {"202": _json({"type": "object"}, "Queued"), "404": _PROBLEM,
                          "409": _PROBLEM, **_ERRORS}}},
        "/silences": {
            "get": {"summary": "Silences (active, pending, recently expired)", "responses": {
                "200": _json({"type": "array", "items": _ref("Silence")}), **_ERRORS}},
            "post": {"summary": "Create a silence",
                     "requestBody": {"required": True, "content": {"application/json": {
                         "schema": _ref("NewSilence")}}},
                     "responses": {"201": _json({"type": "object", "properties": {
                         "id": {"type": "string"}}}, "Created"), "400": _PROBLEM,
                         **_ERRORS}}},
        "/silences/{id}": {
            "get": {"summary": "One silence", "parameters": _ID, "responses": {
                "200": _json(_ref("Silence")), "404": _PROBLEM, **_ERRORS}},
            "delete": {"summary": "Expire a silence now", "parameters": _ID, "responses": {
                "200": _json(_ref("Silence")), "404": _PROBLEM, **_ERRORS}}},
        "/test-rule": {"post": {
            "summary": "Explain a rule on a text, or on each entry of a URL",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _ref("TestRule")}}},
            "responses": {"200": _json(_ref("TestResult")), "400": _PROBLEM,
                          "404": _PROBLEM, "422": _PROBLEM, **_ERRORS}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "livewatch console API", "version": __version__,
                 "description": "Runtime state of livewatch (silences, acknowledgements, "
                 "retries) and read access to feeds, alerts and deliveries. Feeds, rules and "
                 "channels are configured in YAML."},
        "servers": [{"url": f"{server}/api/v1"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": _SCHEMAS},
        "paths": paths,
    }
