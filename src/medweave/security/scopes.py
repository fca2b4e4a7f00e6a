"""SMART App Launch v2 scopes: parse, check and intersect. Pure: no I/O.

https://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html

A resource scope is ``<context>/<type>.<permissions>``: context ``patient`` (the launch patient's
compartment), ``user`` (whatever the signed-in user may see) or ``system`` (a backend service);
type a FHIR resource type or ``*``; permissions a non-empty subsequence of ``cruds`` in that order
(create, read, update, delete, search). The v1 suffixes are read as v2: ``read`` is ``rs``,
``write`` is ``cud``, ``*`` is ``cruds``. A scope only ever narrows: the access layer still applies
roles, care relationships and consent; ``contexts_for`` says which restriction applies.

Granular scopes (``patient/Observation.rs?category=...``) are parsed and kept, but this version
does not enforce their query, so they grant nothing (fail closed) and ``narrow`` drops them.
Non-resource scopes (``openid``, ``fhirUser``, ``launch/patient``, ``offline_access``...) are kept
by name; any other word is refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from medweave.errors import InvalidInput

CONTEXTS = ("patient", "user", "system")
PERMISSIONS = "cruds"
OPERATIONS = {"create": "c", "read": "r", "update": "u", "delete": "d", "search": "s"}
V1_SUFFIXES = {"read": "rs", "write": "cud", "*": "cruds"}
# fmt: off
OTHER_SCOPES = frozenset({
    "openid", "fhirUser", "profile", "email", "launch", "launch/patient", "launch/encounter",
    "offline_access", "online_access",
})
# fmt: on
MAX_SCOPE_STRING = 4096

_RESOURCE = re.compile(
    r"(?P<context>patient|user|system)/(?P<type>\*|[A-Z][A-Za-z]{0,63})\.(?P<perms>[a-z*]+)(?:\?(?P<query>\S+))?"
)
_V2_PERMS = re.compile(r"c?r?u?d?s?")


@dataclass(frozen=True)
class Scope:
    """One resource scope, always in v2 form."""

    context: str
    resource_type: str
    permissions: str
    query: str | None = None

    def __str__(self) -> str:
        text = f"{self.context}/{self.resource_type}.{self.permissions}"
        return f"{text}?{self.query}" if self.query else text

    def grants(self, res_type: str, letter: str) -> bool:
        return (
            self.query is None
            and letter in self.permissions
            and (self.resource_type == "*" or self.resource_type == res_type)
        )


def parse_scope(text: str) -> Scope | str:
    """One scope word: a Scope for a resource scope, the name itself for a non-resource one."""
    if text in OTHER_SCOPES:
        return text
    match = _RESOURCE.fullmatch(text)
    if match is None:
        raise InvalidInput(f"unknown scope {text!r}; expected e.g. 'patient/Observation.rs' or 'openid'")
    raw = match["perms"]
    perms = V1_SUFFIXES.get(raw, raw)
    if not perms or "*" in perms or _V2_PERMS.fullmatch(perms) is None:
        raise InvalidInput(
            f"scope {text!r}: permissions must be letters of 'cruds' in that order, or read/write/*"
        )
    return Scope(match["context"], match["type"], perms, match["query"])


@dataclass(frozen=True)
class ScopeSet:
    """The scopes of a request or a token, merged per (context, type) into canonical v2 form.

    Build one with ``parse`` or ``of``, which canonicalise, so equal grants compare equal.
    """

    resources: tuple[Scope, ...] = ()
    other: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str) -> ScopeSet:
        """A space-separated scope string (RFC 6749 §3.3). Raises InvalidInput on any bad word."""
        if len(text) > MAX_SCOPE_STRING:
            raise InvalidInput(f"scope string is longer than {MAX_SCOPE_STRING} characters")
        return cls.of(parse_scope(word) for word in text.split())

    @classmethod
    def of(cls, items: Iterable[Scope | str]) -> ScopeSet:
        merged: dict[tuple[str, str, str | None], set[str]] = {}
        other: set[str] = set()
        for item in items:
            if isinstance(item, Scope):
                key = (item.context, item.resource_type, item.query)
                merged.setdefault(key, set()).update(item.permissions)
            else:
                other.add(item)
        scopes = (
            Scope(ctx, res, "".join(p for p in PERMISSIONS if p in letters), query)
            for (ctx, res, query), letters in merged.items()
            if letters
        )
        return cls(tuple(sorted(scopes, key=_sort_key)), frozenset(other))

    def __str__(self) -> str:
        """Canonical v2 form: non-resource scopes first, then resource scopes, sorted."""
        return " ".join([*sorted(self.other), *(str(s) for s in self.resources)])

    def __or__(self, other: ScopeSet) -> ScopeSet:
        return ScopeSet.of([*self.resources, *self.other, *other.resources, *other.other])

    def has(self, name: str) -> bool:
        """Whether a non-resource scope such as ``openid`` or ``launch/patient`` was granted."""
        return name in self.other

    def allows(self, res_type: str, op: str, *, context: str | None = None) -> bool:
        """Whether some scope (in ``context``, if given) grants ``op`` on ``res_type``."""
        contexts = self.contexts_for(res_type, op)
        return bool(contexts) if context is None else context in contexts

    def contexts_for(self, res_type: str, op: str) -> frozenset[str]:
        """The contexts (patient, user, system) in which ``op`` on ``res_type`` is granted.

        The access layer applies the restriction of each: patient/ limits to the launch
        patient's compartment, user/ to what the user may see, system/ to a backend client.
        """
        letter = _letter(op)
        return frozenset(s.context for s in self.resources if s.grants(res_type, letter))


def narrow(requested: ScopeSet, allowed: ScopeSet) -> ScopeSet:
    """What a client may get: the part of ``requested`` that ``allowed`` also grants.

    ``allows`` on the result is true exactly when it is true on both arguments (same context).
    Granular scopes are dropped, as they grant nothing in this version.
    """
    out: list[Scope | str] = [name for name in requested.other if name in allowed.other]
    for want in requested.resources:
        for may in allowed.resources:
            if want.query or may.query or want.context != may.context:
                continue
            if want.resource_type == "*":
                res_type = may.resource_type
            elif may.resource_type in ("*", want.resource_type):
                res_type = want.resource_type
            else:
                continue
            perms = "".join(p for p in want.permissions if p in may.permissions)
            if perms:
                out.append(Scope(want.context, res_type, perms))
    return ScopeSet.of(out)


def _letter(op: str) -> str:
    try:
        return OPERATIONS[op]
    except KeyError:
        raise ValueError(f"unknown operation {op!r}; expected one of {', '.join(OPERATIONS)}") from None


def _sort_key(scope: Scope) -> tuple[int, str, str, str]:
    return (CONTEXTS.index(scope.context), scope.resource_type, scope.query or "", scope.permissions)
