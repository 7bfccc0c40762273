-- Characters and the last equipment snapshot of each (embedded mode, SQLite).
-- Names compare case-insensitively, as Nexon's do (MySQL: utf8mb4_unicode_ci).
-- Times are Unix milliseconds (INTEGER) so both dialects store them the same way.

CREATE TABLE characters (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    ocid          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE INDEX characters_ocid ON characters (ocid);

-- The item-equipment JSON, gzip-compressed (350 KB → ~20 KB), with a content hash.
CREATE TABLE equipment_snapshots (
    ocid          TEXT    PRIMARY KEY,
    body_gzip     BLOB    NOT NULL,
    body_sha256   BLOB    NOT NULL,
    body_bytes    INTEGER NOT NULL,
    fetched_at_ms INTEGER NOT NULL
);
