"""AuthPI's authorization model (authpi_worker.authorization): the `resource:action` grammar,
memberships, caller kinds and the Requirement a route declares. Pure functions on claims:
the request path through the route table is in tests/test_routes.py and tests/test_app.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from authpi_worker import authorization
from authpi_worker.authorization import (
    Entitlements,
    Requirement,
    caller_kind,
    grants,
    has_permission,
    membership_scopes,
    requirement,
    token_scopes,
)
from authpi_worker.errors import InsufficientScope

ORG, OTHER = "org_0gw3hcq8r2kfn7xj9tzm4be5a", "org_0hk2tqvw8m3rfe9pjx5zcn4ba"


def member(org_id: str, *scopes: str, **extra: Any) -> dict[str, Any]:
    return {"id": org_id, "title": None, "scopes": list(scopes), "joined_at": 1767312000, **extra}


def person(*organizations: object, **extra: Any) -> dict[str, Any]:
    return {
        "sub": "usr_1",
        "dat": {"type": "identity"},
        "organizations": list(organizations),
        **extra,
    }


# --- The grammar -----------------------------------------------------------------------------

GRANTING = ["reports:read", "reports:*", "reports:**", "*:read", "*:*", "*:**"]
NOT_GRANTING = [
    "report:read",  # another resource
    "reportsx:read",  # a resource that merely starts with the name
    "reports.archive:read",  # a sub-resource does not grant its parent
    "read:reports",  # the token-scope spelling, resource and action swapped
    "reports:write",
    "reports:",
    ":read",
    "reports",
    "*",
    "**",
    "*:",
    "reports:read ",
    "Reports:read",
    "",
]


@pytest.mark.parametrize("granted", GRANTING)
def test_reports_read_is_granted_by(granted: str) -> None:
    assert grants(granted, "reports:read")
    assert has_permission(person(member(ORG, "member", granted)), ORG, "reports:read")


@pytest.mark.parametrize("granted", NOT_GRANTING)
def test_reports_read_is_not_granted_by(granted: str) -> None:
    assert not grants(granted, "reports:read")
    assert not has_permission(person(member(ORG, granted)), ORG, "reports:read")


@pytest.mark.parametrize(
    ("granted", "needed", "expected"),
    [
        ("reports:**", "reports.archive:write", True),  # ** reaches sub-resources
        ("reports:**", "reports.archive.old:read", True),
        ("reports:*", "reports.archive:write", False),  # * is this resource's actions only
        ("*:read", "reports.archive:read", False),  # *: top-level resources only
        ("*:*", "reports.archive:read", False),
        ("*:**", "reports.archive:read", True),  # everything
        ("reports.archive:*", "reports.archive:delete", True),
        ("reports.archive:**", "reports:read", False),  # a child never grants its parent
        ("reports:**", "reportsx.archive:read", False),
        ("a:b:read", "a:b:read", True),  # split at the last colon
        ("a:b:*", "a:b:write", True),
        ("a:*", "a:b:write", False),  # resource "a:b", not "a"
        ("owner", "owner", True),  # a role names only itself
        ("*:**", "owner", False),
    ],
)
def test_grammar(granted: str, needed: str, expected: bool) -> None:
    assert grants(granted, needed) is expected


def test_a_membership_in_another_organization_grants_nothing() -> None:
    claims = person(member(OTHER, "*:**"))
    assert not has_permission(claims, ORG, "reports:read")
    assert has_permission(claims, OTHER, "reports:read")


def test_the_organization_id_must_match_exactly() -> None:
    for near in (ORG.upper(), ORG + " ", " " + ORG, ORG[:-1], ORG + "x"):
        assert not has_permission(person(member(near, "*:**")), ORG, "reports:read")


@pytest.mark.parametrize(
    "organizations",
    [
        None,
        "org",
        {"id": ORG, "scopes": ["*:**"]},  # an object, not a list
        [[ORG, ["*:**"]]],
        [None],
        [{"id": 1, "scopes": ["*:**"]}],
        [{"id": [ORG], "scopes": ["*:**"]}],
        [{"id": ORG, "scopes": "*:**"}],
        [{"id": ORG, "scopes": {"*:**": True}}],
        [{"id": ORG, "scopes": ["*:**", 1]}],  # one entry not a string spoils the list
        [{"id": ORG, "scopes": [["*:**"]]}],
        [{"id": ORG}],
        [member(ORG, "*:**"), member(ORG, "member")],  # two entries for one org: neither
    ],
)
def test_a_malformed_organizations_claim_grants_nothing(organizations: object) -> None:
    claims = {"sub": "usr_1", "dat": {"type": "identity"}, "organizations": organizations}
    assert membership_scopes(claims, ORG) == ()
    with pytest.raises(InsufficientScope):
        requirement(org=("org_id", "reports:read")).check(claims, {"org_id": ORG})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)


@given(organizations=JSON, org_id=st.text(max_size=8) | st.just(ORG))
def test_any_json_in_organizations_never_raises_anything_but_a_refusal(
    organizations: object, org_id: str
) -> None:
    claims = {"sub": "usr_1", "dat": {"type": "identity"}, "organizations": organizations}
    try:
        requirement(org=("org_id", "reports:read")).check(claims, {"org_id": org_id})
    except InsufficientScope as refused:
        assert ORG not in refused.description and "reports:read" in refused.description


def scanned(claims: dict[str, Any], org_id: str) -> tuple[str, ...]:
    """The membership's scopes as a scan of the claim finds them (how each request read them
    before the index by id): the reference `memberships` must agree with."""
    organizations = claims.get("organizations")
    if not isinstance(organizations, list):
        return ()
    found: tuple[str, ...] | None = None
    for entry in organizations:
        if not isinstance(entry, dict) or entry.get("id") != org_id:
            continue
        scopes = entry.get("scopes")
        if found is not None or not isinstance(scopes, list):
            return ()
        if not all(isinstance(scope, str) for scope in scopes):
            return ()
        found = tuple(scopes)
    return found or ()


IDS = st.sampled_from([ORG, OTHER, "org_x", ""])
SCOPES = st.lists(st.sampled_from(GRANTING + NOT_GRANTING), max_size=3)
# Mostly entries as AuthPI writes them (often two for one organization), some of any shape.
ENTRY = st.fixed_dictionaries(
    {"id": IDS | IDS | IDS | JSON},
    optional={"scopes": SCOPES | SCOPES | SCOPES | JSON, "title": JSON},
)
ORGANIZATIONS = st.lists(ENTRY | ENTRY | ENTRY | JSON, max_size=6) | JSON


@settings(max_examples=400)
@given(organizations=ORGANIZATIONS, org_ids=st.lists(st.sampled_from([ORG, OTHER, "org_x", ""])))
def test_the_index_by_id_finds_what_a_scan_of_the_claim_finds(
    organizations: object, org_ids: list[str]
) -> None:
    """Whatever the claim holds, and in whatever order organizations are asked for: the same
    scopes, the same permission, the same verdict of an organization requirement."""
    claims = {"sub": "usr_1", "dat": {"type": "identity"}, "organizations": organizations}
    entitled = Entitlements(claims)  # one per token, asked again and again
    need = requirement(org=("org_id", "reports:read"), callers=("person",))
    for org_id in [*org_ids, ORG, OTHER]:
        assert membership_scopes(claims, org_id) == scanned(claims, org_id)
        expected = any(grants(scope, "reports:read") for scope in scanned(claims, org_id))
        assert entitled.permits(org_id, "reports:read") == expected
        assert has_permission(claims, org_id, "reports:read") == expected
        try:
            need.check_entitlements(entitled, {"org_id": org_id})
            allowed = True
        except InsufficientScope:
            allowed = False
        assert allowed == expected


def test_entitlements_read_the_claims_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kind, the scopes and the memberships are read once, when first asked, whatever is
    asked after."""
    reads: list[str] = []

    def counted(name: str) -> Callable[[Any], Any]:
        original = getattr(authorization, name)

        def read(claims: Any) -> Any:
            reads.append(name)
            return original(claims)

        return read

    for name in ("caller_kind", "memberships", "token_scopes"):
        monkeypatch.setattr(authorization, name, counted(name))
    claims = person(member(ORG, "reports:read"), member(OTHER, "*:**"), scope="openid")
    entitled = Entitlements(claims)
    assert reads == []  # nothing asked yet
    need = requirement("openid", org=("org_id", "reports:write"), callers=("person",))
    need.check_entitlements(entitled, {"org_id": OTHER})
    for org_id in (ORG, "org_x", ORG):
        with pytest.raises(InsufficientScope):
            need.check_entitlements(entitled, {"org_id": org_id})
    assert sorted(reads) == ["caller_kind", "memberships", "token_scopes"]


