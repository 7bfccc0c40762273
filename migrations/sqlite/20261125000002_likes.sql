-- Likes (embedded mode). See the MySQL migration for what each table is for.

CREATE TABLE character_likes (
    ocid          TEXT    PRIMARY KEY,
    likes         INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);

CREATE TABLE like_batches (
    id            TEXT    PRIMARY KEY,
    likes         INTEGER NOT NULL,
    applied_at_ms INTEGER NOT NULL
);
CREATE INDEX like_batches_applied ON like_batches (applied_at_ms);

CREATE TABLE like_idempotency (
    ocid          TEXT    NOT NULL,
    ikey          TEXT    NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (ocid, ikey)
);
CREATE INDEX like_idempotency_created ON like_idempotency (created_at_ms);

CREATE TABLE lock_fences (
    name          TEXT    PRIMARY KEY,
    issued        INTEGER NOT NULL,
    holder        TEXT    NOT NULL,
    issued_at_ms  INTEGER NOT NULL
);
