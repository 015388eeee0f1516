-- Write-side uniqueness reservations that span tenants. The log is partitioned by org, so a
-- rule like "one account per e-mail address" needs one small global table, written in the
-- same transaction as the event that claims the name.

CREATE TABLE org_slugs (
    slug   text PRIMARY KEY,
    org_id uuid NOT NULL UNIQUE
);

CREATE TABLE user_emails (
    email   text PRIMARY KEY,   -- lower-cased
    org_id  uuid NOT NULL,
    user_id uuid NOT NULL UNIQUE
);

GRANT SELECT, INSERT ON org_slugs TO xdr_app;
GRANT SELECT, INSERT ON user_emails TO xdr_app;
