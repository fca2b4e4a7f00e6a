"""Sign-in: password, then the second factor, under the lockout and throttling of ``policy``.

An unknown username and a wrong password give the same answer (``bad_credentials``) after the
same work: one argon2id verification (``passwords.verify_password`` hashes against a dummy when
there is no user) and the same counter update, keyed by the typed name whether or not it exists.
So neither the answer, the timing, nor the lockout tells whether an account exists. A disabled
account answers ``disabled`` only after the right password.

The lockout check and the failure count are two short transactions, so no database lock is held
during the deliberately slow hash; attempts already in flight when a name locks can overshoot the
limit by at most the number of concurrent requests, which the server bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from medweave.db import read_tx, write_tx
from medweave.identity.core import Core, aware, user_from_row
from medweave.identity.model import LoginResult, Reason, User
from medweave.identity.policy import ThrottleState, after_address_failure, after_user_failure, username_key
from medweave.identity.tables import login_throttle, users
from medweave.security import passwords, totp


class Logins(Core):
    def authenticate(
        self,
        *,
        username: str,
        password: str,
        totp_code: str | None = None,
        address: str | None = None,
        now: datetime | None = None,
    ) -> LoginResult:
        """One sign-in attempt. Staff must pass TOTP; a staff user without one must enrol first."""
        at = aware(now)
        ukey, akey = self._keys(username, address)
        with read_tx(self.engine) as conn:
            blocked = self._blocked(conn, ukey, akey, at)
            row = conn.execute(select(users).where(users.c.username_key == username_key(username))).first()
        if blocked is not None:
            return LoginResult(False, blocked)
        if not passwords.verify_password(row.password_hash if row is not None else None, password):
            return self._fail(ukey, akey, at, "bad_credentials")
        assert row is not None
        user = user_from_row(row)
        if user.disabled:
            return LoginResult(False, "disabled", user)
        if passwords.needs_rehash(row.password_hash):
            with write_tx(self.engine) as conn:
                new_hash = passwords.hash_password(password)
                conn.execute(update(users).where(users.c.id == user.id).values(password_hash=new_hash))
        if row.totp_enabled:
            if totp_code is None:
                return LoginResult(False, "totp_required", user)
            return self._second_factor(user, totp_code, ukey, akey, at)
        if user.is_staff:
            return LoginResult(False, "totp_enrolment_required", user)
        return self._succeed(user, ukey, at, mfa=False)

    def complete_totp(
        self, *, user_id: str, code: str, address: str | None = None, now: datetime | None = None
    ) -> LoginResult:
        """The second step of a two-page sign-in, after ``authenticate`` answered ``totp_required``."""
        at = aware(now)
        with read_tx(self.engine) as conn:
            user = user_from_row(self._user_row(conn, user_id))
            ukey, akey = self._keys(user.username, address)
            blocked = self._blocked(conn, ukey, akey, at)
        if blocked is not None:
            return LoginResult(False, blocked)
        if user.disabled:
            return LoginResult(False, "disabled", user)
        if not user.totp_enabled:
            return LoginResult(False, "totp_enrolment_required" if user.is_staff else "bad_totp", user)
        return self._second_factor(user, code, ukey, akey, at)

    # -- steps ----------------------------------------------------------------------------------

    def _keys(self, username: str, address: str | None) -> tuple[str, str | None]:
        ukey = self._throttle_id("u", username_key(username))
        return ukey, (self._throttle_id("a", address) if address else None)

    def _second_factor(self, user: User, code: str, ukey: str, akey: str | None, at: datetime) -> LoginResult:
        with write_tx(self.engine) as conn:
            row = conn.execute(select(users).where(users.c.id == user.id).with_for_update()).one()
            secret = self._open_totp(row.totp_secret, user_id=user.id, pending=False)
            step = totp.verify(secret, code, last_used_step=row.totp_last_step, now=at)
            if step is not None:
                conn.execute(update(users).where(users.c.id == user.id).values(totp_last_step=step))
        if step is None:
            result = self._fail(ukey, akey, at, "bad_totp")
            return LoginResult(False, result.reason, user if result.reason == "bad_totp" else None)
        return self._succeed(user, ukey, at, mfa=True)

    def _succeed(self, user: User, ukey: str, at: datetime, *, mfa: bool) -> LoginResult:
        with write_tx(self.engine) as conn:
            conn.execute(delete(login_throttle).where(login_throttle.c.key == ukey))
            conn.execute(update(users).where(users.c.id == user.id).values(last_login=at))
        return LoginResult(True, "ok", user, mfa=mfa)

    def _fail(self, ukey: str, akey: str | None, at: datetime, reason: Reason) -> LoginResult:
        """Count a failure against the name and the address; say ``locked`` if this one locked it."""
        with write_tx(self.engine) as conn:
            state = _bump(conn, ukey, at, lambda s: after_user_failure(s, at, self.lockout))
            if akey is not None:
                _bump(conn, akey, at, lambda s: after_address_failure(s, at, self.lockout))
        if state.locked(at):
            return LoginResult(False, "locked")
        return LoginResult(False, reason)

    @staticmethod
    def _blocked(conn: Connection, ukey: str, akey: str | None, at: datetime) -> Reason | None:
        keys = [ukey] if akey is None else [ukey, akey]
        rows = {
            r.key: _state(r)
            for r in conn.execute(select(login_throttle).where(login_throttle.c.key.in_(keys)))
        }
        if akey is not None and akey in rows and rows[akey].locked(at):
            return "throttled"
        if ukey in rows and rows[ukey].locked(at):
            return "locked"
        return None


def _state(row: Row[Any]) -> ThrottleState:
    return ThrottleState(row.consecutive, row.window_start, row.window_failures, row.locked_until)


def _bump(
    conn: Connection, key: str, at: datetime, step: Callable[[ThrottleState], ThrottleState]
) -> ThrottleState:
    """Apply one failure to a throttle row under its lock, creating the row if it is new."""
    values = {"key": key, "consecutive": 0, "window_failures": 0, "updated": at}
    if conn.dialect.name == "postgresql":
        conn.execute(postgresql.insert(login_throttle).values(**values).on_conflict_do_nothing())
    else:
        conn.execute(sqlite.insert(login_throttle).values(**values).on_conflict_do_nothing())
    row = conn.execute(select(login_throttle).where(login_throttle.c.key == key).with_for_update()).one()
    new = step(_state(row))
    conn.execute(
        update(login_throttle)
        .where(login_throttle.c.key == key)
        .values(
            consecutive=new.consecutive,
            window_start=new.window_start,
            window_failures=new.window_failures,
            locked_until=new.locked_until,
            updated=at,
        )
    )
    return new
