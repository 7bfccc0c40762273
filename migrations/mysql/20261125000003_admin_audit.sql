-- Every admin request: who (key name, or "-" when the key was missing or invalid), what,
-- when, from where, and how it ended.
CREATE TABLE admin_audit (
    id       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
    at_ms    BIGINT          NOT NULL,
    key_name VARCHAR(64)     NOT NULL,
    action   VARCHAR(64)     NOT NULL,
    target   VARCHAR(256)    NOT NULL,
    status   SMALLINT        NOT NULL,
    client   VARCHAR(64)     NOT NULL,
    KEY admin_audit_at (at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;
