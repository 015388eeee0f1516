-- Four-eyes: whether whoever requested a containment action may approve it too
-- (`SelfApprovalSet` on the org's containment stream). Off unless an admin allows it.
ALTER TABLE rm_containment_settings ADD COLUMN allow_self_approval boolean NOT NULL DEFAULT false;
