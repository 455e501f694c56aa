# Sourced by the scripts: the project virtualenv (.venv) with the tap (editable), its dependencies
# and the dev tools at the versions of uv.lock, installed by uv (itself from PyPI, in .tools/uv);
# and the same versions of the tap's dependencies for the tap's Meltano plugin.
# After a change to the dependencies in pyproject.toml: .tools/uv/bin/uv lock (--upgrade: newest allowed).
UV_VERSION=0.13.8

ensure_uv() {
  local python="${PYTHON:-python3}"
  if ! .tools/uv/bin/uv --version 2>/dev/null | grep -q "^uv $UV_VERSION "; then
    "$python" -m venv .tools/uv
    .tools/uv/bin/python -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"
  fi
}

ensure_venv() {
  ensure_uv
  # --locked: stop if uv.lock no longer matches pyproject.toml, rather than resolving anew
  UV_PYTHON_DOWNLOADS=never .tools/uv/bin/uv sync --quiet --locked --extra dev --python "${PYTHON:-python3}"
  # the tap's own dependencies as pip constraints, for its Meltano plugin (meltano.yml's pip_url)
  .tools/uv/bin/uv export --quiet --locked --no-dev --no-emit-project --no-hashes --format requirements-txt \
    --output-file .venv/tap-constraints.txt
}
