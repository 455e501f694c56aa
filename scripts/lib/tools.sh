# Sourced by the scripts: the tools the end-to-end tests and the demo need, installed by name
# from PyPI and Debian's packages, never by hand.

# Meltano, in its own virtualenv (.tools/meltano), and the project's plugins (.meltano/).
ensure_meltano() {
  local python="${PYTHON:-python3}"
  if [ ! -x .tools/meltano/bin/meltano ]; then
    "$python" -m venv .tools/meltano
  fi
  # meltano[postgres]: psycopg 3, the driver of a system database on PostgreSQL
  # (MELTANO_DATABASE_URI=postgresql+psycopg://...), which several accounts' runs at once share
  if ! .tools/meltano/bin/python -c "import meltano, psycopg" 2>/dev/null; then
    .tools/meltano/bin/python -m pip install -q --disable-pip-version-check "meltano[postgres]==4.4.1"
  fi
  export MELTANO_SEND_ANONYMOUS_USAGE_STATS=false
  .tools/meltano/bin/meltano --log-level=warning install "$@"
}

# PostgreSQL's server binaries from Debian's packages (the tests start their own cluster).
ensure_postgres() {
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq postgresql >/dev/null
  fi
}

# Apache Airflow, in its own virtualenv (.tools/airflow): the DAG test loads the example DAG with
# Airflow's own DagBag. Its dependencies are many and pinned tightly, so they stay apart from the tap's.
ensure_airflow() {
  local python="${PYTHON:-python3}"
  if [ ! -x .tools/airflow/bin/airflow ]; then
    "$python" -m venv .tools/airflow
    .tools/airflow/bin/python -m pip install -q --disable-pip-version-check "apache-airflow==3.3.2"
  fi
}
