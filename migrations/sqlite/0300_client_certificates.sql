-- Mutual-TLS clients (issue 7): a calling system may authenticate with a client certificate
-- instead of a bearer token; it is identified by the SHA-256 of its DER certificate (hex).
ALTER TABLE clients ADD COLUMN cert_fingerprint TEXT;
CREATE UNIQUE INDEX clients_cert_fingerprint ON clients (cert_fingerprint);