# --- Caller kinds ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claims", "kind"),
    [
        ({"sub": "usr_1", "dat": {"type": "identity"}}, "person"),
        ({"sub": "agt_1", "dat": {"type": "agent"}}, "agent"),
        ({"sub": "c_1"}, "client"),
        ({"sub": "usr_1", "dat": {"type": "agent"}}, None),  # prefix and dat disagree
        ({"sub": "agt_1", "dat": {"type": "identity"}}, None),
        ({"sub": "usr_1"}, None),  # no dat
        ({"sub": "agt_1"}, None),
        ({"sub": "usr_1", "dat": "identity"}, None),  # dat not an object
        ({"sub": "usr_1", "dat": {"type": ["identity"]}}, None),
        ({"sub": "c_1", "dat": {"type": "identity"}}, None),  # a client carries no dat
        ({"sub": "c_1", "dat": None}, None),
        ({"sub": "user_1", "dat": {"type": "identity"}}, None),  # no known prefix
        ({"sub": "USR_1", "dat": {"type": "identity"}}, None),
        ({"sub": "usr_", "dat": {"type": "identity"}}, None),  # a prefix and nothing else
        ({"dat": {"type": "identity"}}, None),
        ({"sub": 1, "dat": {"type": "identity"}}, None),
    ],
)
def test_caller_kind(claims: dict[str, Any], kind: str | None) -> None:
    assert caller_kind(claims) == kind


