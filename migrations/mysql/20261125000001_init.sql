-- Characters and the last equipment snapshot of each (distributed mode, MySQL 8 / MariaDB).
-- Names compare case-insensitively, as Nexon's do (SQLite: COLLATE NOCASE).
-- Times are Unix milliseconds (BIGINT) so both dialects store them the same way.

CREATE TABLE characters (
    id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name          VARCHAR(32)     NOT NULL,
    ocid          CHAR(32)        NOT NULL,
    created_at_ms BIGINT          NOT NULL,
    updated_at_ms BIGINT          NOT NULL,
    UNIQUE KEY characters_name (name),
    KEY characters_ocid (ocid)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- The item-equipment JSON, gzip-compressed (350 KB → ~20 KB), with a content hash.
CREATE TABLE equipment_snapshots (
    ocid          CHAR(32)     NOT NULL PRIMARY KEY,
    body_gzip     MEDIUMBLOB   NOT NULL,
    body_sha256   BINARY(32)   NOT NULL,
    body_bytes    INT UNSIGNED NOT NULL,
    fetched_at_ms BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
