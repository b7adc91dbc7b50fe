-- The agency that holds a routed document at this node (issue 8, directory changes): the addressee
-- (recipient_organ, part of the idempotency key and kept as written in the envelope) or, once the
-- agency directory redirected it (merge), the successor. Operator views and acknowledgements go by it.
ALTER TABLE route_documents ADD COLUMN owner_organ TEXT NOT NULL DEFAULT '';
UPDATE route_documents SET owner_organ = recipient_organ;
CREATE INDEX route_documents_owner ON route_documents (owner_organ, state);
