"""Sign-in, tokens, rotation, lockout and API tokens."""

from __future__ import annotations

import base64
import json
import re
from datetime import timedelta

import jwt
import pytest
from sqlalchemy import select

from factories import PASSWORD, make_workspace
from test_notification_delivery import mail, to  # noqa: F401 - a fixture
from relaydesk.identity.models import User


def _problem(r, status, code=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if code:
        assert r.json()["code"] == code, r.json()


class TestLogin:
    async def test_login_returns_tokens_and_user(self, client):
        ws = await make_workspace(client)
        r = await client.post("/api/v1/auth/login", json={"email": ws.admin.email.upper(), "password": PASSWORD,
                                                          "workspace": ws.slug})
        assert r.status_code == 200
        body = r.json()
        assert body["token_type"] == "bearer" and body["refresh_token"] and body["expires_in"] == 900
        assert body["user"] == {"id": ws.admin.id, "workspace_id": ws.id, "email": ws.admin.email,
                                "name": "Ada Admin", "role": "admin"}
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert me.json()["workspace"]["slug"] == ws.slug

    async def test_wrong_password_unknown_email_and_unknown_workspace_look_alike(self, client):
        ws = await make_workspace(client)
        answers = []
        for body in ({"email": ws.admin.email, "password": "wrong password!", "workspace": ws.slug},
                     {"email": "nobody@acme.example.com", "password": PASSWORD, "workspace": ws.slug},
                     {"email": ws.admin.email, "password": PASSWORD, "workspace": "no-such-workspace"}):
            r = await client.post("/api/v1/auth/login", json=body)
            _problem(r, 401, "invalid_credentials")
            answers.append(r.json()["detail"])
        assert len(set(answers)) == 1

    async def test_passwords_are_stored_as_argon2id(self, client, runtime):
        ws = await make_workspace(client)
        async with runtime.db.read_session() as s:
            user = await s.scalar(select(User).where(User.email == ws.admin.email))
        assert user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash

    async def test_repeated_failures_are_slowed_then_locked(self, client, clock, runtime):
        ws = await make_workspace(client)
        s = runtime.settings
        bad = {"email": ws.admin.email, "password": "not the password", "workspace": ws.slug}
        good = {**bad, "password": PASSWORD}
        for _ in range(s.login_slowdown_after):
            _problem(await client.post("/api/v1/auth/login", json=bad), 401)
        # Now each next try must wait, even with the right password.
        r = await client.post("/api/v1/auth/login", json=good)
        _problem(r, 429, "login_throttled")
        assert r.json()["retry_after"] == 1 and r.headers["retry-after"] == "1"
        for _ in range(s.login_max_failures - s.login_slowdown_after):
            clock.advance(timedelta(seconds=61))
            _problem(await client.post("/api/v1/auth/login", json=bad), 401)
        clock.advance(timedelta(seconds=61))
        r = await client.post("/api/v1/auth/login", json=good)
        _problem(r, 429, "account_locked")
        assert r.headers["retry-after"] == str(r.json()["retry_after"]) and int(r.headers["retry-after"]) > 60
        clock.advance(timedelta(seconds=s.login_lockout_seconds))
        assert (await client.post("/api/v1/auth/login", json=good)).status_code == 200
        # Success clears the record: one new failure is just a failure.
        _problem(await client.post("/api/v1/auth/login", json=bad), 401)

    async def test_every_failed_sign_in_leaves_one_log_line_with_its_reason_and_never_the_password(
            self, client, clock, runtime, capsys):
        """What fail2ban or a SIEM reads: workspace, attempted email, client address and why,
        one JSON line per failure, whatever the caller was told."""
        ws = await make_workspace(client)
        s = runtime.settings
        capsys.readouterr()

        logged_text: list[str] = []

        def failures() -> list[dict]:
            captured = capsys.readouterr()
            logged_text.extend((captured.out + captured.err).splitlines())
            lines = [json.loads(line) for line in captured.err.splitlines() if line.startswith("{")]
            return [line for line in lines if line.get("event") == "login_failed"]

        async def login(email: str, password: str, workspace: str = ws.slug) -> None:
            r = await client.post("/api/v1/auth/login", json={"email": email, "password": password,
                                                              "workspace": workspace})
            assert r.status_code in (401, 429), r.text

        await login(ws.admin.email.upper(), "wrong password 1")
        await login("nobody@acme.example.com", "wrong password 2")
        await login(ws.admin.email, "wrong password 3", workspace="no-such-workspace")
        logged = failures()
        assert [(f["reason"], f["workspace"], f["email"]) for f in logged] == [
            ("bad_password", ws.slug, ws.admin.email), ("unknown_user", ws.slug, "nobody@acme.example.com"),
            ("unknown_workspace", "no-such-workspace", ws.admin.email)]
        assert all(f["client_ip"] == "127.0.0.1" and f["level"] == "warning" for f in logged), logged

        for _ in range(s.login_slowdown_after - 1):
            await login(ws.admin.email, "wrong password 4")
        await login(ws.admin.email, PASSWORD)  # too soon: throttled, even with the right password
        for _ in range(s.login_max_failures - s.login_slowdown_after):
            clock.advance(timedelta(seconds=61))
            await login(ws.admin.email, "wrong password 5")
        clock.advance(timedelta(seconds=61))
        await login(ws.admin.email, PASSWORD)
        reasons = [f["reason"] for f in failures()]
        assert reasons[s.login_slowdown_after - 1] == "throttled" and reasons[-1] == "locked_out", reasons
        assert len(reasons) == s.login_max_failures + 1

        agent = await ws.staff()
        r = await client.patch(f"/api/v1/agents/{agent.id}", json={"is_active": False}, headers=ws.admin.headers)
        assert r.status_code == 200, r.text
        capsys.readouterr()
        await login(agent.email, PASSWORD)
        assert [f["reason"] for f in failures()] == ["inactive_user"]
        assert not [line for line in logged_text if "wrong password" in line or PASSWORD in line]

    async def test_a_lockout_is_per_workspace_and_email(self, client):
        ws = await make_workspace(client)
        other = await ws.staff()
        for _ in range(3):
            await client.post("/api/v1/auth/login", json={"email": ws.admin.email, "password": "nope nope nope",
                                                          "workspace": ws.slug})
        assert (await client.post("/api/v1/auth/login", json={"email": other.email, "password": PASSWORD,
                                                               "workspace": ws.slug})).status_code == 200


class TestAccessTokens:
    async def test_no_token_and_garbage_are_refused(self, client):
        _problem(await client.get("/api/v1/me"), 401, "unauthenticated")
        _problem(await client.get("/api/v1/me", headers={"Authorization": "Bearer not-a-jwt"}), 401)
        _problem(await client.get("/api/v1/me", headers={"Authorization": "Basic dXNlcjpwYXNz"}), 401)

    async def test_expired_token_is_refused(self, client, clock):
        ws = await make_workspace(client)
        assert (await client.get("/api/v1/me", headers=ws.admin.headers)).status_code == 200
        clock.advance(timedelta(seconds=901))
        # The same token again: a token already checked once is refused all the same.
        r = await client.get("/api/v1/me", headers=ws.admin.headers)
        _problem(r, 401)
        assert "expired" in r.json()["detail"]

    async def test_tampered_token_is_refused(self, client):
        ws = await make_workspace(client)
        header, payload, signature = ws.admin.token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["role"] = "admin"
        claims["sub"] = claims["sub"][:-1] + ("0" if claims["sub"][-1] != "0" else "1")
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
        _problem(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {header}.{forged}.{signature}"}), 401)

    async def test_alg_none_is_refused(self, client):
        ws = await make_workspace(client)
        claims = jwt.decode(ws.admin.token, options={"verify_signature": False})
        unsigned = jwt.encode(claims, key=None, algorithm="none")
        _problem(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {unsigned}"}), 401)

    async def test_token_signed_by_another_key_is_refused(self, client):
        ws = await make_workspace(client)
        claims = jwt.decode(ws.admin.token, options={"verify_signature": False})
        foreign = jwt.encode(claims, "some-other-deployment-secret-key-32b", algorithm="HS256")
        _problem(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {foreign}"}), 401)

    async def test_other_workspace_token_reaches_nothing_there(self, client):
        a, b = await make_workspace(client), await make_workspace(client)
        cust = await a.customer()
        t = await a.ticket(cust)
        _problem(await client.get(f"/api/v1/tickets/{t['id']}", headers=b.admin.headers), 404, "not_found")
        _problem(await client.get(f"/api/v1/customers/{cust.customer_id}", headers=b.admin.headers), 404)


class TestAccessThatNoLongerStands:
    """An access token lives 15 minutes, but deactivation, a new role and signing out end
    what it allows at once (in the process that made the change) or within seconds."""

    @staticmethod
    def bearer(tokens):  # noqa: ANN001, ANN205
        return {"Authorization": f"Bearer {tokens['access_token']}"}

    async def test_a_deactivated_agent_is_refused_at_once(self, client):
        ws = await make_workspace(client)
        agent = await ws.staff()
        tokens = await ws.login(agent.email)
        assert (await client.get("/api/v1/me", headers=self.bearer(tokens))).status_code == 200
        r = await client.patch(f"/api/v1/agents/{agent.id}", json={"is_active": False}, headers=ws.admin.headers)
        assert r.status_code == 200
        _problem(await client.get("/api/v1/tickets", headers=self.bearer(tokens)), 401, "account_inactive")

    async def test_switching_an_account_back_on_brings_back_no_old_session(self, client):
        ws = await make_workspace(client)
        agent = await ws.staff()
        tokens = await ws.login(agent.email)
        r = await client.post("/api/v1/me/api-tokens", headers=self.bearer(tokens), json={"name": "script"})
        assert r.status_code == 201, r.text
        api_token = r.json()["token"]
        for active in (False, True):
            r = await client.patch(f"/api/v1/agents/{agent.id}", json={"is_active": active}, headers=ws.admin.headers)
            assert r.status_code == 200
        _problem(await client.get("/api/v1/me", headers=self.bearer(tokens)), 401)
        _problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
        _problem(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {api_token}"}), 401)
        assert (await ws.login(agent.email))["access_token"]  # signing in again works

    async def test_a_new_role_needs_a_new_token(self, client):
        ws = await make_workspace(client)
        admin = await ws.staff("admin")
        tokens = await ws.login(admin.email)
        assert (await client.get("/api/v1/me", headers=self.bearer(tokens))).status_code == 200
        r = await client.patch(f"/api/v1/agents/{admin.id}", json={"role": "agent"}, headers=ws.admin.headers)
        assert r.status_code == 200
        # The old token still says admin: refused, not obeyed.
        _problem(await client.get("/api/v1/notifications/deliveries", headers=self.bearer(tokens)), 401,
                 "role_changed")
        refreshed = (await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})).json()
        assert (await client.get("/api/v1/me", headers=self.bearer(refreshed))).json()["role"] == "agent"
        _problem(await client.get("/api/v1/notifications/deliveries", headers=self.bearer(refreshed)), 403)

    async def test_signing_out_ends_the_access_token_too(self, client):
        ws = await make_workspace(client)
        customer = await ws.customer()
        tokens = await ws.login(customer.email)
        other_device = await ws.login(customer.email)
        assert (await client.get("/api/v1/me", headers=self.bearer(tokens))).status_code == 200
        r = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 204
        _problem(await client.get("/api/v1/me", headers=self.bearer(tokens)), 401, "signed_out")
        assert (await client.get("/api/v1/me", headers=self.bearer(other_device))).status_code == 200

    async def test_a_change_made_by_another_process_is_seen_within_seconds(self, client, runtime, monkeypatch):
        import asyncio

        from sqlalchemy import update

        from relaydesk.identity.standing import standing

        ws = await make_workspace(client)
        agent = await ws.staff()
        tokens = await ws.login(agent.email)
        assert (await client.get("/api/v1/me", headers=self.bearer(tokens))).status_code == 200
        monkeypatch.setattr(standing, "seconds", 0.2)
        async with runtime.db.write_session() as session:  # as another server would: straight to the database
            await session.execute(update(User).where(User.email == agent.email).values(is_active=False))
            await session.commit()
        assert (await client.get("/api/v1/me", headers=self.bearer(tokens))).status_code == 200  # read just now
        await asyncio.sleep(0.25)
        _problem(await client.get("/api/v1/me", headers=self.bearer(tokens)), 401, "account_inactive")


class TestRefresh:
    async def test_rotation_and_reuse_detection(self, client):
        ws = await make_workspace(client)
        first = await ws.login(ws.admin.email)
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert r.status_code == 200
        second = r.json()
        assert second["refresh_token"] != first["refresh_token"]
        me = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {second['access_token']}"})
        assert me.status_code == 200
        # The first token comes back: somebody copied it. Both it and its successor die.
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
        _problem(r, 401, "refresh_token_reused")
        r = await client.post("/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
        _problem(r, 401)

    async def test_logout_ends_the_session(self, client):
        ws = await make_workspace(client)
        tokens = await ws.login(ws.admin.email)
        r = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]})
        assert r.status_code == 204
        _problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)

    async def test_expired_refresh_token(self, client, clock, runtime):
        ws = await make_workspace(client)
        tokens = await ws.login(ws.admin.email)
        clock.advance(timedelta(seconds=runtime.settings.refresh_token_ttl_seconds + 1))
        _problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)

    async def test_deactivated_user_cannot_refresh_or_sign_in(self, client):
        ws = await make_workspace(client)
        agent = await ws.staff()
        tokens = await ws.login(agent.email)
        r = await client.patch(f"/api/v1/agents/{agent.id}", json={"is_active": False}, headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["is_active"] is False
        _problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
        r = await client.post("/api/v1/auth/login", json={"email": agent.email, "password": PASSWORD,
                                                          "workspace": ws.slug})
        _problem(r, 401)


    async def test_a_new_password_ends_the_sessions_signed_in_with_the_old_one(self, client):
        ws = await make_workspace(client)
        customer = await ws.customer()
        tokens = await ws.login(customer.email)
        r = await client.patch(f"/api/v1/customers/{customer.customer_id}", headers=ws.admin.headers,
                               json={"password": "a brand new passphrase"})
        assert r.status_code == 200, r.text
        _problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}), 401)
        r = await client.post("/api/v1/auth/login", json={"email": customer.email, "password": "a brand new passphrase",
                                                          "workspace": ws.slug})
        assert r.status_code == 200

    async def test_the_last_active_admin_stays_an_admin(self, client):
        ws = await make_workspace(client)
        me = (await client.get("/api/v1/me", headers=ws.admin.headers)).json()["id"]
        for change, field in (({"role": "agent"}, "role"), ({"role": "supervisor"}, "role")):
            r = await client.patch(f"/api/v1/agents/{me}", json=change, headers=ws.admin.headers)
            assert r.status_code == 409 and r.json()["code"] == "last_admin", r.text
            assert r.json()["errors"][0]["field"] == field
        assert (await client.get("/api/v1/me", headers=ws.admin.headers)).json()["role"] == "admin"
        # With a second admin, either may step down, but not both.
        other = await ws.staff("admin")
        r = await client.patch(f"/api/v1/agents/{me}", json={"role": "agent"}, headers=ws.admin.headers)
        assert r.status_code == 200 and r.json()["role"] == "agent"
        r = await client.patch(f"/api/v1/agents/{other.id}", json={"role": "agent"}, headers=other.headers)
        assert r.status_code == 409 and r.json()["code"] == "last_admin"
        r = await client.patch(f"/api/v1/agents/{me}", json={"is_active": False}, headers=other.headers)
        assert r.status_code == 200  # an agent now, so not the last admin


