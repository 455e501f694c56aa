-- Messages per UTC day, by the session's type and owner and by direction.
select
    cast(messages.date_time as date) as day,
    sessions.session_type,
    sessions.owner_id,
    sessions.owner_type,
    sessions.owner_display_name,
    messages.direction,
    count(*) as messages
from {{ ref('stg_sms_messages') }} as messages
inner join {{ ref('stg_sms_sessions') }} as sessions on sessions.session_id = messages.session_id
group by 1, 2, 3, 4, 5, 6