# --- Requirements ----------------------------------------------------------------------------


def test_token_scopes_are_exact_members_of_the_scope_string() -> None:
    assert token_scopes({"scope": "read:reports  openid"}) == {"read:reports", "openid"}
    assert token_scopes({"scope": ["read:reports"]}) == frozenset()
    assert token_scopes({}) == frozenset()


def test_the_quickstart_scope_is_an_exact_match() -> None:
    need = Requirement("read:reports")
    need.check({"scope": "openid read:reports"})
    for scope in (
        "read:report",
        "read:reports:all",
        "READ:REPORTS",
        "reports:read",
        ["read:reports"],
    ):
        with pytest.raises(InsufficientScope) as refused:
            need.check({"scope": scope})
        assert refused.value.scope == "read:reports"


def test_any_and_all_scopes() -> None:
    either = requirement(any_scopes=("read:reports", "admin"))
    either.check({"scope": "admin"})
    with pytest.raises(InsufficientScope) as refused:
        either.check({"scope": "write:reports"})
    assert refused.value.scope == "read:reports admin"
    both = requirement(all_scopes=("read:reports", "write:reports"))
    both.check({"scope": "write:reports read:reports"})
    with pytest.raises(InsufficientScope) as refused:
        both.check({"scope": "read:reports"})
    assert refused.value.scope == "write:reports"  # only what is missing


def test_callers_and_organization_together() -> None:
    need = requirement(org=("org_id", "reports:write"), callers=("person",))
    need.check(person(member(ORG, "reports:**")), {"org_id": ORG})
    agent = {**person(member(ORG, "*:**")), "sub": "agt_1", "dat": {"type": "agent"}}
    with pytest.raises(InsufficientScope) as refused:
        need.check(agent, {"org_id": ORG})
    assert refused.value.scope is None and "caller" in refused.value.description
    with pytest.raises(InsufficientScope) as refused:
        need.check(person(member(ORG, "reports:read")), {"org_id": ORG})
    assert refused.value.scope is None
    assert refused.value.description == "requires reports:write in the organization"
    with pytest.raises(InsufficientScope):
        need.check(person(member(ORG, "*:**")), {})  # no parameter names the organization


def test_a_refusal_names_no_other_organization() -> None:
    need = requirement(org=("org_id", "reports:read"))
    with pytest.raises(InsufficientScope) as refused:
        need.check(person(member(OTHER, "*:**", title="Other Inc")), {"org_id": ORG})
    text = f"{refused.value.description} {refused.value.scope}"
    assert OTHER not in text and "Other" not in text and "*:**" not in text


@pytest.mark.parametrize(
    "bad",
    [
        lambda: requirement(org=("org_id", "reports:*")),  # a route needs one permission
        lambda: requirement(org=("org_id", "*:read")),
        lambda: requirement(org=("org_id", ":read")),
        lambda: requirement(org=("", "reports:read")),
        lambda: requirement(any_scopes=("read:reports", "")),
        lambda: requirement(all_scopes=("read reports",)),
        lambda: requirement(callers=("human",)),  # type: ignore[arg-type]
    ],
)
def test_a_requirement_that_could_never_hold_is_refused_when_declared(bad: Any) -> None:
    with pytest.raises(ValueError):
        bad()


def test_scopes_named_for_the_metadata() -> None:
    need = requirement("a", any_scopes=("b", "a"), all_scopes=("c",), org=("o", "x:read"))
    assert need.scopes == ("a", "b", "c")
    assert Requirement().empty and not need.empty
