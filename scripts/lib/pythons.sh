# Sourced by scripts/test: the unit tests under every Python that pyproject.toml's classifiers claim
# besides .venv's own (which runs the whole suite), so that the claim is tested, not assumed.
# Each Python gets its own virtualenv made by uv from uv.lock (.tools/pythons/3.1x), with the tap
# and its test extra only; a Python this machine lacks is skipped with one line saying so.

# The unit tests: requests-mock only, no subprocess, emulator, Meltano, PostgreSQL, Airflow or dbt.
# The one list of them; kept short, since it runs once per Python.
UNIT_TEST_MODULES=(
  tests/test_auth.py
  tests/test_core.py
  tests/test_malformed.py
  tests/test_retries.py
  tests/test_schemas.py
  tests/test_windows.py
)

# The minor versions the classifiers claim ("Programming Language :: Python :: 3.1x").
claimed_pythons() {
  grep -o '"Programming Language :: Python :: 3\.[0-9]*"' pyproject.toml | grep -o '3\.[0-9]*'
}

# The interpreter of minor version $1: pyenv's newest, else python3.1x on PATH; empty if neither runs.
find_python() {
  local version="$1" candidate
  for candidate in $(ls -d "$HOME"/.pyenv/versions/"$version".*/bin/python 2>/dev/null | sort -V -r) \
    "$(command -v "python$version" || true)"; do
    if [ -n "$candidate" ] && "$candidate" -c 'import sys' 2>/dev/null; then
      echo "$candidate"
      return
    fi
  done
}

# Run UNIT_TEST_MODULES under each claimed Python other than .venv's; fail if any fails.
test_other_pythons() {
  local own version python env
  own="$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  for version in $(claimed_pythons); do
    [ "$version" = "$own" ] && continue
    python="$(find_python "$version")"
    if [ -z "$python" ]; then
      echo "==> Python $version: SKIPPED, no interpreter (neither ~/.pyenv/versions/$version.* nor python$version on PATH)"
      continue
    fi
    echo "==> Python $version ($python): the unit tests"
    env=".tools/pythons/$version"
    UV_PROJECT_ENVIRONMENT="$env" UV_PYTHON_DOWNLOADS=never \
      .tools/uv/bin/uv sync --quiet --locked --extra test --python "$python"
    "$env/bin/python" -m pytest -q -p no:cacheprovider "${UNIT_TEST_MODULES[@]}"
  done
}
