"""``transporter audit verify``: check the control plane's audit log, on its host."""

from __future__ import annotations

import sys

from transporter.cli.commands import EXIT_USAGE, Parser, Subcommands, Values, add_command, add_group
from transporter.cli.shared import STORE_FLAGS, store_or_default
from transporter.config.admin import AuditVerifyConfig

VERIFY_FLAGS = STORE_FLAGS


def add(commands: Subcommands) -> None:
    actions = add_group(
        commands,
        "audit",
        "check the control plane's audit log",
        examples=("transporter audit verify --data-dir /var/lib/transporter",),
    )
    add_command(
        actions,
        "verify",
        VERIFY_FLAGS,
        verify_settings,
        "check the audit log's hash chain; exit 0 intact, 1 a record does not match",
        "Walk the control plane's audit log oldest first and recompute its hash chain. Prints"
        " the number of records and the last one's hash when every record matches (exit 0);"
        " else the first record that does not, and why (exit 1).",
        examples=(
            "transporter audit verify --data-dir /var/lib/transporter",
            "TRANSPORTER_STORE=redis://redis:6379/0 transporter audit verify",
        ),
    )


def verify_settings(values: Values, parser: Parser) -> AuditVerifyConfig:
    return AuditVerifyConfig(store=store_or_default(values, parser))


def verify(settings: AuditVerifyConfig) -> int:
    """``transporter audit verify``: 0 when the chain is intact, 1 when a record does not match
    or the store cannot be read, 2 when there is no SQLite store where it was said to be."""
    import trio  # here, not at the top: see transporter.cli's docstring

    from transporter.store import StoreError, VerifyResult, open_store, verify_audit

    prog = "transporter audit verify"
    spec = settings.store
    if spec.path is not None and not spec.path.is_file():
        # Opening would create an empty store there, which would verify, uselessly.
        print(f"{prog}: error: no store at {spec.path} (see --help)", file=sys.stderr)
        return EXIT_USAGE

    async def walk() -> VerifyResult:
        async with open_store(spec) as store:
            return await verify_audit(store)

    try:
        result = trio.run(walk)
    except StoreError as exc:
        print(f"{prog}: cannot read the store {spec.display}: {exc}", file=sys.stderr)
        return 1
    print(result.describe())
    return 0 if result.intact else 1
