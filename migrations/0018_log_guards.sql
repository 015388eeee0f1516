-- Guards that hold whoever holds a runtime credential (and the owner too, unless the owner
-- disables them on purpose).

-- A statement trigger on the partitioned parent does not fire for `TRUNCATE event_log_p0`,
-- so every partition carries its own. (Row triggers — the UPDATE/DELETE guard — are cloned
-- onto partitions by PostgreSQL; TRUNCATE triggers are not.) A partition added later must
-- get one too: `rebuild`/`verify` docs in docs/OPERATIONS.md say so.
DO $$
DECLARE part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'event_log'::regclass LOOP
        EXECUTE format('CREATE TRIGGER event_log_no_truncate BEFORE TRUNCATE ON %s '
                       'FOR EACH STATEMENT EXECUTE FUNCTION event_log_reject_change()', part);
    END LOOP;
END
$$;

-- `org_heads` follows the log, it does not lead it: a head may only name the org's newest
-- event (its org_seq and its hash), and may only move forward by exactly the number of
-- events appended since. So a runtime role that may advance heads cannot rewind one (the
-- next append would collide with stored seqs, or re-link the chain to an older hash) nor
-- point it at a hash of its choosing. Runs as the owner (SECURITY DEFINER) so row-level
-- security on the log cannot hide the rows it must see.
CREATE FUNCTION org_heads_follow_log() RETURNS trigger
    -- STABLE: every query below reads the calling statement's snapshot, so the head and the
    -- log it checks are seen as of one instant (a concurrent first append of the same org
    -- commits its events and its head together; a VOLATILE function would take a new
    -- snapshot per query and could see the events but not yet the head).
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    newest_seq  bigint;
    newest_hash bytea;
    since_old   bigint;
    old_seq     bigint := 0;
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'org_heads rows are never deleted' USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'UPDATE' THEN
        IF NEW.org_id <> OLD.org_id THEN
            RAISE EXCEPTION 'org_heads: org_id cannot change' USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF NEW.last_seq < OLD.last_seq THEN
            RAISE EXCEPTION 'org_heads of org % cannot move back from % to %', OLD.org_id, OLD.last_seq, NEW.last_seq
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        old_seq := OLD.last_seq;
    ELSIF EXISTS (SELECT 1 FROM public.org_heads h WHERE h.org_id = NEW.org_id) THEN
        -- BEFORE INSERT fires before ON CONFLICT is decided: the row is a duplicate that the
        -- primary key refuses (or ON CONFLICT DO NOTHING drops), never a second head.
        RETURN NEW;
    END IF;
    SELECT e.org_seq, e.hash INTO newest_seq, newest_hash
        FROM public.event_log e WHERE e.org_id = NEW.org_id ORDER BY e.org_seq DESC LIMIT 1;
    IF newest_seq IS NULL THEN
        IF NEW.last_seq <> 0 OR NEW.last_hash <> '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea THEN
            RAISE EXCEPTION 'org_heads of org % must start at the genesis head', NEW.org_id
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    IF NEW.last_seq <> newest_seq OR NEW.last_hash <> newest_hash THEN
        RAISE EXCEPTION 'org_heads of org % must name its newest event (org_seq %)', NEW.org_id, newest_seq
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT count(*) INTO since_old FROM public.event_log e
        WHERE e.org_id = NEW.org_id AND e.org_seq > old_seq AND e.org_seq <= NEW.last_seq;
    IF since_old <> NEW.last_seq - old_seq THEN
        RAISE EXCEPTION 'org_heads of org % may advance only by the events appended (% of %)', NEW.org_id,
            since_old, NEW.last_seq - old_seq USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
REVOKE EXECUTE ON FUNCTION org_heads_follow_log() FROM PUBLIC;

CREATE TRIGGER org_heads_follow_log
    BEFORE INSERT OR UPDATE OR DELETE ON org_heads
    FOR EACH ROW EXECUTE FUNCTION org_heads_follow_log();

CREATE TRIGGER org_heads_no_truncate
    BEFORE TRUNCATE ON org_heads
    FOR EACH STATEMENT EXECUTE FUNCTION event_log_reject_change();
