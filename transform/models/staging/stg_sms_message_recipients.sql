-- One row per recipient of a message (its `to_members` list), in the list's order.
select
    messages.message_id,
    messages.session_id,
    cast(member.ordinal as integer) as recipient_index,
    {{ json_text('member.value', 'phone_number') }} as phone_number,
    {{ json_text('member.value', 'display_name') }} as display_name,
    {{ json_text('member.value', 'owner', 'id') }} as owner_id,
    {{ json_text('member.value', 'owner', 'type') }} as owner_type
from {{ source('zoom_sms', 'sms_messages') }} as messages
{{ join_json_elements('messages.to_members', 'member') }}
