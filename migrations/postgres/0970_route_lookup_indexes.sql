-- Lookups an accept makes, by index instead of by scanning (issue 15 item 8): without these, the
-- held revoke/update rows of a document (sender, target) were found by reading every row of the
-- sender, a document's end of an outbox item by reading every row in its state, and an agency
-- in the directory by reading every unit, so each accept cost more the more rows the node held.
CREATE INDEX route_documents_target ON route_documents (sender_organ, target_document, state);
CREATE INDEX route_documents_envelope ON route_documents (envelope_id, next_node);
CREATE INDEX directory_units_organ_qcvn102 ON directory_units (organ_id_qcvn102);
CREATE INDEX directory_units_organ_d20 ON directory_units (organ_id_d20);
