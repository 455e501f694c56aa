-- One row per queue of an engagement (its `queues` list).
select
    engagements.engagement_id,
    cast(queue.ordinal as integer) as queue_index,
    {{ json_text('queue.value', 'cc_queue_id') }} as cc_queue_id,
    {{ json_text('queue.value', 'queue_id') }} as queue_id,
    {{ json_text('queue.value', 'queue_name') }} as queue_name
from {{ source('zoom_sms', 'contact_center_sms') }} as engagements
{{ join_json_elements('engagements.queues', 'queue') }}
