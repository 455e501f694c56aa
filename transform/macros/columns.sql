{#
  A source column that may be missing: the personal-data recipe (examples/pii-stream-maps.json)
  drops `message` from the schema, so the loader creates no such column. The staging model then
  carries it as a typed null and builds all the same.
  The column is named as the database stores it: `message` on PostgreSQL and DuckDB, `MESSAGE` on
  Snowflake (target-snowflake creates it unquoted, so upper-case), where a quoted "message" would
  name no column.
#}
{% macro column_or_null(relation, name, type) -%}
  {%- set present = [] -%}
  {%- if execute -%}
    {%- for column in adapter.get_columns_in_relation(relation) if column.name | lower == name -%}
      {%- do present.append(column) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- if present -%}
    cast({{ adapter.quote(present[0].name) }} as {{ type }})
  {%- elif not execute -%}
    cast({{ name }} as {{ type }})
  {%- else -%}
    cast(null as {{ type }})
  {%- endif -%}
{%- endmacro %}
