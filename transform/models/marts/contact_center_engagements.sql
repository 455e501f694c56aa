-- Contact Center SMS engagements per queue and agent (an engagement counts once for each of its
-- queue and agent pairs; one without an agent, under a null agent).
with engagements as (
    select * from {{ ref('stg_contact_center_sms') }}
),

queues as (
    select * from {{ ref('stg_contact_center_sms_queues') }}
),

agents as (
    select * from {{ ref('stg_contact_center_sms_agents') }}
)

select
    queues.cc_queue_id,
    queues.queue_name,
    agents.user_id as agent_user_id,
    agents.display_name as agent_display_name,
    count(*) as engagements,
    sum(case when engagements.direction = 'inbound' then 1 else 0 end) as inbound_engagements,
    sum(case when engagements.direction = 'outbound' then 1 else 0 end) as outbound_engagements,
    sum(engagements.total_sent_messages) as total_sent_messages,
    sum(engagements.total_received_messages) as total_received_messages
from engagements
left join queues on queues.engagement_id = engagements.engagement_id
left join agents on agents.engagement_id = engagements.engagement_id
group by 1, 2, 3, 4
