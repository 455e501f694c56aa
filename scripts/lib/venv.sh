# Sourced by the scripts: a project virtualenv with the tap installed (editable) and its dev tools.
ensure_venv() {
  local python="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
  fi
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev]"
}
