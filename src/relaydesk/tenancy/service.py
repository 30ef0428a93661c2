from __future__ import annotations

import re
import secrets
import unicodedata
import uuid
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.errors import NotFound, ValidationFailed
from relaydesk.core.targets import UnsafeTarget, check_target
from relaydesk.tenancy.models import Workspace
from relaydesk.tenancy.schemas import SECRET_SETTINGS, WorkspaceSettings, WorkspaceSettingsPatch


# Local parts at the mail domain that belong to the deployment, not to a workspace (every
# workspace receives mail at <slug>@<mail domain>): RFC 2142's role mailboxes, the mail
# system's own (bounces come from mailer-daemon; certificate authorities validate a domain
# through admin@, hostmaster@ and the like), and the product's own names.
RESERVED_SLUGS = frozenset({
    # RFC 2142
    "info", "marketing", "sales", "support", "abuse", "noc", "security", "postmaster", "hostmaster",
    "usenet", "news", "webmaster", "www", "uucp", "ftp",
    # mail systems and domain validation
    "mailer-daemon", "mail-daemon", "mailerdaemon", "root", "admin", "administrator", "sysadmin",
    "ssladmin", "ssl-admin", "webadmin", "daemon", "nobody", "noreply", "no-reply", "donotreply",
    "do-not-reply", "bounce", "bounces", "dmarc", "listserv", "majordomo",
    # the product
    "relaydesk", "relay-desk",
})


# Of those, the addresses other mail systems and people write to about the deployment
# itself (RFC 2142's mail, abuse and security contacts, bounces, DMARC reports): refused at
# the listener even for a workspace that got such a slug before slugs were reserved. The
# rest are only never given out again: a workspace called "Support" from before keeps
# receiving its mail at support@.
OPERATOR_ADDRESSES = frozenset({
    "postmaster", "hostmaster", "abuse", "noc", "security", "mailer-daemon", "mail-daemon", "mailerdaemon",
    "root", "dmarc", "bounce", "bounces",
})


# Letters NFKD leaves whole (they are letters of their own, not a letter with a mark), which
# dropping as non-ASCII would cut from the slug: "Đơn Hàng" would be "on-hang".
_OWN_LETTERS = str.maketrans({"đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L",
                              "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th",
                              "Þ": "TH", "ħ": "h", "Ħ": "H", "ı": "i", "ŧ": "t", "Ŧ": "T"})


def slugify(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name.translate(_OWN_LETTERS)).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")
    return slug[:60] or "workspace"


# Hot statements, built once (docs/architecture.md, "Statements built once").
_NEXT_NUMBER = (update(Workspace).where(Workspace.id == bindparam("workspace_id"))
                .values(ticket_seq=Workspace.ticket_seq + 1).returning(Workspace.ticket_seq))


class WorkspaceService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def create(self, name: str, now: datetime) -> Workspace:
        slug = slugify(name)
        if slug in RESERVED_SLUGS or await self._slug_taken(slug):
            slug = f"{slug[:53]}-{secrets.token_hex(3)}"
        workspace = Workspace(name=name, slug=slug, created_at=now, settings={})
        self.session.add(workspace)
        await self.session.flush()
        return workspace

    async def _slug_taken(self, slug: str) -> bool:
        return (await self.session.scalar(select(Workspace.id).where(Workspace.slug == slug))) is not None

    async def get(self, workspace_id: uuid.UUID) -> Workspace:
        workspace = await self.session.get(Workspace, workspace_id)
        if workspace is None:
            raise NotFound("No such workspace.")
        return workspace

    async def find(self, slug_or_id: str) -> Workspace | None:
        """Sign-in names a workspace by slug (or id, for integrations)."""
        try:
            as_id = uuid.UUID(slug_or_id)
        except ValueError:
            return await self.session.scalar(select(Workspace).where(Workspace.slug == slug_or_id.lower()))
        return await self.session.get(Workspace, as_id)

    async def next_ticket_number(self, workspace_id: uuid.UUID) -> int:
        """Reserve the next human ticket number; the row lock serialises creators."""
        number = await self.session.scalar(_NEXT_NUMBER, {"workspace_id": workspace_id})
        if number is None:
            raise NotFound("No such workspace.")
        return number

    async def settings(self, workspace_id: uuid.UUID) -> WorkspaceSettings:
        """Read once per transaction: background jobs ask for it many times over."""
        cache: dict[uuid.UUID, WorkspaceSettings] = self.session.info.setdefault("workspace_settings", {})
        if workspace_id not in cache:
            workspace = await self.get(workspace_id)
            cache[workspace_id] = WorkspaceSettings.model_validate(workspace.settings or {})
        return cache[workspace_id]

    async def timezone(self, workspace_id: uuid.UUID, own: str | None = None) -> str:
        """The time zone a person's times are written in: their own (``own``), else the
        workspace's, else UTC."""
        return own or (await self.settings(workspace_id)).timezone or "UTC"

    async def update_settings(self, workspace_id: uuid.UUID, patch: WorkspaceSettingsPatch, *,
                              allow_private: bool = False) -> WorkspaceSettings:
        """``allow_private``: the operator lets the SMS provider be on a loopback or private address."""
        workspace = await self.get(workspace_id)
        changed = patch.model_dump(exclude_unset=True)
        if changed.get("sms_api_url"):
            try:
                await check_target(changed["sms_api_url"], allow_private=allow_private,
                                   hint="; use the provider's public URL, or ask the operator to set "
                                        "RELAYDESK_ALLOW_PRIVATE_TARGETS")
            except UnsafeTarget as exc:
                raise ValidationFailed(str(exc), field="sms_api_url") from None
        for field, value in changed.items():
            # Null turns an optional setting off; one that has a default value cannot be off.
            if value is None and WorkspaceSettings.model_fields[field].default is not None:
                raise ValidationFailed("This field cannot be emptied.", field=field)
        stored = {**(workspace.settings or {}), **changed}
        merged = WorkspaceSettings.model_validate(stored)
        # Store only what differs from the defaults, so a later default change reaches everyone;
        # secrets are excluded from dumps (they are never shown), so they are carried over by hand.
        workspace.settings = {**merged.model_dump(exclude_defaults=True),
                              **{k: stored[k] for k in SECRET_SETTINGS if stored.get(k)}}
        self.session.info.setdefault("workspace_settings", {})[workspace_id] = merged
        return merged

    async def rotate_chat_secret(self, workspace_id: uuid.UUID) -> str:
        workspace = await self.get(workspace_id)
        secret = "chs_" + secrets.token_urlsafe(32)
        workspace.settings = {**(workspace.settings or {}), "chat_identity_secret": secret}
        self.session.info.get("workspace_settings", {}).pop(workspace_id, None)
        return secret

    async def all(self) -> list[Workspace]:
        return list(await self.session.scalars(select(Workspace).order_by(Workspace.created_at)))

    async def first(self) -> Workspace | None:
        return await self.session.scalar(select(Workspace).order_by(Workspace.created_at).limit(1))
