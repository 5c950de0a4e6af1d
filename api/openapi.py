"""The OpenAPI 3.1 description of the API, served at /api/openapi.json.

The request body schemas here are the ones the views validate against (api.parsing), so the
document and the behaviour cannot drift apart for requests; tests validate real responses
against the response schemas.
"""

from __future__ import annotations

from typing import Any

RUN_STATUSES = ["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
STEP_STATUSES = [
    "pending",
    "running",
    "retrying",
    "succeeded",
    "failed",
    "skipped",
    "cancelled",
]
TRIGGERS = ["manual", "api", "webhook", "schedule", "workflow", "retry", "resume"]

NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
ANY_JSON: dict[str, Any] = {}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "additionalProperties": False,
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "additionalProperties": False,
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string", "description": "Stable, machine-readable."},
                    "message": {"type": "string", "description": "For people; may change."},
                    "fields": {
                        "type": "object",
                        "description": "Per field (JSON pointer-like path) error messages.",
                        "additionalProperties": {"type": "array", "items": {"type": "string"}},
                    },
                },
            }
        },
    },
    "Workflow": {
        "type": "object",
        "additionalProperties": False,
        "required": ["slug", "name", "description", "enabled", "version", "input_schema"],
        "properties": {
            "slug": {"type": "string"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "enabled": {"type": "boolean"},
            "version": {
                "type": ["integer", "null"],
                "description": "Number of the version new runs use; null when none is valid.",
            },
            "input_schema": {"type": ["object", "null"], "description": "JSON Schema of input."},
        },
    },
    "WorkflowList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["workflows"],
        "properties": {
            "workflows": {"type": "array", "items": {"$ref": "#/components/schemas/Workflow"}}
        },
    },
    "Step": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "step_id",
            "node_type",
            "status",
            "attempt",
            "output",
            "error",
            "started_at",
            "finished_at",
            "duration_ms",
        ],
        "properties": {
            "step_id": {"type": "string"},
            "node_type": {"type": "string"},
            "status": {"enum": STEP_STATUSES},
            "attempt": {"type": "integer", "minimum": 0},
            "output": ANY_JSON,
            "error": {"type": "string"},
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
            "duration_ms": {"type": ["integer", "null"], "minimum": 0},
        },
    },
    "Run": {
        "type": "object",
        "additionalProperties": False,
        "required": [
            "id",
            "workflow",
            "version",
            "status",
            "trigger",
            "input",
            "output",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "steps",
        ],
        "properties": {
            "id": {"type": "integer"},
            "workflow": {"type": "string", "description": "The workflow's slug."},
            "version": {"type": "integer", "description": "The version this run executes."},
            "status": {"enum": RUN_STATUSES},
            "trigger": {"enum": TRIGGERS},
            "input": {"type": "object"},
            "output": ANY_JSON,
            "error": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "started_at": NULLABLE_TIME,
            "finished_at": NULLABLE_TIME,
            "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}},
        },
    },
    "Event": {
        "type": "object",
        "additionalProperties": False,
        "required": ["seq", "type", "payload", "created_at"],
        "properties": {
            "seq": {"type": "integer", "minimum": 1},
            "type": {"type": "string"},
            "payload": ANY_JSON,
            "created_at": {"type": "string", "format": "date-time"},
        },
    },
    "EventList": {
        "type": "object",
        "additionalProperties": False,
        "required": ["events", "next_after", "has_more"],
        "properties": {
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}},
            "next_after": {
                "type": "integer",
                "description": "Pass as `after` to get the events that follow.",
            },
            "has_more": {"type": "boolean"},
        },
    },
    "StartRunRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "input": {"type": "object", "description": "Validated against the input schema."}
        },
    },
    "CancelRunRequest": {
        "type": "object",
        "additionalProperties": False,
        "properties": {},
    },
    "WebhookAccepted": {
        "type": "object",
        "additionalProperties": False,
        "required": ["run_id", "status"],
        "properties": {"run_id": {"type": "integer"}, "status": {"enum": RUN_STATUSES}},
    },
}


def _json(schema_name: str, description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
        },
    }


def _errors(*statuses: int) -> dict[str, Any]:
    descriptions = {
        400: "Malformed request: invalid JSON, unknown field, wrong type, bad parameter.",
        401: "Missing, unknown or revoked credentials, or a bad webhook signature.",
        403: "The token lacks the scope, or its user lacks the permission.",
        404: "No such workflow, run or webhook.",
        409: "The request conflicts with the current state.",
        413: "The body is larger than the limit.",
        415: "The body is not application/json.",
        422: "The input does not match the workflow's input schema (see `fields`).",
        429: "Rate limited; retry after the `Retry-After` seconds.",
    }
    return {str(status): _json("Error", descriptions[status]) for status in statuses}


