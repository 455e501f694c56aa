-- One row per SMS session, with its owner (the participant Zoom marks is_session_owner: the user,
-- call queue or auto receptionist the session belongs to) flattened into owner_* columns.
with sessions as (
    select * from {{ source('zoom_sms', 'sms_sessions') }}
),

owners as (
    select session_id, display_name, phone_number, owner_id, owner_type
    from {{ ref('stg_sms_session_participants') }}
    where is_session_owner
)

select
    sessions.session_id,
    sessions.session_type,
    {{ utc_timestamp('sessions.last_access_time') }} as last_access_time,
    owners.owner_id,
    owners.owner_type,
    owners.display_name as owner_display_name,
    owners.phone_number as owner_phone_number
from sessions
left join owners on owners.session_id = sessions.session_id
