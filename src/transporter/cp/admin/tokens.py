"""``transporter token create|list|revoke``: API tokens, managed on the control plane's host.

These commands open the control plane's store directly (whoever may do that holds its keys
anyway), so they work while control planes run: those read a token from the store at every
request, and a revocation holds at once. Each change is written to the audit log, its actor
``cli:<user>``.

What is printed: ``create`` writes the token itself, and nothing else, on stdout (for
``TOKEN=$(transporter token create …)``) and what it is on stderr; it is never shown again.
``list`` writes its table (or JSON) on stdout; ``revoke`` says what it did on stderr.
"""

from __future__ import annotations

import getpass
import os
import sys
import time
from collections.abc import Awaitable, Callable

import trio

from transporter import output
from transporter.config.admin import TokenCreateConfig, TokenListConfig, TokenRevokeConfig
from transporter.config.store_spec import StoreSpec
from transporter.protocol import codec
from transporter.protocol.model import AuditEntry
from transporter.security.tokens import Role, TokenRecord, new_token
from transporter.store import Store, StoreError, TokenConflict, open_store

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Settings = TokenCreateConfig | TokenListConfig | TokenRevokeConfig


def main(settings: Settings) -> int:
    if isinstance(settings, TokenCreateConfig):
        return _run("create", settings.store, lambda store: create(store, settings), create=True)
    if isinstance(settings, TokenListConfig):
        return _run("list", settings.store, lambda store: show(store, settings))
    return _run("revoke", settings.store, lambda store: revoke(store, settings.token_id))


def _run(
    action: str,
    spec: StoreSpec,
    work: Callable[[Store], Awaitable[int]],
    *,
    create: bool = False,
) -> int:
    prog = f"transporter token {action}"
    if not create and spec.path is not None and not spec.path.is_file():
        # Opening would create an empty store there, which has no tokens, uselessly.
        print(f"{prog}: error: no store at {spec.path} (see --help)", file=sys.stderr)
        return EXIT_USAGE

    async def run() -> int:
        async with open_store(spec) as store:
            return await work(store)

    try:
        return trio.run(run)
    except StoreError as exc:
        print(f"{prog}: cannot use the store {spec.display}: {exc}", file=sys.stderr)
        return EXIT_FAILED


def actor() -> str:
    """``cli:<user>``: who ran the command, for the audit log."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        user = f"uid {os.getuid()}"
    return f"cli:{user}"


async def create(store: Store, settings: TokenCreateConfig) -> int:
    by = actor()
    for _ in range(3):  # ids are random: a taken one is all but impossible, and a new one does
        now = time.time()
        text, record = new_token(
            name=settings.name,
            role=Role(settings.role),
            agents=settings.agents,
            now=now,
            created_by=by,
        )
        audit = AuditEntry(at=now, action="token.created", actor=by, detail=record.describe())
        try:
            await store.create_token(record, audit)
        except TokenConflict:
            continue
        print(text, flush=True)
        print(
            f"created {record.describe()}.\n"
            "This is the only time the token is shown: keep it now. Producers send it as"
            " 'Authorization: Bearer <token>' (transporter produce: TRANSPORTER_TOKEN or"
            f" --token). Revoke it with: transporter token revoke {record.id}"
            f" {settings.store.flags}",
            file=sys.stderr,
        )
        return EXIT_OK
    raise StoreError("three token ids in a row were taken")


def _when(at: float | None) -> str:
    return "-" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def _shown(record: TokenRecord) -> dict[str, object]:
    """A token's record as ``list`` shows it: without its hash."""
    data: dict[str, object] = codec.unstructure(record)
    del data["hash"]
    return data


async def show(store: Store, settings: TokenListConfig) -> int:
    records = await store.list_tokens()
    if settings.output in ("json", "yaml"):
        sys.stdout.write(output.structured([_shown(r) for r in records], settings.output))
        return EXIT_OK
    if settings.output == "name":
        sys.stdout.write(output.names("token", [record.id for record in records]))
        return EXIT_OK
    headers = ("ID", "NAME", "ROLE", "AGENTS", "CREATED (UTC)", "REVOKED (UTC)", "CREATED BY")
    rows = [
        (
            record.id,
            record.name,
            record.role.value,
            ",".join(record.agents) if record.role is not Role.ADMIN else "(all)",
            _when(record.created_at),
            _when(record.revoked_at),
            record.created_by or "-",
        )
        for record in records
    ]
    sys.stdout.write(output.columns(rows, headers=None if settings.no_headers else headers))
    return EXIT_OK


async def revoke(store: Store, token_id: str) -> int:
    prog = "transporter token revoke"
    record = await store.get_token(token_id)
    if record is None:
        print(f"{prog}: no token {token_id} (see `transporter token list`)", file=sys.stderr)
        return EXIT_FAILED
    now = time.time()
    audit = AuditEntry(at=now, action="token.revoked", actor=actor(), detail=record.describe())
    result = await store.revoke_token(token_id, now, audit)
    if result is None:  # pragma: no cover - tokens are never deleted
        print(f"{prog}: no token {token_id}", file=sys.stderr)
        return EXIT_FAILED
    stored, changed = result
    if not changed:
        print(
            f"{stored.describe()} was revoked already, at {_when(stored.revoked_at)} UTC",
            file=sys.stderr,
        )
        return EXIT_OK
    print(
        f"revoked {stored.describe()}: every control plane on this store refuses it from now on",
        file=sys.stderr,
    )
    return EXIT_OK
