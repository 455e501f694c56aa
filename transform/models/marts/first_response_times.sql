-- How long customers wait for an answer: one row per inbound message that follows an outbound
-- one (or opens the session), with the next outbound message of the session as its reply.
-- Messages are ordered by date_time, then message_id (Zoom stamps to the second, and several
-- messages can share one); replied_at and response_seconds are null while no reply came.
with ordered as (
    select
        session_id,
        message_id,
        date_time,
        direction,
        lag(direction) over (partition by session_id order by date_time, message_id) as previous_direction,
        min(case when direction = 'Out' then date_time end) over (
            partition by session_id order by date_time, message_id
            rows between 1 following and unbounded following
        ) as replied_at
    from {{ ref('stg_sms_messages') }}
)

select
    ordered.session_id,
    ordered.message_id,
    sessions.session_type,
    sessions.owner_id,
    sessions.owner_display_name,
    ordered.date_time as inbound_at,
    ordered.replied_at,
    {{ dbt.datediff('ordered.date_time', 'ordered.replied_at', 'second') }} as response_seconds
from ordered
inner join {{ ref('stg_sms_sessions') }} as sessions on sessions.session_id = ordered.session_id
where ordered.direction = 'In' and coalesce(ordered.previous_direction, 'Out') <> 'In'
