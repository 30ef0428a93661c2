from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, StringConstraints

from relaydesk.core.principal import Role
from relaydesk.core.schemas import Email, Input, Moment, Name, Output, Password


class UserOut(Output):
    id: uuid.UUID
    workspace_id: uuid.UUID
    email: str
    name: str
    role: Role


class LoginIn(Input):
    email: Email
    password: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    workspace: Annotated[str, StringConstraints(min_length=1, max_length=80)] = Field(
        description="The workspace's slug (or id)."
    )

    model_config = {"json_schema_extra": {"examples": [
        {"email": "admin@acme.example.com", "password": "correct horse battery", "workspace": "acme"}
    ]}}


class TokenOut(Output):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires.")
    user: UserOut


class RefreshIn(Input):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=200)]

    model_config = {"json_schema_extra": {"examples": [{"refresh_token": "rdr_…"}]}}


class SignupIn(Input):
    name: Name
    admin_name: Name
    admin_email: Email
    admin_password: Password

    model_config = {"json_schema_extra": {"examples": [{
        "name": "Acme Outdoor", "admin_name": "Ada Admin", "admin_email": "ada@acme.example.com",
        "admin_password": "correct horse battery",
    }]}}


class WorkspaceOut(Output):
    id: uuid.UUID
    name: str
    slug: str


class SignupOut(Output):
    workspace: WorkspaceOut
    admin: UserOut


class ApiTokenIn(Input):
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    expires_at: Moment | None = None

    model_config = {"json_schema_extra": {"examples": [{"name": "Shopify sync", "expires_at": "2027-01-01T00:00:00Z"}]}}


class ApiTokenOut(Output):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The first characters of the token, to tell tokens apart.")
    created_at: datetime
    expires_at: datetime | None


class ApiTokenCreatedOut(ApiTokenOut):
    token: str = Field(description="The secret, shown only this once.")


class MeOut(UserOut):
    workspace: WorkspaceOut


class PasswordChangeIn(Input):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    new_password: Password

    model_config = {"json_schema_extra": {"examples": [
        {"current_password": "correct horse battery", "new_password": "a longer passphrase"}
    ]}}


class PasswordResetIn(Input):
    workspace: Annotated[str, StringConstraints(min_length=1, max_length=80)] = Field(
        description="The workspace's slug (or id)."
    )
    email: Email

    model_config = {"json_schema_extra": {"examples": [{"workspace": "acme", "email": "lan@example.com"}]}}


class PasswordResetConfirmIn(Input):
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="The token from the reset email (rdp_…)."
    )
    new_password: Password

    model_config = {"json_schema_extra": {"examples": [{"token": "rdp_…", "new_password": "a longer passphrase"}]}}
