{#
  Timestamps without time zone, holding UTC. `timestamp` on PostgreSQL and DuckDB; on Snowflake
  `timestamp` is whatever the account's TIMESTAMP_TYPE_MAPPING says (TIMESTAMP_NTZ by default, but
  it may be LTZ), so the models name TIMESTAMP_NTZ there.
#}
{% macro timestamp_without_time_zone() -%}
  {{ return(adapter.dispatch('timestamp_without_time_zone', 'zoom_sms')()) }}
{%- endmacro %}

{% macro default__timestamp_without_time_zone() -%}
  timestamp
{%- endmacro %}

{% macro snowflake__timestamp_without_time_zone() -%}
  timestamp_ntz
{%- endmacro %}

{#
  A loaded date-time column as UTC without time zone. On Snowflake target-snowflake loads
  TIMESTAMP_TZ (meltano.yml's timestamp_type): the time is converted to UTC first, so the result is
  UTC's wall-clock time whatever offset or session time zone it came with.
#}
{% macro utc_timestamp(column) -%}
  {{ return(adapter.dispatch('utc_timestamp', 'zoom_sms')(column)) }}
{%- endmacro %}

{% macro default__utc_timestamp(column) -%}
  cast({{ column }} as {{ timestamp_without_time_zone() }})
{%- endmacro %}

{% macro snowflake__utc_timestamp(column) -%}
  cast(convert_timezone('UTC', {{ column }}) as {{ timestamp_without_time_zone() }})
{%- endmacro %}
