"""Uploads: checked by their content, stored under random names, served only to those
who may see the message they belong to."""

from __future__ import annotations

import hashlib
import os
import re
import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import filetype
from sqlalchemy import and_, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from relaydesk.core.principal import Principal
from relaydesk.core.storage import FileStorage
from relaydesk.tickets.models import Attachment, Message
from relaydesk.tickets.repository import TicketRepository, Visibility

_DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

# Detected type -> the file extensions a file of that type may carry.
ALLOWED_TYPES: dict[str, frozenset[str]] = {
    "image/png": frozenset({"png"}),
    "image/jpeg": frozenset({"jpg", "jpeg"}),
    "image/gif": frozenset({"gif"}),
    "image/webp": frozenset({"webp"}),
    "application/pdf": frozenset({"pdf"}),
    "application/zip": frozenset({"zip"}),
    _DOCX: frozenset({"docx"}),
    _XLSX: frozenset({"xlsx"}),
    # Text: plain text and the logs and exports customers attach from their tools. XML is
    # served as plain text: as application/xml a browser would render it as a document, and
    # XHTML inside runs its scripts on our origin should the download ever be opened inline.
    "text/plain": frozenset({"txt", "log", "md", "xml", ""}),
    "text/csv": frozenset({"csv"}),
    "application/json": frozenset({"json", "har"}),  # a HAR (the browser's network log) is JSON
    "application/yaml": frozenset({"yaml", "yml"}),
    # What customers send from their phones (photos, screen recordings, voice notes) and
    # older offices; none of it is run or rendered as markup by a browser.
    "image/heic": frozenset({"heic", "heif"}),
    "image/tiff": frozenset({"tif", "tiff"}),
    "image/bmp": frozenset({"bmp"}),
    "video/mp4": frozenset({"mp4", "m4v"}),
    "video/quicktime": frozenset({"mov"}),
    "audio/mp4": frozenset({"m4a"}),
    "audio/mpeg": frozenset({"mp3"}),
    "application/msword": frozenset({"doc"}),
    "application/vnd.ms-excel": frozenset({"xls"}),
    "application/rtf": frozenset({"rtf"}),
    # An email saved as a file (a forward "as attachment"): served as a download only.
    "message/rfc822": frozenset({"eml"}),
}

# Markup a browser runs, scripts included, when it opens it: refused whatever its content.
ACTIVE_EXTENSIONS = frozenset({"html", "htm", "xhtml", "xht", "shtml", "svg", "svgz"})

# A text file's type, by its extension: the content alone cannot tell JSON from a log.
_TEXT_TYPES = {ext: mime for mime in ("text/plain", "text/csv", "application/json", "application/yaml",
                                       "message/rfc822") for ext in ALLOWED_TYPES[mime]}
_ALLOWED_EXTENSIONS = frozenset().union(*ALLOWED_TYPES.values())


def detect_type(data: bytes, filename: str) -> str:
    """The type the bytes really are, refusing anything not on the allow-list or whose
    name claims to be something else."""
    ext = os.path.splitext(filename)[1].lstrip(".").lower()
    if ext in ACTIVE_EXTENSIONS:
        raise UnsupportedMediaType(
            f"Files of type .{ext} are not accepted: they can carry scripts that a browser would run.", field="file")
    if ext not in _ALLOWED_EXTENSIONS:
        allowed = ", ".join(f".{e}" for e in sorted(_ALLOWED_EXTENSIONS) if e)
        raise UnsupportedMediaType(f"Files of type .{ext} are not accepted; allowed: {allowed}.", field="file")
    # Text first: some binary signatures are a couple of letters ("BM" for a bitmap), so a
    # CSV whose first column is "BMI" would otherwise look like an image.
    if ext in _TEXT_TYPES and _is_text(data):
        return _TEXT_TYPES[ext]
    kind = filetype.guess(data)
    if kind is not None:
        mime = kind.mime
        if mime == "application/zip" and ext in ("docx", "xlsx"):
            mime = _DOCX if ext == "docx" else _XLSX  # Office files are zips; the name tells which
    elif _is_text(data):
        mime = "text/plain"
    else:
        raise UnsupportedMediaType("This kind of file is not accepted.", field="file")
    if ext not in ALLOWED_TYPES.get(mime, ()):
        raise UnsupportedMediaType(
            f"The file's content is {mime}, which does not match its name '.{ext}'.", field="file"
        )
    return mime


_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def _is_text(data: bytes) -> bool:
    """UTF-8 text, or text in a single-byte code page (Excel writes its CSVs in the
    system's, cp1252 in Western Europe): no control characters but line breaks and tabs,
    which binary data always has."""
    sample = data[:65536]
    if b"\x00" in sample[:8192]:
        return False
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start <= 65530:  # not just cut mid-character at the sample's end
            return _CONTROL.search(sample) is None
    return True


