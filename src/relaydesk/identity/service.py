"""Users, sign-in, token rotation and API tokens."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from relaydesk.core.db import get_many_in_workspace, new_id
from relaydesk.core.errors import Conflict, NotFound, TooManyAttempts, Unauthenticated, ValidationFailed
from relaydesk.core.outbox import Outbox
from relaydesk.core.principal import Principal, Role
from relaydesk.identity.models import ApiToken, LoginThrottle, PasswordReset, RefreshToken, User
from relaydesk.identity.standing import standing
from relaydesk.identity.security import (
    API_TOKEN_PREFIX,
    PasswordHasher,
    TokenSigner,
    new_secret_token,
    token_digest,
)
from relaydesk.tenancy.service import WorkspaceService

REFRESH_TOKEN_PREFIX = "rdr_"
PASSWORD_RESET_PREFIX = "rdp_"
# Long enough to find the email, short enough that an old inbox is not a way in.
PASSWORD_RESET_TTL = timedelta(hours=1)
log = structlog.get_logger("relaydesk.auth")


def normalise_email(email: str) -> str:
    return email.strip().lower()


class UserService:
    def __init__(self, session: AsyncSession, hasher: PasswordHasher) -> None:
        self.session = session
        self.hasher = hasher

    async def create(
        self, *, workspace_id: uuid.UUID, email: str, name: str, role: Role, password: str | None, now: datetime,
    ) -> User:
        email = normalise_email(email)
        if await self.find_by_email(workspace_id, email) is not None:
            raise Conflict("A user with this email already exists in the workspace.", field="email",
                           code="email_taken")
        user = self.add(workspace_id=workspace_id, email=email, name=name, role=role,
                        password_hash=await self.hasher.hash(password) if password else None, now=now)
        await self.session.flush()
        return user

    def add(self, *, workspace_id: uuid.UUID, email: str, name: str, role: Role, password_hash: str | None,
            now: datetime) -> User:
        """A new user, written at the next flush; for callers that have just looked the
        address up themselves (the unique index still guards a race)."""
        user = User(id=new_id(), workspace_id=workspace_id, email=normalise_email(email), name=name,
                    role=role.value, password_hash=password_hash, is_active=True, created_at=now, updated_at=now)
        self.session.add(user)
        return user

    async def find_by_email(self, workspace_id: uuid.UUID, email: str) -> User | None:
        return await self.session.scalar(
            select(User).where(User.workspace_id == workspace_id, User.email == normalise_email(email))
        )

    async def get(self, workspace_id: uuid.UUID, user_id: uuid.UUID) -> User:
        user = await self.session.scalar(select(User).where(User.workspace_id == workspace_id, User.id == user_id))
        if user is None:
            raise NotFound("No such user.")
        return user

    async def get_many(self, workspace_id: uuid.UUID, user_ids: set[uuid.UUID]) -> dict[uuid.UUID, User]:
        return await get_many_in_workspace(self.session, User, workspace_id, user_ids)

    async def active_roles(self, user_ids: list[uuid.UUID]) -> dict[uuid.UUID, str]:
        """The role of each of these users who is still active (the others are left out)."""
        return {row.id: row.role for row in await self.session.execute(
            select(User.id, User.role).where(User.id.in_(user_ids), User.is_active.is_(True)))}

    async def list_by_roles(
        self, workspace_id: uuid.UUID, roles: set[Role], *, after: uuid.UUID | None, limit: int,
    ) -> list[User]:
        stmt = select(User).where(User.workspace_id == workspace_id, User.role.in_([r.value for r in roles]))
        if after is not None:
            stmt = stmt.where(User.id > after)
        return list(await self.session.scalars(stmt.order_by(User.id).limit(limit)))

    async def update(
        self, user: User, *, now: datetime, name: str | None = None, email: str | None = None,
        role: Role | None = None, is_active: bool | None = None, password: str | None = None,
    ) -> dict[str, tuple[object, object]]:
        """Apply the given changes and return them as {field: (before, after)} for the audit."""
        if user.role == Role.ADMIN.value and user.is_active and (
                (role is not None and role is not Role.ADMIN) or is_active is False):
            await self._keep_an_admin(user, field="role" if role is not None and role is not Role.ADMIN
                                      else "is_active")
        changes: dict[str, tuple[object, object]] = {}
        if email is not None and normalise_email(email) != user.email:
            other = await self.find_by_email(user.workspace_id, email)
            if other is not None:
                raise Conflict("A user with this email already exists in the workspace.", field="email")
            changes["email"] = (user.email, normalise_email(email))
            user.email = normalise_email(email)
        for field, value in (("name", name), ("role", role.value if role else None), ("is_active", is_active)):
            if value is not None and getattr(user, field) != value:
                changes[field] = (getattr(user, field), value)
                setattr(user, field, value)
        if password is not None:
            user.password_hash = await self.hasher.hash(password)
            changes["password"] = ("***", "*** (changed)")
            standing.changed(self.session, every_sign_in=True)
            # A new password ends the sessions signed in with the old one, and the reset
            # links sent for it.
            await self.session.execute(update(RefreshToken).where(
                RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None)).values(revoked_at=now))
            await self.session.execute(update(PasswordReset).where(
                PasswordReset.user_id == user.id, PasswordReset.used_at.is_(None)).values(used_at=now))
            # Whoever set it (they, a reset, an admin), the user hears of it.
            Outbox(self.session).publish(user.workspace_id, "user.password_changed", now, user_id=user.id)
        if changes.get("is_active") == (True, False):
            # Switched off ends every sign-in and API token: switching back on must not
            # bring back sessions from before (a leaver's laptop, a leaked token).
            await self.session.execute(update(RefreshToken).where(
                RefreshToken.user_id == user.id, RefreshToken.revoked_at.is_(None)).values(revoked_at=now))
            await self.session.execute(update(ApiToken).where(
                ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None)).values(revoked_at=now))
            standing.changed(self.session, every_sign_in=True)
        if changes:
            user.updated_at = now
            standing.changed(self.session, user=user.id)  # the next request sees the new role or state
        return changes

    async def _keep_an_admin(self, user: User, *, field: str) -> None:
        """Nobody could ever manage a workspace left without an active admin: not even
        the CLI, which acts as one of them."""
        others = await self.session.scalar(select(func.count()).select_from(User).where(
            User.workspace_id == user.workspace_id, User.role == Role.ADMIN.value, User.is_active.is_(True),
            User.id != user.id))
        if not others:
            raise Conflict("This is the workspace's last active admin; make someone else an admin first.",
                           field=field, code="last_admin")


def _sign_in_failed(reason: str, workspace: str, email: str, client_ip: str | None) -> None:
    """One line per failed sign-in, for fail2ban or a SIEM to count by address or account:
    the reason class (unknown_workspace, unknown_user, bad_password, inactive_user,
    throttled, locked_out), never the password. The caller only ever hears
    invalid_credentials (or the 429s), so this line is where the reason can be read."""
    log.warning("login_failed", reason=reason, workspace=workspace, email=email, client_ip=client_ip)


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User


@dataclass(frozen=True, slots=True)
class LoginPolicy:
    slowdown_after: int
    max_failures: int
    lockout: timedelta
    refresh_ttl: timedelta


class AuthService:
    def __init__(
        self, session: AsyncSession, hasher: PasswordHasher, signer: TokenSigner, policy: LoginPolicy,
    ) -> None:
        self.session = session
        self.hasher = hasher
        self.signer = signer
        self.policy = policy
        self.users = UserService(session, hasher)

    # -- sign-in -----------------------------------------------------------------
    async def login(self, *, workspace: str, email: str, password: str, now: datetime,
                    client_ip: str | None = None) -> TokenPair:
        ws = await WorkspaceService(self.session).find(workspace)
        email = normalise_email(email)
        if ws is None:
            # Same answer as a wrong password: sign-in does not confirm which workspaces exist.
            await self.hasher.verify(None, password)
            _sign_in_failed("unknown_workspace", workspace, email, client_ip)
            raise Unauthenticated("Wrong workspace, email or password.", code="invalid_credentials")
        throttle = await self.session.get(LoginThrottle, (ws.id, email))
        try:
            self._refuse_if_throttled(throttle, now)
        except TooManyAttempts as refused:
            _sign_in_failed("locked_out" if refused.code == "account_locked" else "throttled", ws.slug, email,
                            client_ip)
            raise
        user = await self.users.find_by_email(ws.id, email)
        ok = await self.hasher.verify(user.password_hash if user else None, password)
        if not ok or user is None or not user.is_active:
            await self._record_failure(throttle, ws.id, email, now)
            reason = "unknown_user" if user is None else "bad_password" if not ok else "inactive_user"
            _sign_in_failed(reason, ws.slug, email, client_ip)
            raise Unauthenticated("Wrong workspace, email or password.", code="invalid_credentials",
                                  keep_changes=True)
        if throttle is not None:
            await self.session.delete(throttle)
        user.last_login_at = now
        return await self._issue(user, family_id=uuid.uuid4(), now=now)

    def _refuse_if_throttled(self, throttle: LoginThrottle | None, now: datetime) -> None:
        if throttle is None:
            return
        if throttle.locked_until is not None and throttle.locked_until > now:
            wait = math.ceil((throttle.locked_until - now).total_seconds())
            raise TooManyAttempts(
                f"Too many failed sign-ins; this account is locked for {wait} more seconds.",
                code="account_locked", extra={"retry_after": wait},
            )
        over = throttle.failures - self.policy.slowdown_after
        if over >= 0 and throttle.last_failure_at is not None:
            ready_at = throttle.last_failure_at + timedelta(seconds=min(2**over, 60))
            if ready_at > now:
                wait = math.ceil((ready_at - now).total_seconds())
                raise TooManyAttempts(
                    f"Too many failed sign-ins; wait {wait} seconds before trying again.",
                    code="login_throttled", extra={"retry_after": wait},
                )

    async def _record_failure(
        self, throttle: LoginThrottle | None, workspace_id: uuid.UUID, email: str, now: datetime,
    ) -> None:
        if throttle is None:
            throttle = LoginThrottle(workspace_id=workspace_id, email=email, failures=0)
            self.session.add(throttle)
        if throttle.locked_until is not None and throttle.locked_until <= now:
            throttle.failures, throttle.locked_until = 0, None  # the lock has run out: start afresh
        throttle.failures += 1
        throttle.last_failure_at = now
        if throttle.failures >= self.policy.max_failures:
            throttle.locked_until = now + self.policy.lockout

    # -- tokens ------------------------------------------------------------------
    async def _issue(self, user: User, *, family_id: uuid.UUID, now: datetime) -> TokenPair:
        refresh = new_secret_token(REFRESH_TOKEN_PREFIX)
        self.session.add(RefreshToken(
            workspace_id=user.workspace_id, user_id=user.id, family_id=family_id,
            token_hash=token_digest(refresh), created_at=now, expires_at=now + self.policy.refresh_ttl,
        ))
        principal = Principal(user_id=user.id, workspace_id=user.workspace_id, role=Role(user.role))
        return TokenPair(
            access_token=self.signer.issue(principal, now, session=family_id), refresh_token=refresh,
            expires_in=int(self.signer.ttl.total_seconds()), user=user,
        )

    async def refresh(self, token: str, now: datetime) -> TokenPair:
        stored = await self.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_digest(token)))
        if stored is None or stored.revoked_at is not None:
            raise Unauthenticated("The refresh token is not valid; sign in again.")
        if stored.used_at is not None:
            # A rotated token came back: someone else holds a copy. End the whole session.
            await self._revoke_family(stored.family_id, now)
            raise Unauthenticated("This refresh token was already used; the session has been ended for safety.",
                                  code="refresh_token_reused", keep_changes=True)
        if stored.expires_at <= now:
            raise Unauthenticated("The refresh token has expired; sign in again.")
        user = await self.session.get(User, stored.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("The account is no longer active.")
        stored.used_at = now
        return await self._issue(user, family_id=stored.family_id, now=now)

    async def logout(self, token: str, now: datetime) -> None:
        stored = await self.session.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_digest(token)))
        if stored is not None:
            await self._revoke_family(stored.family_id, now)

    async def _revoke_family(self, family_id: uuid.UUID, now: datetime) -> None:
        standing.changed(self.session, sign_in=family_id)
        await self.session.execute(
            update(RefreshToken).where(RefreshToken.family_id == family_id, RefreshToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )

    async def authenticate(self, bearer: str, now: datetime) -> Principal:
        if not bearer.startswith(API_TOKEN_PREFIX):
            principal, sign_in = self.signer.verify_sign_in(bearer, now)
            await standing.check(self.session, principal, sign_in)
            return principal
        row = await self.session.scalar(select(ApiToken).where(ApiToken.token_hash == token_digest(bearer)))
        if row is None or row.revoked_at is not None or (row.expires_at is not None and row.expires_at <= now):
            raise Unauthenticated("The API token is not valid.")
        user = await self.session.get(User, row.user_id)
        if user is None or not user.is_active:
            raise Unauthenticated("The API token's owner is no longer active.")
        return Principal(user_id=user.id, workspace_id=user.workspace_id, role=Role(user.role))

    # -- passwords ---------------------------------------------------------------
    async def change_password(self, principal: Principal, *, current: str, new: str, now: datetime) -> TokenPair:
        """Checks the current password as a sign-in does (a wrong one counts toward the
        same throttle, or a stolen session could guess it here freely), then ends every
        session, this one too, and hands back a fresh one."""
        user = await self.users.get(principal.workspace_id, principal.user_id)
        throttle = await self.session.get(LoginThrottle, (user.workspace_id, user.email))
        self._refuse_if_throttled(throttle, now)
        if not await self.hasher.verify(user.password_hash, current):
            await self._record_failure(throttle, user.workspace_id, user.email, now)
            raise ValidationFailed("This is not your current password.", field="current_password",
                                   keep_changes=True)
        await self.users.update(user, now=now, password=new)
        return await self._issue(user, family_id=uuid.uuid4(), now=now)

    async def ask_password_reset(self, workspace: str, email: str, now: datetime) -> None:
        """Queues the reset email for ``email`` in the workspace whose slug is ``workspace``.
        The job decides whether the address has (or, for a customer, gets) a sign-in and
        makes the token: neither shows in the caller's answer or its timing, nor sits in
        the outbox."""
        ws = await WorkspaceService(self.session).find(workspace)
        if ws is not None:
            Outbox(self.session).publish(ws.id, "user.password_reset_requested", now, email=normalise_email(email))

    async def issue_password_reset(self, user: User, now: datetime) -> str:
        """A new reset token for ``user``, kept as its hash; the earlier ones stay good until
        they expire (two emails crossing must not make the first link fail)."""
        token = new_secret_token(PASSWORD_RESET_PREFIX)
        self.session.add(PasswordReset(workspace_id=user.workspace_id, user_id=user.id,
                                       token_hash=token_digest(token), created_at=now,
                                       expires_at=now + PASSWORD_RESET_TTL))
        await self.session.flush()
        return token

    async def reset_password(self, token: str, new: str, now: datetime) -> None:
        """Sets the password of the reset token's user and ends all their sessions; the
        token, and every other one of theirs, is used up."""
        reset = await self.session.scalar(select(PasswordReset).where(PasswordReset.token_hash == token_digest(token))
                                          .with_for_update())
        user = await self.session.get(User, reset.user_id) if reset is not None else None
        if reset is None or reset.used_at is not None or reset.expires_at <= now or user is None or not user.is_active:
            raise ValidationFailed("This reset link is not valid: it was used, has expired or was never sent. "
                                   "Ask for another.", field="token")
        await self.users.update(user, now=now, password=new)
        # Whoever reads the account's email may sign in: a lockout of it is lifted.
        throttle = await self.session.get(LoginThrottle, (user.workspace_id, user.email))
        if throttle is not None:
            await self.session.delete(throttle)

    async def sign_ins_still_open(self, families: list[uuid.UUID]) -> set[uuid.UUID]:
        """Which of these sign-ins (refresh-token families) have not ended: signing out, a
        new password or a stolen refresh token coming back revokes all of a family."""
        return set(await self.session.scalars(select(RefreshToken.family_id).where(
            RefreshToken.family_id.in_(families), RefreshToken.revoked_at.is_(None))))

    async def api_tokens_still_valid(self, digests: list[str], now: datetime) -> set[str]:
        """Which of these API tokens (by digest) are neither revoked nor expired."""
        return set(await self.session.scalars(select(ApiToken.token_hash).where(
            ApiToken.token_hash.in_(digests), ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now))))

    # -- personal API tokens -------------------------------------------------------
    async def create_api_token(
        self, principal: Principal, *, name: str, expires_at: datetime | None, now: datetime,
    ) -> tuple[ApiToken, str]:
        secret = new_secret_token(API_TOKEN_PREFIX)
        row = ApiToken(
            workspace_id=principal.workspace_id, user_id=principal.user_id, name=name,
            prefix=secret[:10], token_hash=token_digest(secret), created_at=now, expires_at=expires_at,
        )
        self.session.add(row)
        await self.session.flush()
        return row, secret

    async def list_api_tokens(self, principal: Principal) -> list[ApiToken]:
        return list(await self.session.scalars(
            select(ApiToken).where(
                ApiToken.workspace_id == principal.workspace_id, ApiToken.user_id == principal.user_id,
                ApiToken.revoked_at.is_(None),
            ).order_by(ApiToken.created_at)
        ))

    async def revoke_api_token(self, principal: Principal, token_id: uuid.UUID, now: datetime) -> None:
        row = await self.session.scalar(select(ApiToken).where(
            ApiToken.workspace_id == principal.workspace_id, ApiToken.user_id == principal.user_id,
            ApiToken.id == token_id, ApiToken.revoked_at.is_(None),
        ))
        if row is None:
            raise NotFound("No such API token.")
        row.revoked_at = now
