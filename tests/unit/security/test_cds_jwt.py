"""CDS Hooks client JWTs: what verify accepts, every refusal and its reason, replay, client config."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from medweave.errors import ConfigurationError, Unauthenticated
from medweave.security.cds_jwt import (
    CdsCaller,
    CdsClient,
    InvalidCdsToken,
    ReplayCache,
    load_clients,
    verify,
)

ISS = "https://ehr.example.org/"
OTHER_ISS = "https://rogue.example.net/"
ENDPOINT = "https://medweave.example/cds-services/risk-check"
JKU = "https://ehr.example.org/jwks.json"
NOW = datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())

RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=3072)
EC_KEY = ec.generate_private_key(ec.SECP384R1())
# Same kid as a trusted key, but never configured: what an attacker would sign with.
FORGED_RSA = rsa.generate_private_key(public_exponent=65537, key_size=3072)
FORGED_EC = ec.generate_private_key(ec.SECP384R1())


def public_jwk(key: Any, kid: str, **extra: Any) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk: dict[str, Any] = algorithm.to_jwk(key.public_key(), as_dict=True)
    return {**jwk, "kid": kid, "use": "sig", **extra}


def private_jwk(key: Any, kid: str) -> dict[str, Any]:
    algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
    return {**algorithm.to_jwk(key, as_dict=True), "kid": kid}


JWKS = {"keys": [public_jwk(RSA_KEY, "rsa-1", alg="RS384"), public_jwk(EC_KEY, "ec-1")]}
CLIENTS = {ISS: CdsClient(ISS, JWKS, name="Example EHR", jku=(JKU,))}


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "iss": ISS,
        "aud": ENDPOINT,
        "iat": T - 10,
        "exp": T + 240,
        "jti": "ee22b021-e1b7-4611-ba5b-8eec6a33ac1e",
        "tenant": "2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not DROP}


DROP = object()


def sign(key: Any = RSA_KEY, alg: str = "RS384", kid: Any = "rsa-1", headers: Any = None, **kw: Any) -> str:
    """A JWS over ``claims(**kw)``; signed as bytes so that even ill-typed claims can be sent."""
    header = {"kid": kid, "typ": "JWT", **(headers or {})}
    header = {k: v for k, v in header.items() if v is not DROP}
    if "typ" not in header:
        header["typ"] = None  # PyJWT adds typ unless told not to
    body = json.dumps(claims(**kw)).encode()
    return jwt.api_jws.encode(body, key, algorithm=alg, headers=header)


def check(token: str, *, replay: ReplayCache | None = None, **overrides: Any) -> CdsCaller:
    args: dict[str, Any] = {"audience": ENDPOINT, "clients": CLIENTS, "now": NOW}
    args.update(overrides)
    return verify(token, replay=replay if replay is not None else ReplayCache(), **args)


def refused(token: str, reason: str, **overrides: Any) -> InvalidCdsToken:
    with pytest.raises(InvalidCdsToken) as caught:
        check(token, **overrides)
    assert caught.value.reason == reason
    assert isinstance(caught.value, Unauthenticated) and caught.value.status == 401
    for part in token.split("."):  # the reason never quotes the token
        assert len(part) < 8 or part not in str(caught.value)
    return caught.value


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw(header: dict[str, Any], payload: dict[str, Any], signature: bytes = b"sig") -> str:
    return ".".join([b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)])


# --- accepted ---------------------------------------------------------------------------------


def test_rs384_token_from_a_trusted_client_is_accepted() -> None:
    caller = check(sign())
    assert caller == CdsCaller(
        issuer=ISS,
        subject=ISS,  # 2.0 defines no sub: the subject falls back to the issuer
        tenant="2ddd6c3a-8e9a-44c6-a305-52111ad302a2",
        jti="ee22b021-e1b7-4611-ba5b-8eec6a33ac1e",
        expires_at=datetime.fromtimestamp(T + 240, UTC),
    )


def test_es384_token_with_sub_and_without_tenant_is_accepted() -> None:
    caller = check(sign(EC_KEY, "ES384", "ec-1", sub="client-7", tenant=DROP))
    assert (caller.issuer, caller.subject, caller.tenant) == (ISS, "client-7", None)


@pytest.mark.parametrize("aud", [[ENDPOINT], ["https://other.example/cds-services/x", ENDPOINT]])
def test_aud_may_be_a_list_holding_the_endpoint(aud: list[str]) -> None:
    assert check(sign(aud=aud)).issuer == ISS


def test_jku_on_the_issuers_allowlist_is_accepted_and_never_fetched() -> None:
    assert check(sign(headers={"jku": JKU})).issuer == ISS


def test_times_at_the_edges_of_the_leeway_and_lifetime_are_accepted() -> None:
    assert check(sign(iat=T - 300, exp=T - 59)).jti  # expired 59 s ago, leeway 60 s
    assert check(sign(iat=T + 60, exp=T + 360)).jti  # issued 60 s ahead, lifetime exactly 5 min
    assert check(sign(iat=T - 100.5, exp=T + 199.5)).jti  # the spec's "number" may have a fraction


# --- refused ----------------------------------------------------------------------------------


def test_bad_signature_from_another_key_with_the_same_kid_is_refused() -> None:
    refused(sign(FORGED_RSA), "signature does not verify")
    refused(sign(FORGED_EC, "ES384", "ec-1"), "signature does not verify")


def test_tampered_payload_is_refused() -> None:
    header, _, signature = sign().split(".")
    payload = b64(json.dumps(claims(tenant="another-tenant")).encode())
    refused(f"{header}.{payload}.{signature}", "signature does not verify")


@pytest.mark.parametrize(
    "aud",
    [
        "https://medweave.example/cds-services/other",
        ENDPOINT + "/",
        ENDPOINT.upper(),
        ["https://medweave.example/cds-services"],
        [],
        "",
        42,
    ],
)
def test_audience_other_than_this_endpoint_is_refused(aud: Any) -> None:
    reason = "aud claim is missing" if aud in ([], "") else "aud is not this CDS Service endpoint"
    refused(sign(aud=aud), reason)


def test_expired_token_is_refused() -> None:
    refused(sign(iat=T - 300, exp=T - 61), "token has expired")
    refused(sign(iat=T - 300, exp=T - 1), "token has expired", leeway_s=0)


def test_token_issued_in_the_future_is_refused() -> None:
    refused(sign(iat=T + 120, exp=T + 240), "token is issued in the future")
    refused(sign(nbf=T + 120), "token is not yet valid (nbf)")


def test_lifetime_over_five_minutes_is_refused() -> None:
    refused(sign(iat=T - 10, exp=T + 590), "token lifetime exceeds 5 minutes")  # 10 minutes
    refused(sign(iat=T, exp=T + 301), "token lifetime exceeds 5 minutes")
    refused(sign(iat=T, exp=T), "exp is not after iat")


@pytest.mark.parametrize("field", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("value", ["1773478800", True, float("nan"), float("inf"), None, [1]])
def test_times_must_be_finite_numbers(field: str, value: Any) -> None:
    bad: dict[str, Any] = {field: value}
    if value is None and field != "nbf":
        refused(sign(**bad), f"{field} claim is missing")
    else:
        refused(sign(**bad), "exp, iat and nbf must be finite numbers")


def test_alg_none_is_refused() -> None:
    token = jwt.encode(claims(), "", algorithm="none", headers={"kid": "rsa-1"})
    refused(token, "alg is not allowed (RS384 or ES384 only)")
    refused(token.rsplit(".", 1)[0] + ".", "alg is not allowed (RS384 or ES384 only)")


def test_hs384_signed_with_the_public_key_is_refused() -> None:
    """Algorithm confusion: the published RSA key used as an HMAC secret."""
    pem = RSA_KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    head = b64(json.dumps({"alg": "HS384", "typ": "JWT", "kid": "rsa-1"}).encode())
    body = b64(json.dumps(claims()).encode())
    mac = hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha384).digest()
    token = f"{head}.{body}.{b64(mac)}"
    # The forgery is sound HMAC: a verifier that let the token pick its algorithm would pass it.
    assert hmac.compare_digest(mac, hmac.new(pem, token.rsplit(".", 1)[0].encode(), "sha384").digest())
    refused(token, "alg is not allowed (RS384 or ES384 only)")


def test_rs256_and_es256_are_not_accepted() -> None:
    refused(sign(alg="RS256"), "alg is not allowed (RS384 or ES384 only)")
    p256 = ec.generate_private_key(ec.SECP256R1())
    refused(sign(p256, "ES256", "ec-1"), "alg is not allowed (RS384 or ES384 only)")


def test_alg_must_match_the_key_named_by_kid() -> None:
    refused(sign(EC_KEY, "ES384", "rsa-1"), "alg does not match the key named by kid")
    refused(sign(RSA_KEY, "RS384", "ec-1"), "alg does not match the key named by kid")


def test_unknown_issuer_is_refused() -> None:
    refused(sign(iss=OTHER_ISS), "issuer is not a trusted CDS client")
    refused(sign(iss="https://ehr.example.org"), "issuer is not a trusted CDS client")  # no slash
    refused(sign(iss=DROP), "iss claim is missing or not a string")
    refused(sign(iss=["https://ehr.example.org/"]), "iss claim is missing or not a string")
    wrong_key = {OTHER_ISS: CLIENTS[ISS]}  # a mapping whose key disagrees with the client
    refused(sign(iss=OTHER_ISS), "issuer is not a trusted CDS client", clients=wrong_key)


def test_kid_must_be_present_and_known() -> None:
    refused(sign(kid=DROP), "kid header is missing")
    refused(sign(kid=""), "kid header is missing")
    refused(sign(kid="rsa-2"), "no key of the issuer matches kid")


def test_typ_must_be_jwt() -> None:
    assert check(sign(headers={"typ": "jwt"})).jti
    refused(sign(headers={"typ": DROP}), "typ header must be JWT")
    refused(sign(headers={"typ": "at+jwt"}), "typ header must be JWT")


def test_jku_not_on_the_allowlist_is_refused() -> None:
    reason = "jku is not on the issuer's allowlist"
    refused(sign(headers={"jku": "https://attacker.example/jwks.json"}), reason)
    bare = {ISS: CdsClient(ISS, JWKS)}
    refused(sign(headers={"jku": JKU}), reason, clients=bare)
    assert check(sign(), clients=bare).jti  # without a jku the configured JWK Set is used


def test_missing_or_bad_jti_is_refused() -> None:
    refused(sign(jti=DROP), "jti claim is missing")
    refused(sign(jti=""), "jti must be 1 to 256 characters")
    refused(sign(jti="x" * 257), "jti must be 1 to 256 characters")
    refused(sign(jti=7), "jti must be a string")


@pytest.mark.parametrize(("field", "value"), [("tenant", 5), ("tenant", ""), ("sub", ["a"]), ("sub", "")])
def test_optional_claims_must_be_non_empty_strings(field: str, value: Any) -> None:
    bad: dict[str, Any] = {field: value}
    refused(sign(**bad), f"{field} claim must be a non-empty string")


def test_replayed_jti_is_refused() -> None:
    replay = ReplayCache()
    token = sign()
    assert check(token, replay=replay).jti
    refused(token, "jti has already been used (replay)", replay=replay)
    # A fresh token reusing the jti is a replay too; another issuer's jti space is separate.
    refused(sign(iat=T - 5), "jti has already been used (replay)", replay=replay)
    assert len(replay) == 1


def test_a_refused_token_does_not_burn_its_jti() -> None:
    replay = ReplayCache()
    refused(
        sign(aud="https://elsewhere.example/cds-services/x"),
        "aud is not this CDS Service endpoint",
        replay=replay,
    )
    refused(sign(FORGED_RSA), "signature does not verify", replay=replay)
    assert len(replay) == 0
    assert check(sign(), replay=replay).jti


@pytest.mark.parametrize("token", ["", "abc", "a.b", "a.b.c", "....", "eyJhbGciOiJSUzM4NCJ9.."])
def test_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidCdsToken):
        check(token)


def test_oversized_token_is_refused_before_parsing() -> None:
    refused(sign(padding="x" * 12_000), "token is too long")
    assert check(sign(padding="x" * 10_000)).jti  # a large but sane token still verifies


def test_token_must_be_a_string() -> None:
    with pytest.raises(InvalidCdsToken):
        check(sign().encode())  # type: ignore[arg-type]


def test_structurally_odd_headers_are_refused() -> None:
    payload = claims()
    odd: list[dict[str, Any]] = [
        {"alg": ["RS384"], "typ": "JWT", "kid": "rsa-1"},
        {"alg": "RS384", "typ": "JWT", "kid": {"a": 1}},
        {"alg": "RS384", "typ": 1, "kid": "rsa-1"},
        {"alg": "RS384", "typ": "JWT", "kid": "rsa-1", "jku": ["x"]},
        {"alg": "RS384", "typ": "JWT", "kid": "rsa-1", "crit": ["exp"], "exp": 1},
    ]
    for header in odd:
        with pytest.raises(InvalidCdsToken):
            check(raw(header, payload))


def test_misuse_by_the_caller_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="leeway"):
        check(sign(), leeway_s=3600)
    with pytest.raises(ValueError, match="timezone"):
        check(sign(), now=datetime(2026, 3, 14, 9, 0, 0))


# --- the replay cache -------------------------------------------------------------------------


def test_replay_cache_forgets_a_jti_once_it_has_expired() -> None:
    cache = ReplayCache()
    until = NOW + timedelta(minutes=5)
    assert cache.seen(ISS, "a", until, now=NOW) is False
    assert cache.seen(ISS, "a", until, now=NOW + timedelta(minutes=4)) is True
    assert cache.seen(OTHER_ISS, "a", until, now=NOW) is False  # per issuer
    assert cache.seen(ISS, "b", NOW + timedelta(minutes=1), now=NOW) is False
    assert len(cache) == 3
    assert cache.seen(ISS, "c", until, now=NOW + timedelta(minutes=2)) is False
    assert len(cache) == 3  # "b" was dropped
    assert cache.seen(ISS, "a", until + timedelta(minutes=5), now=until) is False
    assert cache.seen(ISS, "a", until + timedelta(minutes=5), now=until) is True


def test_replay_cache_lets_exactly_one_of_many_concurrent_uses_through() -> None:
    cache = ReplayCache()
    results: list[bool] = []
    barrier = threading.Barrier(16)

    def use() -> None:
        barrier.wait()
        for n in range(200):
            results.append(cache.seen(ISS, f"jti-{n}", NOW + timedelta(minutes=5), now=NOW))

    threads = [threading.Thread(target=use) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(False) == 200 and results.count(True) == 200 * 15


def test_concurrent_verify_accepts_a_token_once() -> None:
    replay, token = ReplayCache(), sign(EC_KEY, "ES384", "ec-1")
    outcomes: list[str] = []

    def attempt() -> None:
        try:
            outcomes.append(check(token, replay=replay).jti)
        except InvalidCdsToken as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("ee22b021-e1b7-4611-ba5b-8eec6a33ac1e") == 1
    assert outcomes.count("jti has already been used (replay)") == 7


# --- client configuration ---------------------------------------------------------------------


def config(*entries: dict[str, Any]) -> str:
    return json.dumps(list(entries))


def test_load_clients_reads_a_json_list() -> None:
    clients = load_clients(
        config(
            {"iss": ISS, "jwks": JWKS, "name": "Example EHR", "jku": JKU},
            {"iss": OTHER_ISS, "jwks": {"keys": [public_jwk(EC_KEY, "k")]}},
        )
    )
    assert set(clients) == {ISS, OTHER_ISS}
    assert clients[ISS].jku == (JKU,) and clients[ISS].name == "Example EHR"
    assert clients[OTHER_ISS].jku == () and clients[OTHER_ISS].name == ""
    assert check(sign(headers={"jku": JKU}), clients=clients).issuer == ISS


SMALL_RSA = rsa.generate_private_key(public_exponent=65537, key_size=1024)
P256 = ec.generate_private_key(ec.SECP256R1())


def one(key: dict[str, Any], **entry: Any) -> str:
    return config({"iss": ISS, "jwks": {"keys": [key]}, **entry})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"iss": "x"}', "must be a JSON list"),
        ("[1]", "#1 must be an object"),
        (config({"iss": ISS}), "needs both 'iss' and 'jwks'"),
        (config({"iss": ISS, "jwks": JWKS, "secret": "x"}), "unknown fields: secret"),
        (config({"iss": "", "jwks": JWKS}), "iss must be a non-empty string"),
        (config({"iss": 5, "jwks": JWKS}), "iss must be a non-empty string"),
        (config({"iss": ISS, "jwks": JWKS}, {"iss": ISS, "jwks": JWKS}), "is listed twice"),
        (config({"iss": ISS, "jwks": {"keys": []}}), "non-empty 'keys' list"),
        (config({"iss": ISS, "jwks": [public_jwk(EC_KEY, "k")]}), "non-empty 'keys' list"),
        (config({"iss": ISS, "jwks": JWKS, "jku": "ftp://x"}), "every jku must be an http(s) URL"),
        (config({"iss": ISS, "jwks": JWKS, "jku": {"u": JKU}}), "jku must be a URL or a list"),
        (config({"iss": ISS, "jwks": JWKS, "name": 3}), "name must be a string"),
        (one(private_jwk(RSA_KEY, "k")), "holds private key material"),
        (one(private_jwk(EC_KEY, "k")), "holds private key material"),
        (one({"kty": "oct", "k": "c2VjcmV0", "kid": "k"}), "holds private key material"),
        (one({"kty": "oct", "kid": "k"}), "kty must be RSA or EC"),
        (one({"kty": ["RSA"], "kid": "k"}), "kty must be RSA or EC"),
        (one({**public_jwk(RSA_KEY, "k"), "kid": None}), "non-empty kid"),
        (one(public_jwk(RSA_KEY, "k", alg="RS256")), "alg must be RS384"),
        (one(public_jwk(EC_KEY, "k", alg="ES256")), "alg must be ES384"),
        (one(public_jwk(RSA_KEY, "k", use="enc")), "use must be 'sig'"),
        (one(public_jwk(RSA_KEY, "k", key_ops=["encrypt"])), "key_ops must include 'verify'"),
        (one(public_jwk(P256, "k")), "curve P-384"),
        (one(public_jwk(SMALL_RSA, "k")), "at least 2048 bits"),
        (one({**public_jwk(RSA_KEY, "k"), "n": "!!"}), "not a valid RSA public key"),
        (one({**public_jwk(EC_KEY, "k"), "x": "AAAA"}), "not a valid EC public key"),
        (
            config({"iss": ISS, "jwks": {"keys": [public_jwk(RSA_KEY, "k"), public_jwk(EC_KEY, "k")]}}),
            "kid 'k' is not unique",
        ),
    ],
)
def test_load_clients_refuses_bad_configuration(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_clients(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_private_key_material_is_never_echoed_in_the_error() -> None:
    secret = private_jwk(EC_KEY, "k")
    with pytest.raises(ConfigurationError) as caught:
        load_clients(one(secret))
    assert secret["d"] not in str(caught.value)
    broken = {**public_jwk(RSA_KEY, "k"), "e": "!!"}
    with pytest.raises(ConfigurationError) as caught:
        load_clients(one(broken))
    assert broken["n"][:40] not in str(caught.value)


# --- anything at all --------------------------------------------------------------------------


@given(st.text(max_size=400))
def test_arbitrary_strings_only_ever_raise_unauthenticated(token: str) -> None:
    with pytest.raises(Unauthenticated):
        check(token)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(
    header=st.fixed_dictionaries(
        {},
        optional={
            "alg": st.sampled_from(["RS384", "ES384", "none", "HS384"]) | JSON,
            "typ": st.just("JWT") | JSON,
            "kid": st.sampled_from(["rsa-1", "ec-1"]) | JSON,
            "jku": st.just(JKU) | JSON,
            "crit": JSON,
            "b64": JSON,
        },
    ),
    payload=st.fixed_dictionaries(
        {},
        optional={
            "iss": st.just(ISS) | JSON,
            "aud": st.just(ENDPOINT) | JSON,
            "exp": st.just(T + 60) | JSON,
            "iat": st.just(T) | JSON,
            "nbf": JSON,
            "jti": st.text(max_size=4) | JSON,
            "tenant": JSON,
        },
    ),
    signature=st.binary(max_size=512),
)
def test_jwt_shaped_garbage_only_ever_raises_unauthenticated(
    header: dict[str, Any], payload: dict[str, Any], signature: bytes
) -> None:
    with pytest.raises(Unauthenticated):
        check(raw(header, payload, signature))
