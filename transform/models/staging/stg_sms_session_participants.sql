-- One row per participant of a session (its `participants` list), in the list's order.
select
    sessions.session_id,
    cast(participant.ordinal as integer) as participant_index,
    {{ json_text('participant.value', 'display_name') }} as display_name,
    {{ json_text('participant.value', 'phone_number') }} as phone_number,
    cast({{ json_text('participant.value', 'is_session_owner') }} as boolean) as is_session_owner,
    {{ json_text('participant.value', 'owner', 'id') }} as owner_id,
    {{ json_text('participant.value', 'owner', 'type') }} as owner_type,
    {{ json_text('participant.value', 'extension_status') }} as extension_status,
    cast(replace({{ json_text('participant.value', 'extension_deleted_time') }}, 'Z', '') as {{ timestamp_without_time_zone() }})
        as extension_deleted_time
from {{ source('zoom_sms', 'sms_sessions') }} as sessions
{{ join_json_elements('sessions.participants', 'participant') }}
