"""User accounts: create, list, change password or role, disable, unlock, TOTP enrolment."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

from sqlalchemy import Connection, delete, select, update
from sqlalchemy.exc import IntegrityError

from medweave.db import read_tx, write_tx
from medweave.errors import Conflict, InvalidInput, NotFound
from medweave.identity.core import Core, aware, user_from_row
from medweave.identity.model import User
from medweave.identity.policy import check_username, username_key
from medweave.identity.tables import login_throttle, user_sessions, users
from medweave.security import passwords, totp
from medweave.security.crypto import MasterKey
from medweave.security.principal import STAFF_ROLES, Role

_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def parse_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise InvalidInput(f"unknown role {role!r}; expected one of {names}", expression=["role"]) from None


def _check_links(role: Role, patient_id: str | None, practitioner_id: str | None) -> None:
    for name, value in (("patient", patient_id), ("practitioner", practitioner_id)):
        if value is not None and _FHIR_ID.fullmatch(value) is None:
            raise InvalidInput(f"{name} id {value!r} is not a FHIR id", expression=[name])
    if role == Role.PATIENT and not patient_id:
        raise InvalidInput(
            "a patient user must be linked to a Patient (--patient ID)", expression=["patient"]
        )
    if role == Role.PATIENT and practitioner_id:
        raise InvalidInput("a patient user cannot be linked to a Practitioner", expression=["practitioner"])
    if role in STAFF_ROLES and patient_id:
        raise InvalidInput(
            "staff users are not linked to a Patient; give the person a separate patient login",
            expression=["patient"],
        )


class UserAdmin(Core):
    def create_user(
        self,
        *,
        username: str,
        role: Role | str,
        password: str,
        patient_id: str | None = None,
        practitioner_id: str | None = None,
        now: datetime | None = None,
    ) -> User:
        """A new account; the password must pass the policy (NIST SP 800-63B), username as context."""
        name = check_username(username)
        kind = parse_role(role)
        _check_links(kind, patient_id, practitioner_id)
        passwords.check_policy(password, context=[name, *name.replace("@", ".").split(".")])
        at = aware(now)
        user_id = str(uuid.uuid4())
        row = {
            "id": user_id,
            "username": name,
            "username_key": username_key(name),
            "role": kind.value,
            "password_hash": passwords.hash_password(password),
            "patient_id": patient_id,
            "practitioner_id": practitioner_id,
            "totp_enabled": False,
            "disabled": False,
            "created": at,
            "password_changed": at,
        }
        try:
            with write_tx(self.engine) as conn:
                taken = conn.execute(
                    select(users.c.id).where(users.c.username_key == row["username_key"])
                ).first()
                if taken is not None:
                    raise Conflict(f"username {name!r} is taken")
                conn.execute(users.insert().values(**row))
                return user_from_row(self._user_row(conn, user_id))
        except IntegrityError as exc:  # a concurrent create of the same name
            raise Conflict(f"username {name!r} is taken") from exc

    def get_user(self, user_id: str) -> User:
        with read_tx(self.engine) as conn:
            return user_from_row(self._user_row(conn, user_id))

    def get_user_by_username(self, username: str) -> User:
        with read_tx(self.engine) as conn:
            row = conn.execute(select(users).where(users.c.username_key == username_key(username))).first()
        if row is None:
            raise NotFound(f"no user named {username!r}")
        return user_from_row(row)

    def list_users(self) -> list[User]:
        with read_tx(self.engine) as conn:
            rows = conn.execute(select(users).order_by(users.c.username_key)).all()
        return [user_from_row(r) for r in rows]

    def set_password(self, user_id: str, *, password: str, now: datetime | None = None) -> None:
        """Replace the password; every session of the user ends (OWASP Session Management)."""
        with write_tx(self.engine) as conn:
            user = user_from_row(self._user_row(conn, user_id))
            passwords.check_policy(password, context=[user.username])
            values = {"password_hash": passwords.hash_password(password), "password_changed": aware(now)}
            conn.execute(update(users).where(users.c.id == user_id).values(**values))
            self._end_sessions(conn, user_id)
        self.unlock(user.username)

    def set_role(self, user_id: str, role: Role | str) -> User:
        """Change among staff roles (a patient login stays a patient login); sessions end."""
        kind = parse_role(role)
        with write_tx(self.engine) as conn:
            user = user_from_row(self._user_row(conn, user_id))
            if (kind == Role.PATIENT) != (user.role == Role.PATIENT):
                raise InvalidInput("a user cannot move between the patient role and a staff role")
            conn.execute(update(users).where(users.c.id == user_id).values(role=kind.value))
            self._end_sessions(conn, user_id)
            return user_from_row(self._user_row(conn, user_id))

    def disable(self, user_id: str) -> None:
        """Refuse every sign-in, session and token of the user from now on (the row is kept for audit)."""
        self._set_disabled(user_id, True)

    def enable(self, user_id: str) -> None:
        self._set_disabled(user_id, False)

    def unlock(self, username: str) -> None:
        """Clear the lockout of a username (an admin action after the user proved who they are)."""
        with write_tx(self.engine) as conn:
            conn.execute(
                delete(login_throttle).where(
                    login_throttle.c.key == self._throttle_id("u", username_key(username))
                )
            )

    # -- TOTP enrolment -------------------------------------------------------------------------

    def begin_totp_enrolment(self, user_id: str) -> tuple[str, str]:
        """A new secret and its ``otpauth://`` URI for the QR code; it counts once confirmed.

        Refused when a factor is already enrolled: replacing one is ``reset_totp`` by an admin, so a
        stolen password alone cannot swap in the thief's authenticator.
        """
        secret = totp.new_secret()
        with write_tx(self.engine) as conn:
            user = user_from_row(self._user_row(conn, user_id))
            if user.totp_enabled:
                raise Conflict("a second factor is already enrolled; an admin can reset it")
            sealed = self._seal_totp(secret, user_id=user_id, pending=True)
            conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(totp_pending=sealed, totp_key_id=self.master.key_id)
            )
        return secret, totp.provisioning_uri(secret, account=user.username, issuer=self.totp_issuer)

    def confirm_totp_enrolment(self, user_id: str, code: str, *, now: datetime | None = None) -> bool:
        """Enrol the pending secret if ``code`` is a current code of it; False otherwise."""
        with write_tx(self.engine) as conn:
            row = self._user_row(conn, user_id)
            if row.totp_enabled or row.totp_pending is None:
                return False
            secret = self._open_totp(row.totp_pending, user_id=user_id, pending=True)
            step = totp.verify(secret, code, last_used_step=None, now=aware(now))
            if step is None:
                return False
            conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(
                    totp_secret=self._seal_totp(secret, user_id=user_id, pending=False),
                    totp_pending=None,
                    totp_enabled=True,
                    totp_last_step=step,
                    totp_key_id=self.master.key_id,
                )
            )
            return True

    def reset_totp(self, user_id: str) -> None:
        """Forget the user's second factor (a lost phone); staff must enrol again at next sign-in."""
        with write_tx(self.engine) as conn:
            self._user_row(conn, user_id)
            conn.execute(
                update(users)
                .where(users.c.id == user_id)
                .values(totp_secret=None, totp_pending=None, totp_enabled=False, totp_last_step=None)
            )
            self._end_sessions(conn, user_id)

    def rotate_master_key(self, *, old: MasterKey, new: MasterKey) -> int:
        """Re-seal TOTP secrets sealed under ``old`` with ``new``; idempotent, one transaction.

        Call it while both keys are at hand during ``medweave records rotate-master-key``.
        """
        with write_tx(self.engine) as conn:
            return self.rotate_master_key_in(conn, old=old, new=new)

    def rotate_master_key_in(self, conn: Connection, *, old: MasterKey, new: MasterKey) -> int:
        """``rotate_master_key`` inside the caller's transaction, so the record store's data keys
        and the TOTP secrets move to the new key together (all or nothing)."""
        n = 0
        rows = conn.execute(select(users).where(users.c.totp_key_id == old.key_id)).all()
        for row in rows:
            values: dict[str, object] = {"totp_key_id": new.key_id}
            for column, pending in (("totp_secret", False), ("totp_pending", True)):
                blob = row._mapping[column]
                if blob is not None:
                    secret = self._open_totp(blob, user_id=row.id, pending=pending, master=old)
                    values[column] = self._seal_totp(secret, user_id=row.id, pending=pending, master=new)
            conn.execute(update(users).where(users.c.id == row.id).values(**values))
            n += 1
        return n

    def _set_disabled(self, user_id: str, disabled: bool) -> None:
        with write_tx(self.engine) as conn:
            self._user_row(conn, user_id)
            conn.execute(update(users).where(users.c.id == user_id).values(disabled=disabled))
            if disabled:
                self._end_sessions(conn, user_id)

    @staticmethod
    def _end_sessions(conn: Connection, user_id: str) -> int:
        return conn.execute(delete(user_sessions).where(user_sessions.c.user_id == user_id)).rowcount


def totp_key_ids(conn: Connection) -> set[str]:
    """Ids of the master keys that seal stored TOTP secrets (normally exactly one)."""
    query = select(users.c.totp_key_id).where(users.c.totp_key_id.is_not(None)).distinct()
    return {row.totp_key_id for row in conn.execute(query)}
