-- Agency directory (PostgreSQL): one People's Committee per administrative unit, keyed by
-- (structure, gso_code); a 5-digit code names a different area in the 2024 and 2025 structures.
CREATE TABLE directory_units (
    structure        TEXT NOT NULL,
    gso_code         TEXT NOT NULL,
    name             TEXT NOT NULL,
    unit_type        TEXT NOT NULL,
    level            TEXT NOT NULL,
    parent_code      TEXT,
    organ_id_qcvn102 TEXT,
    organ_id_d20     TEXT,
    state            TEXT NOT NULL DEFAULT 'active',
    successor        TEXT,
    effective_from   TEXT,
    PRIMARY KEY (structure, gso_code)
);
CREATE UNIQUE INDEX directory_units_qcvn102 ON directory_units (structure, organ_id_qcvn102);
CREATE UNIQUE INDEX directory_units_d20 ON directory_units (structure, organ_id_d20);
CREATE INDEX directory_units_parent ON directory_units (structure, parent_code);
CREATE TABLE directory_changes (
    id          BIGSERIAL PRIMARY KEY,
    structure   TEXT NOT NULL,
    kind        TEXT NOT NULL,
    gso_code    TEXT NOT NULL,
    detail      TEXT NOT NULL,
    effective   TEXT NOT NULL,
    recorded_at TEXT NOT NULL
);
