"""A WSGI app that answers with the process id of the worker that served it, after a pause
when asked (``?sleep=SECONDS``): tests of how `goodcry serve`'s workers share connections
serve it with the same gunicorn settings instead of the product's app, whose answers do not
say which worker made them."""

from __future__ import annotations

import os
import time
from urllib.parse import parse_qs


def app(environ, start_response):
    pause = parse_qs(environ.get("QUERY_STRING", "")).get("sleep", ["0"])[0]
    if float(pause) > 0:
        time.sleep(float(pause))
    body = str(os.getpid()).encode()
    start_response("200 OK", [("Content-Type", "text/plain"),
                              ("Content-Length", str(len(body)))])
    return [body]
