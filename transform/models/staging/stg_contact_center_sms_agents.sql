-- One row per agent of an engagement (its `agents` list).
select
    engagements.engagement_id,
    cast(agent.ordinal as integer) as agent_index,
    {{ json_text('agent.value', 'user_id') }} as user_id,
    {{ json_text('agent.value', 'display_name') }} as display_name
from {{ source('zoom_sms', 'contact_center_sms') }} as engagements
{{ join_json_elements('engagements.agents', 'agent') }}
