"""Run a parsed :class:`SearchRequest` against ``resources`` and ``search_index`` (SQLAlchemy Core).

Each parameter is an ``IN`` subquery on ``search_index`` (values OR-ed within it, parameters AND-ed),
following http://hl7.org/fhir/R4/search.html:

- date (#date, #prefix), target range ``[lo, hi)`` against search range ``[s_lo, s_hi)``:
  eq ``lo >= s_lo and hi <= s_hi``; ne not eq; gt ``hi > s_hi``; lt ``lo < s_lo``; ge gt or eq;
  le lt or eq; sa ``lo >= s_hi``; eb ``hi <= s_lo``; ap overlap with the search range widened on
  each side by 10% of its distance from now. ``_lastUpdated`` applies the same rules to the instant
  in ``resources.last_updated`` (stored in UTC).
- number and quantity (#number, #quantity): eq/ne/ap use the implicit precision of the value
  ("5.4" is ``[5.35, 5.45)``; ap also accepts within 10%); gt/lt/ge/le compare with the value
  itself; sa/eb act as gt/lt. Quantity ``n|system|code`` also needs system and code;
  ``n||code`` matches the unit code or the unit text. Units are not converted.
- string (#string): default starts-with on the normalised text (case- and accent-insensitive);
  ``:exact`` is equality with the text as written; ``:contains`` a substring of the normalised text.
- token (#token): ``code``, ``system|code``, ``|code`` (no system), ``system|``; ``:text``
  starts-with on the normalised CodeableConcept.text / Coding.display; ``:not`` excludes every
  resource that has a matching value (resources with no value do match).
- reference (#reference): ``Type/id``, bare ``id`` (any type), an absolute URL to a local type,
  ``:Type``; other URLs (canonicals) compare with the URL as written. uri: equality.
- ``:missing=true`` matches resources without any index value for the parameter.
- ``_sort`` (#_sort): strings by normalised text, dates by lo (hi when descending), tokens by code,
  numbers/quantities by value; resources without a value sort last; ties broken by id.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, and_, delete, false, func, insert, not_, or_, select

from medweave.records.definitions import search_params
from medweave.records.indexing import IndexEntry, normalize
from medweave.records.searchparse import SearchParam, SearchRequest, SearchValue
from medweave.records.tables import resources, search_index

si = search_index
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _date_cond(lo: Any, hi: Any, v: SearchValue, now_us: int) -> ColumnElement[bool]:
    s_lo, s_hi = v.lo, v.hi
    assert s_lo is not None and s_hi is not None
    eq = and_(lo >= s_lo, hi <= s_hi)
    prefix = v.prefix or "eq"
    if prefix == "eq":
        return eq
    if prefix == "ne":
        return not_(eq)
    if prefix == "gt":
        return hi > s_hi
    if prefix == "lt":
        return lo < s_lo
    if prefix == "ge":
        return or_(hi > s_hi, eq)
    if prefix == "le":
        return or_(lo < s_lo, eq)
    if prefix == "sa":
        return lo >= s_hi
    if prefix == "eb":
        return hi <= s_lo
    a_lo = s_lo - abs(now_us - s_lo) // 10
    a_hi = s_hi + abs(s_hi - now_us) // 10
    return and_(lo < a_hi, hi > a_lo)


def _num_cond(col: Any, v: SearchValue) -> ColumnElement[bool]:
    n, n_lo, n_hi = v.num, v.num_lo, v.num_hi
    assert n is not None and n_lo is not None and n_hi is not None
    eq = and_(col >= n_lo, col < n_hi)
    prefix = v.prefix or "eq"
    conds = {
        "eq": lambda: eq,
        "ne": lambda: not_(eq),
        "gt": lambda: col > n,
        "sa": lambda: col > n,
        "lt": lambda: col < n,
        "eb": lambda: col < n,
        "ge": lambda: col >= n,
        "le": lambda: col <= n,
        "ap": lambda: or_(eq, and_(col >= n - abs(n) / 10, col <= n + abs(n) / 10)),
    }
    return conds[prefix]()


def _value_cond(p: SearchParam, v: SearchValue, now_us: int) -> ColumnElement[bool]:
    if p.type == "date":
        return _date_cond(si.c.lo, si.c.hi, v, now_us)
    if p.type == "number":
        return _num_cond(si.c.num, v)
    if p.type == "quantity":
        cond = _num_cond(si.c.num, v)
        if v.system is not None:
            cond = and_(cond, si.c.system == v.system)
            if v.code is not None:
                cond = and_(cond, si.c.code == v.code)
        elif v.code is not None:
            cond = and_(cond, or_(si.c.code == v.code, si.c.str_exact == v.code))
        return cond
    if p.type == "string":
        text = v.text or ""
        if p.modifier == "exact":
            return si.c.str_exact == text
        if p.modifier == "contains":
            return si.c.str_norm.contains(normalize(text), autoescape=True)
        return si.c.str_norm.startswith(normalize(text), autoescape=True)
    if p.type == "token":
        if p.modifier == "text":
            return si.c.str_norm.startswith(normalize(v.text or ""), autoescape=True)
        conds: list[ColumnElement[bool]] = []
        if v.system == "":
            conds.append(si.c.system.is_(None))
        elif v.system is not None:
            conds.append(si.c.system == v.system)
        if v.code is not None:
            conds.append(si.c.code == v.code)
        return and_(*conds) if conds else si.c.code.is_not(None)
    if p.type == "reference":
        if v.ref_id is not None:
            cond = si.c.ref_id == v.ref_id
            return and_(cond, si.c.ref_type == v.ref_type) if v.ref_type else cond
        return si.c.str_exact == v.text
    return si.c.str_exact == v.text  # uri


def _last_updated_cond(v: SearchValue, now_us: int) -> ColumnElement[bool]:
    assert v.lo is not None and v.hi is not None
    col = resources.c.last_updated
    s_lo, s_hi = _dt(v.lo), _dt(v.hi)
    prefix = v.prefix or "eq"
    if prefix == "ap":
        a_lo = _dt(v.lo - abs(now_us - v.lo) // 10)
        a_hi = _dt(v.hi + abs(v.hi - now_us) // 10)
        return and_(col >= a_lo, col < a_hi)
    eq = and_(col >= s_lo, col < s_hi)
    conds = {
        "eq": eq,
        "ne": not_(eq),
        "gt": col >= s_hi,
        "sa": col >= s_hi,
        "lt": col < s_lo,
        "eb": col < s_lo,
        "ge": col >= s_lo,
        "le": col < s_hi,
    }
    return conds[prefix]


def _dt(us: int) -> datetime:
    try:
        return _EPOCH + timedelta(microseconds=us)
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC) if us > 0 else datetime.min.replace(tzinfo=UTC)


def _param_cond(req: SearchRequest, p: SearchParam, now_us: int) -> ColumnElement[bool]:
    special = search_params(req.res_type)[p.name].special
    if special == "id":
        if p.missing is not None:
            return false() if p.missing else resources.c.res_id.is_not(None)
        return resources.c.res_id.in_([v.code for v in p.values if v.system is None and v.code])
    if special == "lastUpdated":
        if p.missing is not None:
            return false() if p.missing else resources.c.res_id.is_not(None)
        return or_(*(_last_updated_cond(v, now_us) for v in p.values))
    base = select(si.c.res_id).where(si.c.res_type == req.res_type, si.c.param == p.name)
    if p.missing is not None:
        return resources.c.res_id.not_in(base) if p.missing else resources.c.res_id.in_(base)
    matches = base.where(or_(*(_value_cond(p, v, now_us) for v in p.values)))
    if p.modifier == "not":
        return resources.c.res_id.not_in(matches)
    return resources.c.res_id.in_(matches)


def build_match_query(
    req: SearchRequest, *, now: datetime | None = None, visible: ColumnElement[bool] | None = None
) -> Select[Any]:
    """``(res_type, res_id)`` of every live resource of ``req.res_type`` matching all parameters.

    ``visible`` (a condition on ``resources.patient_id``, from ``access``) limits the matches to
    what the caller may see, so totals and pages never count anything else.
    """
    now_us = ((now or datetime.now(UTC)) - _EPOCH) // timedelta(microseconds=1)
    query = select(resources.c.res_type, resources.c.res_id).where(
        resources.c.res_type == req.res_type, resources.c.deleted.is_(False)
    )
    if visible is not None:
        query = query.where(visible)
    for p in req.params:
        query = query.where(_param_cond(req, p, now_us))
    return query


def _sort_key(req: SearchRequest, code: str, desc: bool) -> Any:
    definition = search_params(req.res_type)[code]
    if definition.special == "id":
        return resources.c.res_id
    if definition.special == "lastUpdated":
        return resources.c.last_updated
    column = {
        "string": si.c.str_norm,
        "token": si.c.code,
        "date": si.c.hi if desc else si.c.lo,
        "number": si.c.num,
        "quantity": si.c.num,
        "reference": si.c.ref_id,
        "uri": si.c.str_exact,
    }[definition.type]
    agg = func.max(column) if desc else func.min(column)
    return (
        select(agg)
        .where(si.c.res_type == resources.c.res_type, si.c.res_id == resources.c.res_id, si.c.param == code)
        .scalar_subquery()
    )


def count_matches(
    conn: Connection,
    req: SearchRequest,
    *,
    now: datetime | None = None,
    visible: ColumnElement[bool] | None = None,
) -> int:
    sub = build_match_query(req, now=now, visible=visible).subquery()
    return int(conn.execute(select(func.count()).select_from(sub)).scalar_one())


def page(
    conn: Connection,
    req: SearchRequest,
    offset: int,
    count: int,
    *,
    now: datetime | None = None,
    visible: ColumnElement[bool] | None = None,
) -> list[tuple[str, str]]:
    """One page of matches in ``_sort`` order (then by id), as ``(res_type, res_id)``."""
    query = build_match_query(req, now=now, visible=visible)
    order: list[Any] = []
    for code, desc in req.sort:
        key = _sort_key(req, code, desc)
        order.append(key.desc().nulls_last() if desc else key.asc().nulls_last())
    order.append(resources.c.res_id)
    rows = conn.execute(query.order_by(*order).offset(offset).limit(count))
    return [(r[0], r[1]) for r in rows]


def _live(keys: Iterable[tuple[str, str]], conn: Connection) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    by_type: dict[str, list[str]] = {}
    for t, i in dict.fromkeys(keys):
        by_type.setdefault(t, []).append(i)
    for t, ids in by_type.items():
        rows = conn.execute(
            select(resources.c.res_id).where(
                resources.c.res_type == t, resources.c.res_id.in_(ids), resources.c.deleted.is_(False)
            )
        )
        live = {r[0] for r in rows}
        out.extend((t, i) for i in ids if i in live)
    return out


def resolve_includes(
    conn: Connection, req: SearchRequest, keys: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Live resources referenced by ``keys`` through the ``_include`` parameters, not already in keys."""
    found: list[tuple[str, str]] = []
    for spec in req.include:
        ids = [i for t, i in keys if t == spec.source]
        if not ids:
            continue
        query = select(si.c.ref_type, si.c.ref_id).where(
            si.c.res_type == spec.source,
            si.c.param == spec.param,
            si.c.res_id.in_(ids),
            si.c.ref_id.is_not(None),
        )
        if spec.target:
            query = query.where(si.c.ref_type == spec.target)
        found.extend((r[0], r[1]) for r in conn.execute(query.order_by(si.c.ref_type, si.c.ref_id)))
    seen = set(keys)
    return [k for k in _live(found, conn) if k not in seen]


