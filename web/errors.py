"""The one place errors become responses: the contract's JSON envelope under /api/v1/,
calm HTML pages elsewhere."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from recommender.errors import Conflict, GoodcryError, InvalidInput, NotFound, Unauthorised
from recommender.services.spotify import SpotifyError, SpotifyRateLimited, SpotifyRejected

DOMAIN_STATUS = {NotFound: 404, InvalidInput: 422, Conflict: 409, Unauthorised: 401}
HTTP_CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 409: "conflict", 413: "body_too_large",
    415: "unsupported_media_type", 422: "invalid", 429: "rate_limited",
    500: "internal_error", 503: "unavailable",
}


def wants_json() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str, headers=None) -> Response:
    if wants_json():
        resp = jsonify({"error": {"code": code, "message": message}})
    else:
        resp = Response(render_template("error.html", status=status, message=message),
                        mimetype="text/html")
    resp.status_code = status
    if headers:
        for name, value in dict(headers).items():
            if name.lower() in ("retry-after", "www-authenticate", "allow"):
                resp.headers[name] = value
    return resp


def _flatten(messages, prefix: str = "") -> list[str]:
    """webargs/marshmallow messages as 'field: problem' sentences."""
    out: list[str] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            if key in ("json", "query", "form", "_schema"):
                out += _flatten(value, prefix)
            else:
                out += _flatten(value, f"{prefix}{key}.")
    elif isinstance(messages, list):
        for value in messages:
            out += _flatten(value, prefix)
    else:
        field = prefix.rstrip(".")
        text = str(messages)
        out.append(f"{field}: {text}" if field else text)
    return out


def http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    if messages:
        message = "; ".join(_flatten(messages))
        if status == 400:
            message = "the body is not valid JSON"
    elif status == 413:
        message = "the request body is larger than 1 MiB"
    elif status == 404 and wants_json() and not getattr(exc, "description_set", False):
        message = exc.description if exc.description and "requested URL" not in (
            exc.description) else f"nothing at {request.path}"
    else:
        message = exc.description or exc.name
    code = getattr(exc, "error_code", None) or HTTP_CODES.get(status, "error")
    return error_response(status, code, message, data.get("headers") or exc.get_headers())


def domain_error(exc: GoodcryError) -> Response:
    status = next((s for cls, s in DOMAIN_STATUS.items() if isinstance(exc, cls)), 400)
    return error_response(status, exc.code, exc.message)


def spotify_error(exc: SpotifyError) -> Response:
    """A Spotify fault that the code calling it did not turn into a job state of its own."""
    if isinstance(exc, SpotifyRateLimited):
        return error_response(503, "spotify_rate_limited",
                              f"Spotify asks us to wait {exc.retry_after_s} s; try again then",
                              {"Retry-After": str(exc.retry_after_s)})
    if isinstance(exc, SpotifyRejected):
        return error_response(502, "spotify_refused",
                              f"Spotify refused the request (status {exc.status}); connecting "
                              "Spotify again may grant what is missing")
    return error_response(503, "spotify_unavailable",
                          "Spotify is not answering right now; nothing was lost, try again later")


def init_app(app: Flask) -> None:
    app.register_error_handler(SpotifyError, spotify_error)
    app.register_error_handler(GoodcryError, domain_error)
    app.register_error_handler(HTTPException, http_error)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "something went wrong on our side")
