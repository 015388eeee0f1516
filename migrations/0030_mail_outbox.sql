-- Mail outbox (issue 19): the events that ask for mail are the outbox; the mailer keeps, per
-- org, the org_seq below which every such event is settled (sent or given up), so a restart
-- resumes where it stopped and re-sends whatever has no EmailSent yet.
CREATE TABLE mail_checkpoints (
    org_id   uuid PRIMARY KEY,
    last_seq bigint NOT NULL
);
GRANT SELECT, INSERT, UPDATE ON mail_checkpoints TO xdr_worker;

-- A password reset or change ends every session of the user: find them in the log without
-- scanning the org's telemetry.
CREATE INDEX event_log_session_started_by_user
    ON event_log (org_id, (payload->>'user_id'))
    WHERE event_type = 'SessionStarted';
