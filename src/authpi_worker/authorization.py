"""Authorization: what a valid token may do. Authenticated is not authorized.

AuthPI's model, as its documentation states it:

- **Token scopes**: the space-delimited `scope` claim. A route may need one scope exactly (the
  quickstart's `read:reports`), any of several, or all of several.
- **Organization permissions**: a person's or agent's token carries every active membership,
  `"organizations": [{"id": "org_…", "scopes": ["owner", "reports:read"], …}]`, and the API
  decides per request which one applies: here, the entry whose `id` equals a path parameter.
  Membership scopes follow AuthPI's grammar `resource:action` (see `grants`).
- **Caller kinds**: `sub` is prefixed by what calls (`usr_` a person, `agt_` an agent, `c_` an
  M2M client) and `dat.type` says the same (`identity`, `agent`); both must agree.

A `Requirement` holds one route's rules; `check` raises InsufficientScope (403) naming what is
missing, never another organization or what it grants. A malformed claim grants nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from authpi_worker.errors import InsufficientScope

CallerKind = Literal["person", "agent", "client"]
CALLER_KINDS: tuple[CallerKind, ...] = ("person", "agent", "client")
# What each kind's `sub` starts with, and the `dat.type` it must carry (None: no `dat` at all;
# AuthPI sets `dat` on user and agent tokens, not on an M2M client's).
_KINDS: dict[CallerKind, tuple[str, str | None]] = {
    "person": ("usr_", "identity"),
    "agent": ("agt_", "agent"),
    "client": ("c_", None),
}
ANY_ACTION = "*"  # `reports:*`: any action on reports itself
ANY_DEPTH = "**"  # `reports:**`: any action on reports and on its sub-resources (reports.archive)
ANY_RESOURCE = "*"  # `*:read`: read on any top-level resource (no `.`); `*:**` everything
SUB_RESOURCE = "."  # `reports.archive` is a sub-resource of `reports`


def token_scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """The token's scopes: the space-delimited `scope` claim; a non-string means none."""
    scope = claims.get("scope")
    return frozenset(scope.split(" ")) - {""} if isinstance(scope, str) else frozenset()


def caller_kind(claims: Mapping[str, Any]) -> CallerKind | None:
    """Who calls, when `sub`'s prefix and `dat` agree; None when they disagree or one is
    missing (a `c_` client carries no `dat`; a `dat` on it disagrees)."""
    sub = claims.get("sub")
    if not isinstance(sub, str):
        return None
    dat = claims.get("dat")
    dat_type = dat.get("type") if isinstance(dat, dict) else None
    for kind, (prefix, expected) in _KINDS.items():
        if sub.startswith(prefix) and len(sub) > len(prefix):
            if expected is None:
                return kind if "dat" not in claims else None
            return kind if dat_type == expected else None
    return None


def membership_scopes(claims: Mapping[str, Any], org_id: str) -> tuple[str, ...]:
    """The scopes of the membership whose `id` equals org_id exactly; () when there is none or
    the claim is malformed (see `memberships`)."""
    return memberships(claims).get(org_id, ())