RUN_ID = {
    "name": "run_id",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}
BEARER = [{"bearerToken": []}]


def _paths() -> dict[str, Any]:
    return {
        "/api/workflows": {
            "get": {
                "operationId": "listWorkflows",
                "summary": "List the workflows (scope read, permission view workflow).",
                "security": BEARER,
                "responses": {
                    "200": _json("WorkflowList", "The workflows."),
                    **_errors(400, 401, 403, 429),
                },
            }
        },
        "/api/workflows/{slug}/runs": {
            "post": {
                "operationId": "startRun",
                "summary": "Start a run (scope run, permission run workflow).",
                "security": BEARER,
                "parameters": [
                    {"name": "slug", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "Idempotency-Key",
                        "in": "header",
                        "required": False,
                        "description": "Printable ASCII, at most 128 characters. The same key "
                        "(for the same user and workflow) returns the same run with 200.",
                        "schema": {"type": "string", "maxLength": 128},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/StartRunRequest"}
                        }
                    },
                },
                "responses": {
                    "201": _json("Run", "The run was created and queued."),
                    "200": _json("Run", "The run created earlier with this Idempotency-Key."),
                    **_errors(400, 401, 403, 404, 409, 413, 415, 422, 429),
                },
            }
        },
        "/api/runs/{run_id}": {
            "get": {
                "operationId": "getRun",
                "summary": "Read a run with its steps (scope read, permission view run).",
                "security": BEARER,
                "parameters": [RUN_ID],
                "responses": {"200": _json("Run", "The run."), **_errors(400, 401, 403, 404, 429)},
            }
        },
        "/api/runs/{run_id}/events": {
            "get": {
                "operationId": "listRunEvents",
                "summary": "The run's events after a sequence number, oldest first.",
                "security": BEARER,
                "parameters": [
                    RUN_ID,
                    {
                        "name": "after",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 0, "default": 0},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": 1000,
                            "default": 100,
                        },
                    },
                ],
                "responses": {
                    "200": _json("EventList", "Events with seq > after."),
                    **_errors(400, 401, 403, 404, 429),
                },
            }
        },
        "/api/runs/{run_id}/cancel": {
            "post": {
                "operationId": "cancelRun",
                "summary": "Cancel a queued or running run (scope cancel, permission cancel run).",
                "security": BEARER,
                "parameters": [RUN_ID],
                "requestBody": {
                    "required": False,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/CancelRunRequest"}
                        }
                    },
                },
                "responses": {
                    "200": _json("Run", "Cancelled, or cancellation requested."),
                    **_errors(400, 401, 403, 404, 409, 413, 415, 429),
                },
            }
        },
        "/api/webhooks/{token}": {
            "post": {
                "operationId": "receiveWebhook",
                "summary": "Start a run of the trigger's workflow with the JSON body as input.",
                "description": "When the trigger has a signing secret, `X-Appstrate-Signature` "
                "must be `sha256=` + hex HMAC-SHA256 of `<timestamp>.<raw body>` under that "
                "secret, with `X-Appstrate-Timestamp` (Unix seconds) within five minutes. The "
                "same `X-Appstrate-Delivery` (or, without one, the same signed request) "
                "returns the run it started with 200.",
                "security": [],
                "parameters": [
                    {"name": "token", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "X-Appstrate-Delivery",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string", "maxLength": 128},
                    },
                    {
                        "name": "X-Appstrate-Timestamp",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                    {
                        "name": "X-Appstrate-Signature",
                        "in": "header",
                        "required": False,
                        "schema": {"type": "string"},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"type": "object"}}},
                },
                "responses": {
                    "201": _json("WebhookAccepted", "A run was started."),
                    "200": _json("WebhookAccepted", "This delivery already started a run."),
                    **_errors(400, 401, 404, 409, 413, 415, 422, 429),
                },
            }
        },
        "/api/openapi.json": {
            "get": {
                "operationId": "getOpenApi",
                "summary": "This document.",
                "security": [],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    **_errors(429),
                },
            }
        },
    }


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Appstrate API",
            "version": "1",
            "description": "Start, read and cancel workflow runs; receive webhooks. Errors "
            'always have the shape {"error": {"code", "message", "fields"}}.',
        },
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A per-user API token created in the console "
                    "(API tokens). Scopes: read, run, cancel.",
                }
            },
        },
        "security": BEARER,
        "paths": _paths(),
    }


DOCUMENT = build_document()
