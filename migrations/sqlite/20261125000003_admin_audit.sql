-- Every admin request (see the MySQL migration).
CREATE TABLE admin_audit (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms    INTEGER NOT NULL,
    key_name TEXT    NOT NULL,
    action   TEXT    NOT NULL,
    target   TEXT    NOT NULL,
    status   INTEGER NOT NULL,
    client   TEXT    NOT NULL
);
CREATE INDEX admin_audit_at ON admin_audit (at_ms);
