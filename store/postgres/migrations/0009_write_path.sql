-- 0008: fewer round trips per write, SENT* searched through an index, kick requests
-- numbered in commit order (docs/postgresql.md, "Cost of a write").
--
-- imapd_log_changes: what store/postgres/store.py did in four statements right before
-- COMMIT, now one call: take the transaction-level advisory lock that orders the numbering
-- (its key is passed in: store.postgres.store.COMMIT_LOCK), read max(seq), insert the rows
-- as the next seqs, NOTIFY the last one. A VOLATILE plpgsql function takes a new snapshot
-- per statement under READ COMMITTED, so the max(seq) read after the lock sees every
-- transaction that numbered before (and committed before releasing the lock). Returns the
-- first seq.
CREATE FUNCTION imapd_log_changes(
    p_lock bigint, p_kinds text[], p_users text[], p_payloads text[], p_created text,
    p_channel text
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_first bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT coalesce(max(seq), 0) + 1 INTO v_first FROM change_log;
    INSERT INTO change_log (seq, kind, "user", payload, created)
    SELECT v_first + x.n - 1, x.k, x.u, x.p, p_created
    FROM unnest(p_kinds, p_users, p_payloads) WITH ORDINALITY AS x(k, u, p, n);
    PERFORM pg_notify(p_channel, (v_first + cardinality(p_kinds) - 1)::text);
    RETURN v_first;
END;
$$;

-- imapd_request_kick: a kick request (docs/workers.md) numbered as the change log is: under
-- an advisory lock held to COMMIT, max(id) + 1, so ids increase in commit order and an
-- instance that has read id N has read every id below it (a sequence's nextval does not
-- give that: A takes 10, B takes 11, B commits first, a reader past 11 never sees 10). The
-- beat's clean-up keeps the newest row (store/postgres/cluster.py), so max(id) never goes
-- back. The NOTIFY is delivered at COMMIT.
CREATE FUNCTION imapd_request_kick(
    p_lock bigint, p_session text, p_user text, p_channel text
) RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(p_lock);
    SELECT coalesce(max(id), 0) + 1 INTO v_id FROM cluster_kicks;
    INSERT INTO cluster_kicks (id, session, "user", requested)
    VALUES (v_id, p_session, p_user, extract(epoch FROM clock_timestamp()));
    PERFORM pg_notify(p_channel, v_id::text);
    RETURN v_id;
END;
$$;

-- SENTBEFORE/SENTON/SENTSINCE (RFC 3501 §6.4.4): the Date header's date in its own zone,
-- 'YYYY-MM-DD', computed at APPEND by store/textsearch.py `sent_date` (the function the
-- SQLite store's imap_sent uses), '' when the message has no valid Date, NULL for rows
-- stored before this migration (store/postgres/search.py decides those by a scan, as
-- before). Per message rather than per contents row, so the index is per mailbox.
ALTER TABLE messages ADD COLUMN sent text;
CREATE INDEX messages_sent ON messages (mailbox_id, sent);
