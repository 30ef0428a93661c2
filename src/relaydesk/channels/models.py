from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from relaydesk.core.db import Base, IdMixin, WorkspaceScoped


class Mailbox(IdMixin, WorkspaceScoped, Base):
    """A support address of a workspace, optionally polled over IMAP.

    Mail to ``<workspace slug>@<mail domain>`` reaches the built-in SMTP listener with no
    set-up at all; a mailbox adds the workspace's own address (forwarded to the listener
    or fetched from its IMAP server).

    Nothing is sent from the address until the workspace has shown that it receives the
    address's mail (``verified_at``). Until then it is only a claim: other workspaces may
    claim the same address, and the first to verify it keeps it (the others' claims go)."""

    __tablename__ = "mailboxes"
    __table_args__ = (
        # Address first: it is also how mail arriving for an address finds its workspace.
        UniqueConstraint("address", "workspace_id"),
        Index("ix_mailboxes_verified_address", "address", unique=True,
              sqlite_where=text("verified_at IS NOT NULL"), postgresql_where=text("verified_at IS NOT NULL")),
    )

    address: Mapped[str] = mapped_column(String(320))
    imap_host: Mapped[str | None] = mapped_column(String(255))
    imap_port: Mapped[int | None]
    imap_tls: Mapped[bool] = mapped_column(default=True)
    imap_username: Mapped[str | None] = mapped_column(String(320))
    imap_password: Mapped[str | None] = mapped_column(String(500))  # never shown back by the API
    imap_folder: Mapped[str] = mapped_column(String(200), default="INBOX")
    # Where polling has got to in the folder: the folder's UIDVALIDITY and the highest UID
    # taken. Each poll takes every message above it, read or not (someone may have opened
    # one in their mail client first); a new UIDVALIDITY starts again from the unread ones.
    imap_uid_validity: Mapped[int | None] = mapped_column(BigInteger)
    imap_last_uid: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(default=True)
    last_polled_at: Mapped[datetime | None]  # the latest poll, whether it worked or not
    last_error: Mapped[str | None] = mapped_column(Text)
    # Polls that failed in a row, and the earliest the next one may be: a failing mailbox
    # is tried less and less often (``service.poll_backoff``), as a provider locks an
    # account whose wrong password is tried every minute. None: the next round polls it.
    poll_failures: Mapped[int] = mapped_column(default=0)
    next_poll_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    verified_at: Mapped[datetime | None]
    # The latest verification email's code, hashed (SHA-256, hex): the code is as good as
    # the address, so the database never holds it. None once verified.
    verification_code_hash: Mapped[str | None] = mapped_column(String(64))
    # When that email was last asked for (creating the mailbox, or an admin): at most one a minute.
    verification_sent_at: Mapped[datetime | None]

    @property
    def verified(self) -> bool:
        return self.verified_at is not None


class InboundEmail(IdMixin, WorkspaceScoped, Base):
    """Every message that arrives, stored raw before anything reads it.

    status: received (waiting to be processed) | processed (it became a ticket or a
    reply) | ignored (an auto-reply, a bounce, our own mail coming back) | quarantined
    (could not be parsed or threaded; an admin retries or discards it) | spam (a filter
    before us said so; an admin releases or discards it) | released (an admin said it is
    not spam: waiting to be processed without that verdict) | discarded."""

    __tablename__ = "inbound_emails"
    __table_args__ = (
        Index(None, "workspace_id", "status", "received_at"),
        Index(None, "workspace_id", "header_message_id"),
        Index(None, "workspace_id", "ticket_id", "received_at"),
    )

    mailbox_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("mailboxes.id", ondelete="SET NULL"))
    source: Mapped[str] = mapped_column(String(10))  # smtp | imap
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[str] = mapped_column(String(320), default="")
    header_message_id: Mapped[str | None] = mapped_column(String(500))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int]
    status: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(Text)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id", ondelete="SET NULL"))
    message_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
    attempts: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class TicketCc(IdMixin, WorkspaceScoped, Base):
    """Someone copied on a ticket's email conversation: a customer's colleague in To or Cc
    of their email, or an address staff added. Agents' public replies go to them in Cc,
    and their replies to our emails join the ticket (as the customer's side, named)."""

    __tablename__ = "ticket_ccs"
    # Also how a ticket's CCs are listed, and a sender is looked up on one ticket.
    __table_args__ = (UniqueConstraint("workspace_id", "ticket_id", "address"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))  # as stored_form() keeps it
    name: Mapped[str | None] = mapped_column(String(200))
    added_by: Mapped[str] = mapped_column(String(10))  # email (the headers of mail on the ticket) | staff
    added_by_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime]
    # A permanent bounce of a reply copied to them: left out of the copies until they
    # write in on the ticket again (CCs mostly have no customer profile to mark).
    undeliverable_at: Mapped[datetime | None]