def resolve_revincludes(
    conn: Connection, req: SearchRequest, keys: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """Live resources that reference ``keys`` through the ``_revinclude`` parameters, not already in keys."""
    found: list[tuple[str, str]] = []
    by_type: dict[str, list[str]] = {}
    for t, i in keys:
        by_type.setdefault(t, []).append(i)
    for spec in req.revinclude:
        for t, ids in by_type.items():
            if spec.target and spec.target != t:
                continue
            query = select(si.c.res_type, si.c.res_id).where(
                si.c.res_type == spec.source,
                si.c.param == spec.param,
                si.c.ref_type == t,
                si.c.ref_id.in_(ids),
            )
            found.extend((r[0], r[1]) for r in conn.execute(query.order_by(si.c.res_id)))
    seen = set(keys)
    return [k for k in _live(found, conn) if k not in seen]


def replace_index(
    conn: Connection,
    *,
    res_type: str,
    res_id: str,
    patient_id: str | None,
    entries: Iterable[IndexEntry],
    new: bool = False,
) -> None:
    """Replace the index rows of one resource with ``entries`` (of its new current version).

    ``new`` says the resource has never been stored, so there are no old rows to delete.
    """
    if not new:
        delete_index(conn, res_type=res_type, res_id=res_id)
    rows = [{**e.to_row(), "res_type": res_type, "res_id": res_id, "patient_id": patient_id} for e in entries]
    if rows:
        conn.execute(insert(si), rows)


def delete_index(conn: Connection, *, res_type: str, res_id: str) -> None:
    conn.execute(delete(si).where(si.c.res_type == res_type, si.c.res_id == res_id))
