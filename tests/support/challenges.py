"""WWW-Authenticate read the way a client reads it (RFC 9110 §11.6.1): one or more challenges,
each a scheme with a token68 or auth-params, all in one comma-separated field value (several
header lines arrive joined by ", ")."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_SCHEME = re.compile(_TOKEN)
_PARAM = re.compile(rf"({_TOKEN})[ \t]*=[ \t]*(?:\"((?:[^\"\\]|\\.)*)\"|({_TOKEN}))")
_TOKEN68 = re.compile(r"([A-Za-z0-9\-._~+/]+=*)[ \t]*(?=,|$)")
_QUOTED_PAIR = re.compile(r"\\(.)")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # as sent; compare with .lower()
    params: dict[str, str] = field(default_factory=dict)  # names lowercased, values unquoted
    token68: str | None = None


def parse_challenges(value: str | None) -> list[Challenge]:
    """Every challenge in a WWW-Authenticate value, in order; ValueError if it is malformed."""
    text = value or ""
    challenges: list[Challenge] = []
    at = 0
    while True:
        at = _skip(text, at, " \t,")
        if at == len(text):
            return challenges
        scheme = _SCHEME.match(text, at)
        if scheme is None:
            raise ValueError(f"no auth-scheme at {at} in {text!r}")
        at = after_scheme = scheme.end()
        at = _skip(text, at, " \t")
        params: dict[str, str] = {}
        token68 = None
        if at > after_scheme and at < len(text) and text[at] != ",":
            single = _TOKEN68.match(text, at)
            if single is not None and _PARAM.match(text, at) is None:
                token68, at = single.group(1), single.end()
            else:
                at = _read_params(text, at, params)
        challenges.append(Challenge(scheme.group(), params, token68))


def _read_params(text: str, at: int, params: dict[str, str]) -> int:
    """auth-params from at; stops before the next challenge's scheme (or at the end)."""
    while (param := _PARAM.match(text, at)) is not None:
        name, quoted, plain = param.groups()
        params[name.lower()] = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else plain
        at = _skip(text, param.end(), " \t")
        if at == len(text):
            return at
        if text[at] != ",":
            raise ValueError(f"expected a comma at {at} in {text!r}")
        following = _skip(text, at, " \t,")
        if _PARAM.match(text, following) is None:
            return following  # a new challenge (or nothing) comes next
        at = following
    raise ValueError(f"expected an auth-param at {at} in {text!r}")


def _skip(text: str, at: int, characters: str) -> int:
    while at < len(text) and text[at] in characters:
        at += 1
    return at


def find_challenge(value: str | None, scheme: str) -> Challenge | None:
    """The first challenge for scheme (case-insensitive), if the value offers one."""
    wanted = scheme.lower()
    return next((c for c in parse_challenges(value) if c.scheme.lower() == wanted), None)
