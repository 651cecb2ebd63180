"""Request bodies as JSON, strictly: what the API's handlers get from ``request.get_json()``.

Quart reads bodies with :func:`json.loads`, which lets through ``NaN``, strings with lone
surrogates, objects with a key twice and, worse, raises ``RecursionError`` on deeply nested
arrays, and Quart's ``get_json`` decodes the body as UTF-8 outside its own error handling: both
became 500 answers. Here every such body is "not JSON" (what ``get_json(silent=True)`` answers
with ``None``, and the handler with a 400 saying why: :attr:`StrictRequest.json_problem`),
through :func:`transporter.protocol.codec.loads`, the same strict reading as the agent
channel's, with duplicate keys refused too (a proxy in front may have read the other one).
"""

from __future__ import annotations

from typing import Any

from quart.json.provider import DefaultJSONProvider
from quart_trio import QuartTrio
from quart_trio.wrappers import TrioRequest
from werkzeug.exceptions import BadRequest

from transporter.protocol import codec


class StrictJSONProvider(DefaultJSONProvider):
    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return codec.loads(s, unique_keys=True)


class StrictRequest(TrioRequest):
    json_problem: str = "not JSON"
    """Why the body was not taken as JSON (for the 400 answer)."""

    def on_json_loading_failed(self, error: Exception | None) -> Any:
        self.json_problem = f"not JSON: {error}" if error is not None else "not JSON"
        raise BadRequest(f"the body is {self.json_problem}")

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return await super().get_json(force=force, silent=False, cache=cache)
        except UnicodeDecodeError:
            self.json_problem = "not UTF-8 text"
            if silent:
                return None
            raise BadRequest("the body is not UTF-8 text") from None
        except BadRequest:
            if silent:
                return None
            raise


def use_strict_json(app: QuartTrio) -> None:
    app.json = StrictJSONProvider(app)
    app.request_class = StrictRequest
