"""The one error shape of the API and webhooks: {"error": {"code", "message", "fields"}}."""

from __future__ import annotations

from django.http import JsonResponse


class ApiError(Exception):
    """Raised anywhere under a view to answer with a JSON error; nothing has been changed."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: dict[str, list[str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or {}
        self.headers = headers or {}

    def response(self) -> JsonResponse:
        return error_response(
            self.status, self.code, self.message, fields=self.fields, headers=self.headers
        )


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    fields: dict[str, list[str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JsonResponse:
    body = {"error": {"code": code, "message": message, "fields": fields or {}}}
    return JsonResponse(body, status=status, headers=headers)


def not_found(what: str = "Not found.") -> ApiError:
    return ApiError(404, "not_found", what)