class TestApiTokens:
    async def test_create_use_list_revoke(self, client):
        ws = await make_workspace(client)
        agent = await ws.staff()
        r = await client.post("/api/v1/me/api-tokens", json={"name": "Shopify sync"}, headers=agent.headers)
        assert r.status_code == 201
        created = r.json()
        secret = created["token"]
        assert secret.startswith("rdk_") and created["prefix"] == secret[:10]
        api = {"Authorization": f"Bearer {secret}"}
        assert (await client.get("/api/v1/me", headers=api)).json()["id"] == agent.id
        listed = (await client.get("/api/v1/me/api-tokens", headers=agent.headers)).json()
        assert [t["name"] for t in listed] == ["Shopify sync"] and "token" not in listed[0]
        other = await ws.staff()
        r = await client.delete(f"/api/v1/me/api-tokens/{created['id']}", headers=other.headers)
        _problem(r, 404)
        assert (await client.delete(f"/api/v1/me/api-tokens/{created['id']}", headers=agent.headers)).status_code == 204
        _problem(await client.get("/api/v1/me", headers=api), 401)

    async def test_expiry(self, client, clock):
        ws = await make_workspace(client)
        expires = (clock.now() + timedelta(hours=1)).isoformat()
        r = await client.post("/api/v1/me/api-tokens", json={"name": "short", "expires_at": expires},
                              headers=ws.admin.headers)
        api = {"Authorization": f"Bearer {r.json()['token']}"}
        assert (await client.get("/api/v1/me", headers=api)).status_code == 200
        clock.advance(timedelta(hours=2))
        _problem(await client.get("/api/v1/me", headers=api), 401)
        r = await client.post("/api/v1/me/api-tokens", json={"name": "past", "expires_at": "2020-01-01T00:00:00Z"},
                              headers={"Authorization": f"Bearer {(await ws.login(ws.admin.email))['access_token']}"})
        _problem(r, 422)
        assert r.json()["errors"][0]["field"] == "expires_at"

    async def test_an_api_token_cannot_make_or_manage_api_tokens(self, client):
        ws = await make_workspace(client)
        agent = await ws.staff()
        parent = (await client.post("/api/v1/me/api-tokens", json={"name": "parent"}, headers=agent.headers)).json()
        api = {"Authorization": f"Bearer {parent['token']}"}
        # A leaked token must not outlive its revocation by minting a child.
        r = await client.post("/api/v1/me/api-tokens", json={"name": "child"}, headers=api)
        _problem(r, 403, "session_required")
        _problem(await client.get("/api/v1/me/api-tokens", headers=api), 403, "session_required")
        _problem(await client.delete(f"/api/v1/me/api-tokens/{parent['id']}", headers=api), 403, "session_required")
        listed = (await client.get("/api/v1/me/api-tokens", headers=agent.headers)).json()
        assert [t["name"] for t in listed] == ["parent"]


