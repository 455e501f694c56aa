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

# The Snowflake tests' tools, in their own virtualenv (.tools/snowflake), never in the project's
# .meltano: fakesnow (a Snowflake stand-in over duckdb 2, where the DuckDB plugins pin 1.1.3) with
# the Snowflake connector it speaks to (<5 for fakesnow), the target-snowflake that meltano.yml
# declares, and dbt-snowflake at meltano.yml's dbt-core. The demo does not call this.
SNOWFLAKE_TOOLS=(
  "fakesnow[server]==0.12.1"
  "snowflake-connector-python==4.8.0"
  "meltanolabs-target-snowflake==0.20.4"
  "dbt-core==1.11.16"
  "dbt-snowflake==1.11.6"
)
ensure_snowflake_tools() {
  local python="${PYTHON:-python3}" stamp=".tools/snowflake/requirements.txt"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$(printf '%s\n' "${SNOWFLAKE_TOOLS[@]}")" ]; then
    rm -rf .tools/snowflake
    "$python" -m venv .tools/snowflake
    .tools/snowflake/bin/python -m pip install -q --disable-pip-version-check "${SNOWFLAKE_TOOLS[@]}"
    printf '%s\n' "${SNOWFLAKE_TOOLS[@]}" > "$stamp"
  fi
}
