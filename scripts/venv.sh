# Sourced by the executables in scripts/: run one of this project's Python modules with .venv.
# A fresh clone bootstraps itself through the Makefile's own rule (uv + requirements-dev.lock),
# so `scripts/serve` works before, after or without `make demo` / `make test`.
# Everything the bootstrap prints goes to stderr: `TOKEN=$(scripts/get-token)` stays clean.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

run_module() {
    local module="$1"
    shift
    local python="$ROOT/.venv/bin/python" stamp="$ROOT/.venv/.installed"
    if [[ ! -x "$python" || ! -e "$stamp" || "$ROOT/requirements-dev.lock" -nt "$stamp" ]]; then
        echo "${0##*/}: installing the Python environment first (make .venv/.installed)" >&2
        if ! make --no-print-directory -C "$ROOT" .venv/.installed >&2; then
            echo "${0##*/}: could not install .venv; run 'make install' and read its errors" >&2
            exit 1
        fi
    fi
    # -P: never import from the caller's working directory; src/ and the project root only.
    export PYTHONPATH="$ROOT/src:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
    exec "$python" -P -m "$module" "$@"
}
