"""The password-reset email. Not a queued delivery: its link is a secret as good as the
password, so it is made by the job that sends it, kept only as its hash, and never sits
in the outbox or the delivery log (as a mailbox's verification code)."""

from __future__ import annotations

import uuid
from datetime import datetime
from email.message import Message
from typing import TYPE_CHECKING

import structlog

from relaydesk.channels.verification import automatic_email
from relaydesk.core.mail import MailError
from relaydesk.customers.service import CustomerService
from relaydesk.identity.service import PASSWORD_RESET_TTL
from relaydesk.identity.wiring import auth_service_for
from relaydesk.notifications.notifier import addressee
from relaydesk.notifications.templates import app_link
from relaydesk.tenancy.service import WorkspaceService

if TYPE_CHECKING:
    from relaydesk.runtime import Runtime

log = structlog.get_logger("relaydesk.auth")

_WORDS = {
    "en": {
        "subject": "Set a new password for {workspace}",
        "body": ("Hello{name},\n\nSomeone (we hope you) asked to set a new password for your {workspace} sign-in "
                 "({address}).\n\n{link}The link works once, within {minutes} minutes. This is the token it "
                 "carries, for an app that asks for it:\n\n    {token}\n\nIf you did not ask, ignore this email: "
                 "your password stays as it is.\n"),
        "link": "Choose a new password here:\n\n    {url}\n\n",
    },
    "vi": {
        "subject": "Đặt mật khẩu mới cho {workspace}",
        "body": ("Xin chào{name},\n\nCó người (chúng tôi mong là bạn) đã yêu cầu đặt mật khẩu mới cho tài khoản "
                 "{workspace} của bạn ({address}).\n\n{link}Liên kết chỉ dùng được một lần, trong vòng {minutes} "
                 "phút. Đây là mã mà liên kết mang theo, dành cho ứng dụng yêu cầu nhập mã:\n\n    {token}\n\n"
                 "Nếu bạn không yêu cầu, hãy bỏ qua email này: mật khẩu của bạn vẫn giữ nguyên.\n"),
        "link": "Chọn mật khẩu mới tại đây:\n\n    {url}\n\n",
    },
}


def password_reset_email(*, address: str, name: str, locale: str, token: str, reset_url: str, workspace_id: uuid.UUID,
                         workspace_name: str, sender: str, secret: str, mail_domain: str, now: datetime) -> Message:
    words = _WORDS.get(locale, _WORDS["en"])
    link = words["link"].format(url=reset_url) if reset_url else ""
    text = words["body"].format(name=f" {name}" if name else "", workspace=workspace_name, address=address,
                                link=link, token=token, minutes=int(PASSWORD_RESET_TTL.total_seconds() // 60))
    return automatic_email(text, subject=words["subject"].format(workspace=workspace_name), to=address,
                           sender=sender, workspace_id=workspace_id, workspace_name=workspace_name,
                           nonce_prefix="p", secret=secret, mail_domain=mail_domain, now=now)


async def send_password_reset(runtime: Runtime, workspace_id: uuid.UUID, email: str) -> str | None:
    """Emails a new reset token to ``email`` if it can sign in to the workspace. A customer
    known only by their profile (an emailed-in customer, one staff added without a
    password) gets their sign-in now: setting a first password is what this is for them."""
    settings, at = runtime.settings, runtime.clock.now()
    async with runtime.transaction() as session:
        auth = auth_service_for(runtime, session)
        user = await auth.users.find_by_email(workspace_id, email)
        if user is None:
            customers = CustomerService(session, auth.users)
            customer = await customers.find_by_email(workspace_id, email)
            if customer is None or customer.deleted_at is not None:
                return None
            principal = await customers.principal_for(customer, at)
            await session.flush()
            user = await auth.users.get(workspace_id, principal.user_id)
        if not user.is_active:
            return None
        token = await auth.issue_password_reset(user, at)
        workspace = await WorkspaceService(session).get(workspace_id)
        name, locale, _ = await addressee(runtime, session, workspace_id, user.email)
        message = password_reset_email(
            address=user.email, name=name or user.name, locale=locale, token=token,
            reset_url=app_link(settings.app_url, f"/reset-password?token={token}"), workspace_id=workspace_id,
            workspace_name=workspace.name, sender=f"{workspace.slug}@{settings.mail_domain}",
            secret=settings.resolved_secret_key(), mail_domain=settings.mail_domain, now=at)
    try:
        await runtime.mailer.send(message)
    except MailError as exc:
        log.warning("password_reset_email_failed", workspace_id=str(workspace_id), error=str(exc),
                    permanent=exc.permanent)
        if not exc.permanent:
            raise  # the job's retries; each makes a token of its own
        return "failed"
    return "sent"
