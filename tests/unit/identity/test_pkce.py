"""PKCE S256 against the RFC 7636 Appendix B vector, and redirect URI rules."""

from __future__ import annotations

import pytest

from medweave.errors import InvalidInput
from medweave.identity.pkce import check_challenge, check_redirect_uri, s256, verifier_matches

# RFC 7636 Appendix B
VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_rfc7636_appendix_b_vector() -> None:
    assert s256(VERIFIER) == CHALLENGE
    assert verifier_matches(VERIFIER, CHALLENGE)


def test_wrong_or_malformed_verifiers_do_not_match() -> None:
    assert not verifier_matches(VERIFIER[:-1] + "l", CHALLENGE)
    assert not verifier_matches("short", s256("short"))  # under 43 characters
    assert not verifier_matches("a" * 129, s256("a" * 129))
    assert not verifier_matches(VERIFIER + "!", s256(VERIFIER + "!"))  # outside the unreserved set


def test_only_s256_challenges() -> None:
    check_challenge(CHALLENGE, "S256")
    with pytest.raises(InvalidInput):
        check_challenge(VERIFIER, "plain")
    with pytest.raises(InvalidInput):
        check_challenge("tooshort", "S256")


@pytest.mark.parametrize(
    "uri",
    ["https://app.example.org/cb", "http://127.0.0.1:8765/cb", "http://localhost/cb", "com.example.app:/cb"],
)
def test_good_redirect_uris(uri: str) -> None:
    assert check_redirect_uri(uri) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "http://app.example.org/cb",
        "https://app.example.org/cb#frag",
        "javascript:alert(1)",
        "/relative",
        "https://",
    ],
)
def test_bad_redirect_uris(uri: str) -> None:
    with pytest.raises(InvalidInput):
        check_redirect_uri(uri)