NEW_PASSWORD = "a brand new passphrase"


def _field(r, field):
    _problem(r, 422)
    assert [e["field"] for e in r.json()["errors"]] == [field], r.json()


class TestOwnPassword:
    async def test_a_customer_changes_their_password_and_their_other_sessions_end(self, client, settle, mail):
        ws = await make_workspace(client)
        customer = await ws.customer()
        elsewhere = await ws.login(customer.email)
        r = await client.post("/api/v1/me/password", headers=customer.headers,
                              json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        assert r.status_code == 200, r.text
        fresh = {"Authorization": f"Bearer {r.json()['access_token']}"}
        assert (await client.get("/api/v1/me", headers=fresh)).json()["id"] == customer.id
        _problem(await client.get("/api/v1/me", headers=customer.headers), 401)
        _problem(await client.get("/api/v1/me", headers={"Authorization": f"Bearer {elsewhere['access_token']}"}), 401)
        _problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": elsewhere["refresh_token"]}), 401)
        _problem(await client.post("/api/v1/auth/login", json={"email": customer.email, "password": PASSWORD,
                                                               "workspace": ws.slug}), 401)
        assert (await ws.login(customer.email, NEW_PASSWORD))["user"]["id"] == customer.id
        await settle()
        [email] = to(mail, customer.email)
        assert "password" in email["Subject"].lower()
        assert "password was changed" in email.message.get_body(("plain",)).get_content()

    async def test_a_wrong_current_password_a_weak_new_one_or_an_api_token_is_refused(self, client, runtime):
        ws = await make_workspace(client)
        agent = await ws.staff()
        r = await client.post("/api/v1/me/password", headers=agent.headers,
                              json={"current_password": PASSWORD, "new_password": "short"})
        _field(r, "new_password")
        api = (await client.post("/api/v1/me/api-tokens", json={"name": "ci"}, headers=agent.headers)).json()
        r = await client.post("/api/v1/me/password", headers={"Authorization": f"Bearer {api['token']}"},
                              json={"current_password": PASSWORD, "new_password": NEW_PASSWORD})
        _problem(r, 403, "session_required")
        # Guessing the current password here is guessing at the sign-in: it counts there.
        for _ in range(runtime.settings.login_slowdown_after):
            r = await client.post("/api/v1/me/password", headers=agent.headers,
                                  json={"current_password": "not the password", "new_password": NEW_PASSWORD})
            _field(r, "current_password")
        r = await client.post("/api/v1/auth/login", json={"email": agent.email, "password": PASSWORD,
                                                          "workspace": ws.slug})
        _problem(r, 429, "login_throttled")


def _reset_token(sink, address):
    [email] = to(sink, address)
    sink.remove(email)
    found = re.search(r"rdp_[\w-]+", email.message.get_body(("plain",)).get_content())
    assert found, email.message.get_body(("plain",)).get_content()
    return found.group(0)


class TestPasswordReset:
    async def test_a_customer_without_a_password_sets_one_through_the_emailed_token(self, client, settle, mail):
        ws = await make_workspace(client)
        customer = await ws.customer(login=False)
        r = await client.post("/api/v1/auth/password-reset", json={"workspace": ws.slug, "email": customer.email})
        assert r.status_code == 202, r.text
        await settle()
        token = _reset_token(mail, customer.email)
        r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "short"})
        _field(r, "new_password")
        r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token,
                                                                           "new_password": NEW_PASSWORD})
        assert r.status_code == 204, r.text
        assert (await ws.login(customer.email, NEW_PASSWORD))["user"]["role"] == "customer"
        # Single use: whoever reads the email later cannot set another.
        r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": PASSWORD})
        _field(r, "token")
        await settle()
        [email] = to(mail, customer.email)
        assert "password was changed" in email.message.get_body(("plain",)).get_content()

    async def test_a_reset_ends_every_session(self, client, settle, mail):
        ws = await make_workspace(client)
        agent = await ws.staff()
        session = await ws.login(agent.email)
        await client.post("/api/v1/auth/password-reset", json={"workspace": ws.slug, "email": agent.email.upper()})
        await settle()
        r = await client.post("/api/v1/auth/password-reset/confirm",
                              json={"token": _reset_token(mail, agent.email), "new_password": NEW_PASSWORD})
        assert r.status_code == 204, r.text
        _problem(await client.get("/api/v1/me", headers=agent.headers), 401)
        _problem(await client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}), 401)

    async def test_unknown_addresses_and_workspaces_get_the_same_answer_and_no_email(self, client, settle, mail):
        ws = await make_workspace(client)
        answers = []
        for body in ({"workspace": ws.slug, "email": ws.admin.email},
                     {"workspace": ws.slug, "email": "nobody@acme.example.com"},
                     {"workspace": "no-such-workspace", "email": ws.admin.email}):
            r = await client.post("/api/v1/auth/password-reset", json=body)
            answers.append((r.status_code, r.text))
        assert len(set(answers)) == 1 and answers[0][0] == 202
        await settle()
        assert [m.rcpt_tos for m in mail.messages] == [[ws.admin.email]]

    async def test_a_wrong_or_expired_token_is_refused(self, client, settle, mail, clock):
        ws = await make_workspace(client)
        await client.post("/api/v1/auth/password-reset", json={"workspace": ws.slug, "email": ws.admin.email})
        await settle()
        token = _reset_token(mail, ws.admin.email)
        r = await client.post("/api/v1/auth/password-reset/confirm",
                              json={"token": token[:-2] + "xx", "new_password": NEW_PASSWORD})
        _field(r, "token")
        clock.advance(timedelta(hours=2))
        r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD})
        _field(r, "token")
        assert (await ws.login(ws.admin.email))["access_token"]

    async def test_an_address_is_sent_only_a_few_a_while(self, client):
        ws = await make_workspace(client)
        body = {"workspace": ws.slug, "email": "someone@acme.example.com"}
        for _ in range(3):
            assert (await client.post("/api/v1/auth/password-reset", json=body)).status_code == 202
        _problem(await client.post("/api/v1/auth/password-reset", json=body), 429, "rate_limited")


