{#
  JSON access that works on what each loader makes of the nested fields: target-postgres stores
  objects as jsonb and lists of objects as jsonb[], target-duckdb both as JSON, target-snowflake both
  as VARIANT. Dispatched per adapter, so the models stay the same on PostgreSQL, DuckDB and
  Snowflake; another adapter needs its own <adapter>__ versions, and until then says so when the
  project compiles.
#}

{# Stops the compilation where an adapter has no version of a JSON macro, naming what to add. #}
{% macro json_unsupported(name) -%}
  {{ exceptions.raise_compiler_error(name ~ " has no implementation for the " ~ adapter.type() ~ " adapter: add " ~ adapter.type() ~ "__" ~ name ~ " in transform/macros/json.sql") }}
{%- endmacro %}

{# The text at a path of keys inside a JSON value: json_text('sender', 'owner', 'id'). #}
{% macro json_text(value) -%}
  {{ return(adapter.dispatch('json_text', 'zoom_sms')(value, varargs)) }}
{%- endmacro %}

{% macro default__json_text(value, keys) -%}
  {{ json_unsupported('json_text') }}
{%- endmacro %}

{% macro postgres__json_text(value, keys) -%}
  (to_jsonb({{ value }}) #>> '{ {{- keys | join(',') -}} }')
{%- endmacro %}

{% macro duckdb__json_text(value, keys) -%}
  json_extract_string({{ value }}, '$.{{ keys | join('.') }}')
{%- endmacro %}

{#
  Snowflake: a `:` path into the VARIANT (its keys are case-sensitive, as written here), then
  ::varchar, which gives a string's text without JSON's quotes and a JSON null as SQL null.
#}
{% macro snowflake__json_text(value, keys) -%}
  {{ value }}:{{ keys | join(':') }}::varchar
{%- endmacro %}

{#
  A lateral join giving one row per element of a JSON list, as `alias`.value (the element) and
  `alias`.ordinal (its position, from 1); a null or empty list gives no row.
#}
{% macro join_json_elements(column, alias) -%}
  {{ return(adapter.dispatch('join_json_elements', 'zoom_sms')(column, alias)) }}
{%- endmacro %}

{% macro default__join_json_elements(column, alias) -%}
  {{ json_unsupported('join_json_elements') }}
{%- endmacro %}

{% macro postgres__join_json_elements(column, alias) -%}
  cross join lateral jsonb_array_elements(to_jsonb({{ column }})) with ordinality as {{ alias }}(value, ordinal)
{%- endmacro %}

{% macro duckdb__join_json_elements(column, alias) -%}
  cross join lateral (
    select
      unnest(json_extract({{ column }}, '$[*]')) as value,
      generate_subscripts(json_extract({{ column }}, '$[*]'), 1) as ordinal
  ) as {{ alias }}
{%- endmacro %}

{#
  Snowflake: FLATTEN gives one row per element of the VARIANT list, with its 0-based INDEX; a
  LATERAL inline view (Snowflake's comma form) renames them to the macro's value and ordinal (FLATTEN's output has no ordinal).
#}
{% macro snowflake__join_json_elements(column, alias) -%}
  , lateral (
    select element.value as value, element.index + 1 as ordinal
    from table(flatten(input => {{ column }})) as element
  ) as {{ alias }}
{%- endmacro %}

{# A JSON list of strings as one comma-separated text ('sms,mms'), in the list's order. #}
{% macro json_string_list(column) -%}
  {{ return(adapter.dispatch('json_string_list', 'zoom_sms')(column)) }}
{%- endmacro %}

{% macro default__json_string_list(column) -%}
  {{ json_unsupported('json_string_list') }}
{%- endmacro %}

{% macro postgres__json_string_list(column) -%}
  (select string_agg(element, ',' order by ordinal) from jsonb_array_elements_text(to_jsonb({{ column }})) with ordinality as e(element, ordinal))
{%- endmacro %}

{% macro duckdb__json_string_list(column) -%}
  array_to_string(json_extract_string({{ column }}, '$[*]'), ',')
{%- endmacro %}

{#
  Snowflake: LISTAGG over the FLATTENed list, in its order (array_to_string would do on Snowflake
  itself, but the stand-in the tests build on lacks it). A correlated scalar subquery with an
  aggregate and no GROUP BY, the kind Snowflake accepts in a select list.
#}
{% macro snowflake__json_string_list(column) -%}
  (select listagg(element.value::varchar, ',') within group (order by element.index) from table(flatten(input => {{ column }})) as element)
{%- endmacro %}
