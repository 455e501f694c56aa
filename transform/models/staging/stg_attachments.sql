-- One row per attachment of a message (the tap's attachments stream). download_url is left out:
-- its JWT grants access to the file, and expires within the hour anyway.
select
    message_id,
    id,
    session_id,
    {{ utc_timestamp('date_time') }} as date_time,
    name,
    cast(size as bigint) as size,
    type,
    stored_path,
    sha256,
    cast(downloaded_size as bigint) as downloaded_size,
    download_error
from {{ source('zoom_sms', 'attachments') }}
