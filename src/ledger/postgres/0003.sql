-- cosmocast's ledger on PostgreSQL, migration 3: the outcomes of a batch in one call. A
-- statement per contact finds its row by primary key under any plan, but a batch of a thousand
-- of them costs a thousand round trips of the protocol; a statement that joins the batch to
-- `contacts` costs one, but a generic plan, made while the campaign held a few rows, reads the
-- whole campaign for each batch. This function runs the statement per contact in the server: one
-- call from the writer, each row found by its key.
CREATE FUNCTION cosmocast_settle(
    p_campaign TEXT, p_at TEXT, p_run BIGINT, p_key TEXT[], p_status TEXT[], p_reason TEXT[],
    p_contact_id TEXT[], p_session_id TEXT[], p_message_ids TEXT[], p_queue_id TEXT[],
    p_http_status BIGINT[], p_error TEXT[], p_message_count BIGINT[]
) RETURNS VOID LANGUAGE plpgsql AS $$
DECLARE
    o RECORD;
BEGIN
    FOR o IN SELECT * FROM unnest(p_key, p_status, p_reason, p_contact_id, p_session_id,
            p_message_ids, p_queue_id, p_http_status, p_error, p_message_count)
        AS t(key, status, reason, contact_id, session_id, message_ids, queue_id, http_status,
             error, message_count)
    LOOP
        UPDATE contacts SET status = o.status, reason = o.reason,
            contact_id = COALESCE(o.contact_id, contact_id),
            session_id = COALESCE(o.session_id, session_id),
            message_ids = COALESCE(o.message_ids, message_ids),
            queue_id = COALESCE(o.queue_id, queue_id),
            http_status = o.http_status, error = o.error, updated_at = p_at,
            message_count = COALESCE(o.message_count, message_count)
        WHERE campaign = p_campaign AND key = o.key AND run_id = p_run;
    END LOOP;
END
$$;
