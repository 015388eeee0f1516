-- The session list shows where each session signed in from: the client's address (from the
-- SessionStarted event's metadata) and its User-Agent (from the event).
ALTER TABLE rm_user_sessions ADD COLUMN ip text, ADD COLUMN user_agent text;