class TestStaffChangingACustomersSignIn:
    async def test_only_an_admin_sets_a_customers_password_and_the_customer_is_told(self, client, settle, mail):
        ws = await make_workspace(client)
        customer = await ws.customer()
        for role in ("agent", "supervisor"):
            staff = await ws.staff(role)
            # Else whoever answers tickets could sign in as any customer.
            r = await client.patch(f"/api/v1/customers/{customer.customer_id}", headers=staff.headers,
                                   json={"password": NEW_PASSWORD})
            _problem(r, 403)
            assert r.json()["errors"][0]["field"] == "password", r.json()
            r = await client.post("/api/v1/customers", headers=staff.headers, json={
                "name": "Quiet Takeover", "email": f"takeover-{role}@customers.example.com", "password": NEW_PASSWORD})
            _problem(r, 403)
        assert (await ws.login(customer.email))["user"]["id"] == customer.id
        await settle()
        assert to(mail, customer.email) == []
        r = await client.patch(f"/api/v1/customers/{customer.customer_id}", headers=ws.admin.headers,
                               json={"password": NEW_PASSWORD})
        assert r.status_code == 200, r.text
        await settle()
        [email] = to(mail, customer.email)
        assert "password was changed" in email.message.get_body(("plain",)).get_content()

    async def test_a_customer_is_told_at_the_old_and_new_address_when_staff_change_it(self, client, settle, mail):
        ws = await make_workspace(client)
        agent = await ws.staff()
        customer = await ws.customer()
        new_address = f"moved-{customer.email}"
        r = await client.patch(f"/api/v1/customers/{customer.customer_id}", headers=agent.headers,
                               json={"email": new_address})
        assert r.status_code == 200, r.text
        await settle()
        for address in (customer.email, new_address):
            [email] = to(mail, address)
            text = email.message.get_body(("plain",)).get_content()
            assert customer.email in text and new_address in text, text


