-- One row per Contact Center SMS engagement; its queues and agents are in their own models.
select
    engagement_id,
    direction,
    {{ utc_timestamp('start_time') }} as start_time,
    {{ utc_timestamp('end_time') }} as end_time,
    contact_center_number,
    consumer_number,
    consumer_display_name,
    country_name,
    {{ json_string_list('sms_types') }} as sms_types,
    cast(total_sent_messages as integer) as total_sent_messages,
    cast(total_received_messages as integer) as total_received_messages,
    cast(total_sent_files as integer) as total_sent_files,
    cast(total_received_files as integer) as total_received_files
from {{ source('zoom_sms', 'contact_center_sms') }}
