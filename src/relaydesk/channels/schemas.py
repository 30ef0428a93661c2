from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import AliasChoices, Field, field_validator

from relaydesk.core.schemas import Email, Input, Output


def _blank_is_none(value: str | None) -> str | None:
    # A host left blank in a form means "no IMAP", as null does; a blank user name or
    # password is none at all.
    return value or None


class MailboxIn(Input):
    address: Email
    imap_host: str | None = Field(default=None, max_length=255, description="Poll this IMAP server (then "
                                  "imap_username and imap_password are required); null or blank: mail reaches "
                                  "Relaydesk's SMTP listener instead (forwarding).")
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_tls: bool = True
    imap_username: str | None = Field(default=None, max_length=320)
    imap_password: str | None = Field(default=None, max_length=500)
    imap_folder: str = Field(default="INBOX", min_length=1, max_length=200)

    _blanks = field_validator("imap_host", "imap_username", "imap_password")(_blank_is_none)

    model_config = {"json_schema_extra": {"examples": [
        {"address": "support@acme.example.com"},
        {"address": "help@acme.example.com", "imap_host": "imap.acme.example.com", "imap_port": 993,
         "imap_username": "help@acme.example.com", "imap_password": "app-password"}]}}


class MailboxPatch(Input):
    imap_host: str | None = Field(default=None, max_length=255)
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_tls: bool | None = None
    imap_username: str | None = Field(default=None, max_length=320)
    imap_password: str | None = Field(default=None, max_length=500)
    imap_folder: str | None = Field(default=None, min_length=1, max_length=200)
    active: bool | None = None

    _blanks = field_validator("imap_host", "imap_username", "imap_password")(_blank_is_none)

    model_config = {"json_schema_extra": {"examples": [{"active": False}, {"imap_password": "new-app-password"}]}}


class MailboxVerifyIn(Input):
    code: str = Field(min_length=1, max_length=200, description="The code in the verification email "
                      "Relaydesk sent to the address (also in its X-Relaydesk-Verification header).")

    model_config = {"json_schema_extra": {"examples": [{"code": "mQ2x7VbTzJ0cR1kA9sLw"}]}}


class MailboxOut(Output):
    id: uuid.UUID
    address: str
    imap_host: str | None
    imap_port: int | None
    imap_tls: bool
    imap_username: str | None
    imap_folder: str
    active: bool
    last_polled_at: datetime | None = Field(description="When the mailbox was last polled, whether that worked "
                                            "or not.")
    last_error: str | None = Field(description="What went wrong with the latest poll, and what to check; or "
                                   "why the latest verification email could not be sent.")
    poll_failures: int = Field(description="Polls that failed in a row (0: the latest worked).")
    next_poll_at: datetime | None = Field(description="A failing mailbox is tried less and less often (after 1, "
                                          "2, 5, 10, then every 30 minutes): the first poll round from this time "
                                          "tries it again. Null: the next round polls it. Saving the mailbox "
                                          "(PATCH) has it tried on the next round.")
    created_at: datetime
    verified: bool = Field(description="Whether the workspace has shown the address is its own. Until then "
                           "nothing is sent from it (the workspace's built-in address is used instead) and other "
                           "workspaces may claim it too.")
    verified_at: datetime | None
    verification_sent_at: datetime | None = Field(description="When the latest verification email was asked for.")


class InboundEmailOut(Output):
    id: uuid.UUID
    source: str
    mailbox_id: uuid.UUID | None
    envelope_from: str
    envelope_to: str
    header_message_id: str | None
    size: int
    status: str
    reason: str | None
    ticket_id: uuid.UUID | None
    attempts: int
    received_at: datetime
    processed_at: datetime | None


class InboundEmailPage(Output):
    items: list[InboundEmailOut]
    next_cursor: str | None


class CcIn(Input):
    email: Email
    name: str | None = Field(default=None, max_length=200)

    model_config = {"json_schema_extra": {"examples": [{"email": "sam@customer.example.com", "name": "Sam Lee"}]}}

    @field_validator("name")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        # The name goes into the Cc header of every reply, where a line break would start
        # another header.
        if value is not None and any(c in value for c in "\r\n\t\x85\u2028\u2029"):
            raise ValueError("A name cannot hold line breaks or other control characters.")
        return value


class CcOut(Output):
    id: uuid.UUID
    ticket_id: uuid.UUID
    email: str = Field(validation_alias=AliasChoices("address", "email"))
    name: str | None
    added_by: str = Field(description="email: they were in To or Cc of an email on the ticket; staff: added by "
                          "hand (added_by_id says who).")
    added_by_id: uuid.UUID | None
    created_at: datetime
    undeliverable_at: datetime | None = Field(description="When a reply copied to them bounced for good: they "
                                              "are left out of the copies until they write in on the ticket again.")