class TestSignup:
    async def test_signup_creates_workspace_and_admin(self, client):
        r = await client.post("/api/v1/workspaces", json={"name": "Ünïcode Shop!", "admin_name": "Kim",
                                                          "admin_email": "kim@shop.example.com",
                                                          "admin_password": PASSWORD})
        assert r.status_code == 201
        body = r.json()
        assert body["workspace"]["slug"].startswith("unicode-shop")
        assert body["admin"]["role"] == "admin" and body["admin"]["email"] == "kim@shop.example.com"

    async def test_same_name_gets_a_distinct_slug(self, client):
        bodies = [(await client.post("/api/v1/workspaces", json={
            "name": "Twin Shop", "admin_name": "A", "admin_email": f"a{i}@twin.example.com",
            "admin_password": PASSWORD})).json() for i in range(2)]
        assert bodies[0]["workspace"]["slug"] != bodies[1]["workspace"]["slug"]

    @pytest.mark.parametrize("name", ["Postmaster", "Abuse", "Mailer Daemon", "Hostmaster", "No-Reply", "Relaydesk"])
    async def test_a_name_that_slugs_to_a_role_address_gets_another_slug(self, client, name):
        """Each workspace receives mail at <slug>@<mail domain>: role and system addresses there
        (postmaster, abuse, ...) are the deployment's, never a stranger's inbox."""
        r = await client.post("/api/v1/workspaces", json={"name": name, "admin_name": "A",
                                                          "admin_email": "a@role.example.com",
                                                          "admin_password": PASSWORD})
        assert r.status_code == 201, r.text
        slug = r.json()["workspace"]["slug"]
        reserved = name.lower().replace(" ", "-")
        assert slug != reserved and slug.startswith(reserved + "-")

    async def test_a_vietnamese_name_keeps_its_letters_in_the_slug(self, client):
        r = await client.post("/api/v1/workspaces", json={"name": "Đơn Hàng Shop Øst Łódź Straße Æble Œuvre Þing",
                                                          "admin_name": "A", "admin_email": "a@don.example.com",
                                                          "admin_password": PASSWORD})
        assert r.status_code == 201, r.text
        assert r.json()["workspace"]["slug"].startswith("don-hang-shop-ost-lodz-strasse-aeble-oeuvre-thing")

    async def test_signup_can_be_switched_off(self, tmp_path):
        import httpx

        from conftest import test_settings
        from relaydesk.app import create_app
        from relaydesk.migrate import upgrade
        from relaydesk.runtime import build_runtime

        rt = build_runtime(test_settings(tmp_path, allow_signup=False))
        await upgrade(rt.db)
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(rt)),
                                         base_url="http://x") as c:
                r = await c.post("/api/v1/workspaces", json={"name": "X", "admin_name": "A",
                                                             "admin_email": "a@x.example.com",
                                                             "admin_password": PASSWORD})
            _problem(r, 403, "signup_disabled")
        finally:
            await rt.close()
