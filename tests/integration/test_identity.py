"""Identity against real SQLite and PostgreSQL: sign-in, lockout, TOTP, sessions, break-glass, OAuth."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from medweave.db import read_tx
from medweave.errors import Conflict, InvalidInput, PermissionDenied, Unauthenticated
from medweave.identity import CodeGrant, IdentityService, InvalidGrant, User, check_csrf
from medweave.identity.pkce import s256
from medweave.identity.tables import login_throttle, user_sessions, users
from medweave.security import tokens, totp
from medweave.security.crypto import MasterKey

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
PW = "correct horse battery staple"
SECRET = b"k" * 32
ISS, AUD = "http://testserver", "http://testserver/fhir"


@pytest.fixture
def ids(engine: Engine) -> IdentityService:
    return IdentityService(engine=engine, master=MasterKey.generate())


def staff(ids: IdentityService, name: str = "drwho", role: str = "clinician") -> tuple[User, str]:
    """A staff user with TOTP enrolled at T0; returns the user and the TOTP secret."""
    user = ids.create_user(username=name, role=role, password=PW, practitioner_id=f"pr-{name}", now=T0)
    secret, uri = ids.begin_totp_enrolment(user.id)
    assert uri.startswith("otpauth://totp/")
    assert ids.confirm_totp_enrolment(user.id, totp.code_for(secret, now=T0), now=T0)
    return ids.get_user(user.id), secret


def wrong_code(secret: str, at: datetime) -> str:
    """A well-formed code that no step in the accepted window produces."""
    near = {totp.code_for(secret, now=at + timedelta(seconds=30 * k)) for k in (-1, 0, 1)}
    return next(c for c in ("123456", "654321", "111111", "222222") if c not in near)


def test_password_login_and_case_insensitive_usernames(ids: IdentityService) -> None:
    ids.create_user(username="Alice", role="patient", password=PW, patient_id="p1")
    ok = ids.authenticate(username="ALICE", password=PW, address="10.0.0.1")
    assert ok.ok and ok.reason == "ok" and ok.user is not None and ok.user.patient_id == "p1"
    bad = ids.authenticate(username="alice", password=PW + "x")
    assert not bad.ok and bad.reason == "bad_credentials" and bad.user is None
    with pytest.raises(Conflict):
        ids.create_user(username="alice", role="patient", password=PW, patient_id="p2")
    with pytest.raises(InvalidInput):
        ids.create_user(username="bob", role="patient", password=PW)  # no patient link
    with pytest.raises(InvalidInput):
        ids.create_user(username="bobby", role="clinician", password="bobby1234567")  # the username


def test_unknown_user_and_wrong_password_look_the_same(ids: IdentityService) -> None:
    ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    for name in ("alice", "nobody"):
        answers = [ids.authenticate(username=name, password="wrong password!", now=T0) for _ in range(5)]
        assert [a.reason for a in answers] == ["bad_credentials"] * 4 + ["locked"]
        assert all(a.user is None for a in answers)
        assert ids.authenticate(username=name, password=PW, now=T0).reason == "locked"


def test_lockout_after_five_failures_and_unlock_after_the_window(ids: IdentityService) -> None:
    ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    for _ in range(5):
        ids.authenticate(username="alice", password="not the password", now=T0)
    assert ids.authenticate(username="alice", password=PW, now=T0 + timedelta(minutes=14)).reason == "locked"
    assert ids.authenticate(username="alice", password=PW, now=T0 + timedelta(minutes=15)).ok
    # a success clears the count: four more failures do not lock
    for _ in range(4):
        ids.authenticate(username="alice", password="not the password", now=T0 + timedelta(minutes=16))
    assert ids.authenticate(username="alice", password=PW, now=T0 + timedelta(minutes=16)).ok
    for _ in range(5):
        ids.authenticate(username="alice", password="not the password", now=T0 + timedelta(minutes=17))
    ids.unlock("ALICE")
    assert ids.authenticate(username="alice", password=PW, now=T0 + timedelta(minutes=17)).ok


def test_per_address_throttling(ids: IdentityService) -> None:
    ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    for i in range(20):  # password spraying: a different name each time, never five on one name
        ids.authenticate(username=f"user{i}", password="Spring2025!!", address="203.0.113.9", now=T0)
    refused = ids.authenticate(username="alice", password=PW, address="203.0.113.9", now=T0)
    assert refused.reason == "throttled" and not refused.ok
    assert ids.authenticate(username="alice", password=PW, address="198.51.100.7", now=T0).ok
    assert ids.authenticate(
        username="alice", password=PW, address="203.0.113.9", now=T0 + timedelta(minutes=15)
    ).ok


def test_totp_required_for_staff_enrolment_and_replay(ids: IdentityService) -> None:
    user = ids.create_user(username="drwho", role="clinician", password=PW, practitioner_id="pr1")
    first = ids.authenticate(username="drwho", password=PW, now=T0)
    assert first.reason == "totp_enrolment_required" and first.user == user and not first.ok
    assert ids.authenticate(username="drwho", password="bad password!!", now=T0).reason == "bad_credentials"
    secret, _ = ids.begin_totp_enrolment(user.id)
    assert not ids.confirm_totp_enrolment(user.id, wrong_code(secret, T0), now=T0)
    assert ids.confirm_totp_enrolment(user.id, totp.code_for(secret, now=T0), now=T0)
    with pytest.raises(Conflict):
        ids.begin_totp_enrolment(user.id)  # replacing a factor needs an admin reset
    with read_tx(ids.engine) as conn:
        stored = conn.execute(select(users.c.totp_secret).where(users.c.id == user.id)).scalar_one()
    assert secret.encode() not in stored  # sealed, not plain
    at = T0 + timedelta(minutes=1)
    assert ids.authenticate(username="drwho", password=PW, now=at).reason == "totp_required"
    code = totp.code_for(secret, now=at)
    ok = ids.authenticate(username="drwho", password=PW, totp_code=code, now=at)
    assert ok.ok and ok.mfa
    replay = ids.authenticate(username="drwho", password=PW, totp_code=code, now=at)
    assert replay.reason == "bad_totp" and not replay.ok
    later = at + timedelta(seconds=60)
    assert ids.complete_totp(user_id=user.id, code=totp.code_for(secret, now=later), now=later).ok


def test_bad_totp_counts_towards_the_lockout(ids: IdentityService) -> None:
    user, secret = staff(ids)
    wrong = wrong_code(secret, T0)
    reasons = [
        ids.authenticate(username="drwho", password=PW, totp_code=wrong, now=T0).reason for _ in range(5)
    ]
    assert reasons == ["bad_totp"] * 4 + ["locked"]
    good = totp.code_for(secret, now=T0 + timedelta(minutes=1))
    assert ids.complete_totp(user_id=user.id, code=good, now=T0 + timedelta(minutes=1)).reason == "locked"


def test_disabled_user_is_told_only_after_the_right_password(ids: IdentityService) -> None:
    user = ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    token, _ = ids.create_session(user.id, mfa=False, now=T0)
    ids.disable(user.id)
    assert ids.authenticate(username="alice", password="wrong password!").reason == "bad_credentials"
    assert ids.authenticate(username="alice", password=PW).reason == "disabled"
    assert ids.load_session(token, now=T0) is None


def test_session_idle_and_absolute_expiry(ids: IdentityService) -> None:
    user = ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    token, csrf = ids.create_session(user.id, mfa=False, address="10.0.0.1", now=T0)
    session = ids.load_session(token, now=T0 + timedelta(minutes=14))
    assert session is not None and session.user.id == user.id and session.csrf_token == csrf
    at = T0 + timedelta(minutes=14)
    while at < T0 + timedelta(hours=8) - timedelta(minutes=14):  # active all day: slides
        at += timedelta(minutes=14)
        assert ids.load_session(token, now=at) is not None
    assert ids.load_session(token, now=T0 + timedelta(hours=8)) is None  # absolute lifetime
    token2, _ = ids.create_session(user.id, mfa=False, now=T0)
    assert ids.load_session(token2, now=T0 + timedelta(minutes=15)) is None  # idle
    assert ids.load_session(token2, now=T0) is None  # and gone for good
    token3, _ = ids.create_session(user.id, mfa=False, now=T0)
    ids.end_session(token3)
    assert ids.load_session(token3, now=T0) is None
    assert ids.load_session("forged", now=T0) is None


def test_csrf_check(ids: IdentityService) -> None:
    user = ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    token, csrf = ids.create_session(user.id, mfa=False, now=T0)
    other_token, other_csrf = ids.create_session(user.id, mfa=False, now=T0)
    session = ids.load_session(token, now=T0)
    assert session is not None
    assert check_csrf(session, csrf)
    assert not check_csrf(session, other_csrf)
    assert (
        not check_csrf(session, None) and not check_csrf(session, "") and not check_csrf(session, csrf[:-1])
    )
    assert ids.end_all_sessions(user.id) == 2 and ids.load_session(other_token, now=T0) is None


def test_break_glass_reason_expiry_and_review(ids: IdentityService) -> None:
    doc, _ = staff(ids)
    admin, _ = staff(ids, "root", "admin")
    admin2, _ = staff(ids, "root2", "admin")
    with pytest.raises(InvalidInput):
        ids.start_break_glass(user_id=doc.id, patient_id="p1", reason="urgent", now=T0)
    grant = ids.start_break_glass(
        user_id=doc.id, patient_id="p1", reason="unconscious in ED", minutes=30, now=T0
    )
    assert grant.active(T0) and not grant.active(T0 + timedelta(minutes=30))
    assert [g.id for g in ids.active_grants(doc.id, now=T0)] == [grant.id]
    assert ids.active_grants(doc.id, now=T0 + timedelta(minutes=30)) == []
    assert [g.id for g in ids.pending_reviews()] == [grant.id]
    with pytest.raises(PermissionDenied):
        ids.review(grant.id, reviewer_id=doc.id, note="fine")  # not an admin
    own = ids.start_break_glass(user_id=admin.id, patient_id="p2", reason="checking a complaint", now=T0)
    with pytest.raises(PermissionDenied):
        ids.review(own.id, reviewer_id=admin.id, note="fine")  # not the same user
    reviewed = ids.review(grant.id, reviewer_id=admin.id, note="justified", now=T0)
    assert reviewed.reviewed_by == admin.id and not reviewed.pending_review
    with pytest.raises(Conflict):
        ids.review(grant.id, reviewer_id=admin2.id, note="again")
    assert [g.id for g in ids.pending_reviews()] == [own.id]
    patient = ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    with pytest.raises(PermissionDenied):
        ids.start_break_glass(user_id=patient.id, patient_id="p9", reason="i am curious!!", now=T0)


def test_principal_for_session_has_active_grants_only(ids: IdentityService) -> None:
    doc, _ = staff(ids)
    other, _ = staff(ids, "nurse")
    ids.start_break_glass(user_id=doc.id, patient_id="live", reason="unconscious in ED", now=T0)
    ids.start_break_glass(
        user_id=doc.id, patient_id="old", reason="yesterday's case", minutes=5, now=T0 - timedelta(hours=1)
    )
    ended = ids.start_break_glass(user_id=doc.id, patient_id="ended", reason="finished with it", now=T0)
    ids.end_break_glass(ended.id, now=T0)
    ids.start_break_glass(user_id=other.id, patient_id="theirs", reason="someone else's", now=T0)
    pending, _ = ids.create_session(doc.id, mfa=False, now=T0)
    half = ids.load_session(pending, now=T0)
    assert half is not None and half.needs_second_factor
    with pytest.raises(Unauthenticated):
        ids.principal_for_session(half, now=T0)
    token, _ = ids.create_session(doc.id, mfa=True, address="10.1.1.1", now=T0)
    session = ids.load_session(token, now=T0)
    assert session is not None
    principal = ids.principal_for_session(session, now=T0)
    assert principal.break_glass == frozenset({"live"})
    bare = replace(principal, break_glass=frozenset())
    assert ids.with_break_glass(bare, now=T0).break_glass == frozenset({"live"})
    assert principal.subject == doc.id and principal.address == "10.1.1.1"
    assert principal.practitioner_id == "pr-drwho" and principal.scopes.allows("Observation", "create")


def test_auth_code_with_pkce(ids: IdentityService) -> None:
    user = ids.create_user(username="alice", role="patient", password=PW, patient_id="p1")
    app = ids.register_client(
        name="growth-chart",
        redirect_uris=["https://app.example/cb"],
        scopes="patient/*.rs launch/patient openid fhirUser",
    ).client
    verifier = "v" * 20 + "-._~" + "0123456789abcdefghijklm"

    def code(**kw: object) -> str:
        args = {
            "client_id": app.id,
            "user_id": user.id,
            "redirect_uri": "https://app.example/cb",
            "scope": "patient/Observation.rs patient/Condition.cruds openid",
            "code_challenge": s256(verifier),
            "now": T0,
        }
        return ids.create_auth_code(**{**args, **kw})

    def redeem(c: str, **kw: object) -> CodeGrant:
        args = {
            "client_id": app.id,
            "code": c,
            "redirect_uri": "https://app.example/cb",
            "code_verifier": verifier,
            "now": T0 + timedelta(seconds=5),
        }
        return ids.redeem_auth_code(**{**args, **kw})

    first = code()
    grant = redeem(first)
    assert grant.scope == "openid patient/Condition.rs patient/Observation.rs"
    assert grant.patient_id == "p1" and grant.user.id == user.id
    with pytest.raises(InvalidGrant, match="already been used"):
        redeem(first)
    wrong = code()
    with pytest.raises(InvalidGrant, match="code_verifier"):
        redeem(wrong, code_verifier="w" * 43)
    with pytest.raises(InvalidGrant):
        redeem(wrong)  # a failed attempt spent it
    with pytest.raises(InvalidGrant, match="expired"):
        redeem(code(), now=T0 + timedelta(seconds=60))
    with pytest.raises(InvalidGrant, match="redirect_uri"):
        redeem(code(), redirect_uri="https://app.example/other")
    with pytest.raises(InvalidGrant):
        redeem("not-a-code")
    with pytest.raises(InvalidInput):
        code(code_challenge_method="plain", code_challenge=verifier)
    with pytest.raises(InvalidInput):
        code(redirect_uri="https://evil.example/cb")


def test_tokens_are_narrowed_and_follow_the_user(ids: IdentityService) -> None:
    analyst = ids.create_user(username="ana", role="data_scientist", password=PW)
    token = ids.issue_token(
        username="ana", scopes="user/*.cruds", ttl=timedelta(hours=1), secret=SECRET, issuer=ISS, audience=AUD
    )
    claims = tokens.verify(token, secret=SECRET, audience=AUD, issuer=ISS)
    assert claims.scope == "user/*.rs" and claims.kind == "user" and claims.subject == analyst.id
    principal = ids.principal_for_claims(claims, address="10.0.0.2")
    assert (
        principal.role is not None
        and principal.role.value == "data_scientist"
        and not principal.scopes.allows("Observation", "create")
    )
    ids.register_client(name="lab-feed", redirect_uris=[], public=False, scopes="system/Observation.cruds")
    ctoken = ids.issue_token(
        client="lab-feed",
        scopes="system/*.cruds",
        ttl=timedelta(minutes=5),
        secret=SECRET,
        issuer=ISS,
        audience=AUD,
    )
    cclaims = tokens.verify(ctoken, secret=SECRET, audience=AUD, issuer=ISS)
    assert (cclaims.kind, cclaims.subject, cclaims.scope) == (
        "client",
        "lab-feed",
        "system/Observation.cruds",
    )
    assert ids.principal_for_claims(cclaims).kind == "client"
    ids.disable(analyst.id)
    with pytest.raises(Unauthenticated):
        ids.principal_for_claims(claims)


def test_master_key_rotation_reseals_totp(ids: IdentityService) -> None:
    _, secret = staff(ids)
    new = MasterKey.generate()
    assert ids.rotate_master_key(old=ids.master, new=new) == 1
    rotated = IdentityService(engine=ids.engine, master=new)
    at = T0 + timedelta(minutes=2)
    assert rotated.authenticate(
        username="drwho", password=PW, totp_code=totp.code_for(secret, now=at), now=at
    ).ok
    assert ids.rotate_master_key(old=ids.master, new=new) == 0  # idempotent


def test_prune_clears_what_has_expired_and_keeps_the_rest(ids: IdentityService) -> None:
    alice = ids.create_user(username="alice", role="patient", password=PW, patient_id="p1", now=T0)
    bob = ids.create_user(username="bob", role="patient", password=PW, patient_id="p2", now=T0)
    old, _ = ids.create_session(alice.id, mfa=False, now=T0)  # she never came back
    later = T0 + timedelta(days=31)  # past the 30-day hard lock: idle throttle rows may go
    live, _ = ids.create_session(bob.id, mfa=False, now=later)
    for _ in range(3):  # a throttle row for the name and one for the address, idle since T0
        ids.authenticate(username="nobody", password="wrong password!", address="203.0.113.9", now=T0)
    ids.authenticate(username="carol", password="wrong password!", now=later)  # a fresh row

    def rows() -> dict[str, int]:
        with read_tx(ids.engine) as conn:
            return {t.name: len(conn.execute(select(t)).all()) for t in (user_sessions, login_throttle)}

    before = rows()
    assert before["user_sessions"] == 2 and before["login_throttle"] >= 3
    removed = ids.prune(now=later)
    after = rows()
    assert after == {"user_sessions": 1, "login_throttle": 1}
    assert removed == before["user_sessions"] + before["login_throttle"] - 2
    assert ids.load_session(live, now=later) is not None and ids.load_session(old, now=later) is None
    assert ids.prune(now=later) == 0