def memberships(claims: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each membership's scopes by its organization's `id`. An entry whose scopes are not a
    list of strings grants nothing (); so do two entries for one organization (which AuthPI
    never issues): neither can be trusted to be the current one. Entries that are not objects
    with a string id name no organization; a claim that is not a list names none."""
    organizations = claims.get("organizations")
    if not isinstance(organizations, list):
        return {}
    found: dict[str, tuple[str, ...]] = {}
    for entry in organizations:
        org_id = entry.get("id") if isinstance(entry, dict) else None
        if not isinstance(org_id, str):
            continue
        scopes = entry.get("scopes")
        well_formed = isinstance(scopes, list) and all(isinstance(one, str) for one in scopes)
        found[org_id] = tuple(scopes) if well_formed and org_id not in found else ()
    return found


def grants(granted: str, needed: str) -> bool:
    """Whether a membership scope grants a permission, in AuthPI's grammar `resource:action`
    (split at the last `:`). `reports:read` is granted by `reports:read`, `reports:*`,
    `reports:**`, `*:read`, `*:*` and `*:**`; `reports.archive:write` by `reports:**` too.
    A needed permission without `:` (a role such as `owner`) is granted only by itself."""
    if granted == needed:
        return True
    resource, colon, action = granted.rpartition(":")
    need_resource, need_colon, need_action = needed.rpartition(":")
    if not (colon and need_colon and resource and action and need_resource and need_action):
        return False
    if action == ANY_DEPTH:
        return resource == ANY_RESOURCE or (
            need_resource == resource or need_resource.startswith(resource + SUB_RESOURCE)
        )
    if action not in (ANY_ACTION, need_action):
        return False
    if resource == ANY_RESOURCE:
        return SUB_RESOURCE not in need_resource
    return resource == need_resource


def has_permission(claims: Mapping[str, Any], org_id: str, permission: str) -> bool:
    """The token's membership in org_id grants permission (see `grants`)."""
    return _granted(membership_scopes(claims, org_id), permission)


def _granted(scopes: tuple[str, ...], permission: str) -> bool:
    """One of a membership's scopes grants permission; the permission itself, the common case,
    is found without parsing any scope."""
    return permission in scopes or any(grants(scope, permission) for scope in scopes)


class Entitlements:
    """What one token's claims grant, each part read from them once, when first asked: the
    caller kind, the token scopes, the memberships by organization id. The Verifier keeps one
    beside each token in its verified-token cache, and drops it with the token: a cached
    token's claims (which never change) are not scanned again on every request."""

    __slots__ = ("_kind", "_kind_read", "_memberships", "_scopes", "claims")

    def __init__(self, claims: Mapping[str, Any]) -> None:
        self.claims = claims
        self._kind: CallerKind | None = None
        self._kind_read = False  # None is an answer: the kinds disagree, or there is none
        self._scopes: frozenset[str] | None = None
        self._memberships: dict[str, tuple[str, ...]] | None = None

    @property
    def kind(self) -> CallerKind | None:
        """Who calls (`caller_kind`)."""
        if not self._kind_read:
            self._kind, self._kind_read = caller_kind(self.claims), True
        return self._kind

    @property
    def scopes(self) -> frozenset[str]:
        """The token scopes (`token_scopes`)."""
        if self._scopes is None:
            self._scopes = token_scopes(self.claims)
        return self._scopes

    def permits(self, org_id: str, permission: str) -> bool:
        """Its membership in org_id grants permission (`has_permission`)."""
        if self._memberships is None:
            self._memberships = memberships(self.claims)
        return _granted(self._memberships.get(org_id, ()), permission)


@dataclass(frozen=True, slots=True)
class OrgPermission:
    """A permission needed in the organization a path parameter names."""

    param: str  # the path parameter holding the organization's id, e.g. "org_id"
    permission: str  # in AuthPI's grammar, e.g. "reports:read"

    def __post_init__(self) -> None:
        if not self.param or not _is_permission(self.permission):
            raise ValueError(f"not a permission: {self.permission!r} (resource:action)")


@dataclass(frozen=True, slots=True)
class Requirement:
    """What a route needs of a valid token. Empty: any valid token.

    `scope` is one exact token scope (the quickstart's meaning); `any_scopes` at least one of
    several, `all_scopes` every one of several; `org` a permission in the organization a
    path parameter names; `callers` the caller kinds admitted (None: every caller)."""

    scope: str | None = None
    any_scopes: tuple[str, ...] = ()
    all_scopes: tuple[str, ...] = ()
    org: OrgPermission | None = None
    callers: frozenset[CallerKind] | None = None
    # Every token scope this requirement names: RFC 9728's scopes_supported.
    scopes: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        named = ((self.scope,) if self.scope else ()) + self.any_scopes + self.all_scopes
        if any(not scope or " " in scope for scope in named):
            raise ValueError(f"a scope is empty or holds a space: {named!r}")
        if self.callers is not None and not set(self.callers) <= set(CALLER_KINDS):
            raise ValueError(f"caller kinds are {', '.join(CALLER_KINDS)}: {self.callers!r}")
        object.__setattr__(self, "scopes", tuple(dict.fromkeys(named)))

    @property
    def empty(self) -> bool:
        return not (self.scopes or self.org or self.callers is not None)

    def check(self, claims: Mapping[str, Any], params: Mapping[str, str] | None = None) -> None:
        """Raise InsufficientScope unless the token satisfies every rule (`check_entitlements`)."""
        self.check_entitlements(Entitlements(claims), params)

    def check_entitlements(
        self, entitled: Entitlements, params: Mapping[str, str] | None = None
    ) -> None:
        """Raise InsufficientScope unless the token whose Entitlements these are satisfies every
        rule. Caller kind first, then token scopes, then the organization permission."""
        if self.callers is not None and entitled.kind not in self.callers:
            raise InsufficientScope(None, "not allowed for this kind of caller")
        if self.scopes:
            granted = entitled.scopes
            if self.scope is not None and self.scope not in granted:
                raise InsufficientScope(self.scope)
            missing = [scope for scope in self.all_scopes if scope not in granted]
            if missing:
                raise InsufficientScope(" ".join(missing))
            if self.any_scopes and granted.isdisjoint(self.any_scopes):
                raise InsufficientScope(" ".join(self.any_scopes), "requires one of these")
        if self.org is not None:
            org_id = (params or {}).get(self.org.param)
            if org_id is None or not entitled.permits(org_id, self.org.permission):
                raise InsufficientScope(None, f"requires {self.org.permission} in the organization")


def requirement(
    scope: str | None = None,
    *,
    any_scopes: Iterable[str] = (),
    all_scopes: Iterable[str] = (),
    org: tuple[str, str] | OrgPermission | None = None,
    callers: Iterable[CallerKind] | None = None,
) -> Requirement:
    """A Requirement from plain values: `org=("org_id", "reports:read")`, `callers=("person",)`."""
    return Requirement(
        scope,
        tuple(any_scopes),
        tuple(all_scopes),
        OrgPermission(*org) if isinstance(org, tuple) else org,
        frozenset(callers) if callers is not None else None,
    )


def _is_permission(permission: str) -> bool:
    """A needed permission: `resource:action` with neither part empty nor a wildcard, or a
    plain role name (`owner`)."""
    if not permission or " " in permission:
        return False
    resource, colon, action = permission.rpartition(":")
    if not colon:
        return True
    wildcards = {ANY_ACTION, ANY_DEPTH}
    return bool(resource and action) and resource not in wildcards and action not in wildcards
