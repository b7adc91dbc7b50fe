-- Signed directory updates from the province node (issue 15, item 1). Versions are the
-- province's directory_changes ids.
-- The signed updates this node holds (made here by the directory authority, or received,
-- verified and applied), relayed to its peers below it.
CREATE TABLE directory_updates (
    to_version   BIGINT PRIMARY KEY,
    from_version BIGINT NOT NULL,
    bytes        BYTEA NOT NULL,
    recorded_at  TEXT NOT NULL
);
-- 'applied': the authority's version this node's directory is at; 'peer:NODE': the version a
-- peer last said it is at.
CREATE TABLE directory_versions (
    name    TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