def safe_filename(name: str) -> str:
    name = unicodedata.normalize("NFC", os.path.basename(name.replace("\\", "/")))
    name = re.sub(r"[\x00-\x1f\x7f\"<>:|?*]", "", name).strip(" .")
    stem, ext = os.path.splitext(name)
    if len(name) > 255:  # shorten the stem, never the extension the type check relies on
        name = stem[: 255 - len(ext)] + ext
    return name or "file"


# An upload is for a message about to be written; one no message took by then was given up.
UNATTACHED_UPLOADS_KEPT = timedelta(hours=24)


@dataclass(frozen=True, slots=True)
class Download:
    attachment: Attachment
    data: bytes


class AttachmentService:
    def __init__(self, session: AsyncSession, files: FileStorage, max_bytes: int) -> None:
        self.session = session
        self.files = files
        self.max_bytes = max_bytes
        self.repo = TicketRepository(session)

    async def upload(self, principal: Principal, filename: str, data: bytes, now: datetime) -> Attachment:
        if not data:
            raise ValidationFailed("The file is empty.", field="file")
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"Files may be at most {self.max_bytes} bytes.", field="file")
        name = safe_filename(filename)
        mime = detect_type(data, name)
        key = await self.files.put(data)
        attachment = Attachment(
            workspace_id=principal.workspace_id, uploader_id=principal.user_id, message_id=None, filename=name,
            content_type=mime, size=len(data), sha256=hashlib.sha256(data).hexdigest(), storage_key=key,
            created_at=now,
        )
        self.session.add(attachment)
        await self.session.flush()
        return attachment

    async def download(self, principal: Principal, vis: Visibility, attachment_id: uuid.UUID) -> Download:
        attachment = await self.session.scalar(select(Attachment).where(
            Attachment.workspace_id == principal.workspace_id, Attachment.id == attachment_id,
        ))
        if attachment is None or not await self._may_see(principal, vis, attachment):
            raise NotFound("No such attachment.")
        return Download(attachment, await self.files.get(attachment.storage_key))

    async def of_ids(self, workspace_id: uuid.UUID, attachment_ids: list[uuid.UUID]) -> list[Attachment]:
        """These attachments of the workspace, in the order they were uploaded (for the
        email that carries a reply's files to the customer)."""
        return list(await self.session.scalars(select(Attachment).where(
            Attachment.workspace_id == workspace_id, Attachment.id.in_(attachment_ids),
        ).order_by(Attachment.created_at)))

    async def public_on_ticket(self, workspace_id: uuid.UUID, ticket_id: uuid.UUID,
                               attachment_ids: list[uuid.UUID]) -> list[Attachment]:
        """Those of these attachments the ticket's customer may see: on one of its messages
        that is neither internal nor deleted (for the images an agent's reply shows in its
        email). Another ticket's, another workspace's or a draft upload are none of them."""
        return list(await self.session.scalars(select(Attachment).join(Message, and_(
            Message.workspace_id == Attachment.workspace_id, Message.id == Attachment.message_id,
        )).where(
            Attachment.workspace_id == workspace_id, Attachment.id.in_(attachment_ids),
            Message.ticket_id == ticket_id, Message.internal.is_(False), Message.deleted_at.is_(None),
        )))

    async def delete_unattached(self, now: datetime, *, limit: int) -> list[str]:
        """Removes uploads no message took within ``UNATTACHED_UPLOADS_KEPT``, at most
        ``limit``; returns their storage keys, whose files go once this is committed (a
        rollback must not leave rows whose bytes are gone)."""
        stale = select(Attachment.id).where(
            Attachment.message_id.is_(None), Attachment.created_at < now - UNATTACHED_UPLOADS_KEPT,
        ).order_by(Attachment.created_at).limit(limit)
        # Checked again as it is deleted: a message may take one meanwhile, and keeps it.
        return list(await self.session.scalars(delete(Attachment).where(
            Attachment.id.in_(list(await self.session.scalars(stale))), Attachment.message_id.is_(None),
        ).returning(Attachment.storage_key)))

    async def delete_files(self, keys: list[str]) -> None:
        for key in keys:
            await self.files.delete(key)

    async def read(self, attachment: Attachment) -> bytes:
        return await self.files.get(attachment.storage_key)

    async def _may_see(self, principal: Principal, vis: Visibility, attachment: Attachment) -> bool:
        if attachment.message_id is None:
            return attachment.uploader_id == principal.user_id
        message = await self.session.scalar(select(Message).where(
            Message.workspace_id == principal.workspace_id, Message.id == attachment.message_id,
        ))
        if message is None:
            return False
        visible = await self.session.scalar(
            self.repo.visible_messages(vis, message.ticket_id).where(Message.id == message.id)
        )
        return visible is not None and await self.repo.get(vis, message.ticket_id) is not None
