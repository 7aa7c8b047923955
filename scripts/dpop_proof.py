"""Print a fresh DPoP proof (RFC 9449) for one request: the value of its `DPoP` header.

    scripts/dpop-proof --key KEYFILE --method GET --url URL [--token TOKEN]

KEYFILE is the key the token is bound to (scripts/get-token --dpop KEYFILE made it). The
proof names the method and URL (without query or fragment), carries a fresh iat and jti, and
`ath`, the hash of the token. TOKEN may come from the environment instead of the command
line, where `ps` would show it. A proof is good for one request: make a new one each time.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from authpi_worker.testing.dpop import proof
from scripts.keyfiles import load_or_make_key


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    parser = argparse.ArgumentParser(
        prog="scripts/dpop-proof",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--key", type=Path, required=True, metavar="KEYFILE")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default=environ.get("TOKEN"), help="default: $TOKEN")
    args = parser.parse_args(argv)
    if not args.key.exists():
        print(
            f"dpop-proof: no key at {args.key} (scripts/get-token --dpop makes one)",
            file=sys.stderr,
        )
        return 2
    if not args.token:
        print("dpop-proof: no token: give --token, or set TOKEN", file=sys.stderr)
        return 2
    try:
        key = load_or_make_key(args.key)
    except ValueError as error:
        print(f"dpop-proof: {error}", file=sys.stderr)
        return 2
    # RFC 9449 §4.2: htu is the URL without its query and fragment.
    htu = urlsplit(args.url)._replace(query="", fragment="").geturl()
    print(proof(key, args.method.upper(), htu, args.token))
    return 0


if __name__ == "__main__":
    sys.exit(main())
