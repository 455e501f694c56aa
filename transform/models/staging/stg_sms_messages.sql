-- One row per message, its sender flattened into sender_* columns. `message` (the text) is null
-- where the personal-data recipe dropped it.
{% set messages = source('zoom_sms', 'sms_messages') %}
select
    message_id,
    session_id,
    {{ utc_timestamp('date_time') }} as date_time,
    direction,
    cast(message_type as integer) as message_type,
    {{ column_or_null(messages, 'message', dbt.type_string()) }} as message,
    {{ json_text('sender', 'phone_number') }} as sender_phone_number,
    {{ json_text('sender', 'display_name') }} as sender_display_name,
    {{ json_text('sender', 'owner', 'id') }} as sender_owner_id,
    {{ json_text('sender', 'owner', 'type') }} as sender_owner_type
from {{ messages }}
