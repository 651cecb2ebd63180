"""Request bodies as JSON, strictly: what the API's handlers get from ``request.get_json()``.

Quart reads bodies with :func:`json.loads`, which lets through ``NaN``, strings with lone
surrogates and, worse, raises ``RecursionError`` on deeply nested arrays, and Quart's
``get_json`` decodes the body as UTF-8 outside its own error handling: both became
500 answers. Here every such body is "not JSON" (what ``get_json(silent=True)`` answers with
``None``, and the handler with a 400), through :func:`transporter.protocol.codec.loads`, the
same strict reading as the agent channel's.
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
        return codec.loads(s)


class StrictRequest(TrioRequest):
    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        try:
            return await super().get_json(force=force, silent=silent, cache=cache)
        except UnicodeDecodeError:
            if silent:
                return None
            raise BadRequest("the body is not UTF-8 text") from None


def use_strict_json(app: QuartTrio) -> None:
    app.json = StrictJSONProvider(app)
    app.request_class = StrictRequest
