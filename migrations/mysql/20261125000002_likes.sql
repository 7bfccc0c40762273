-- Likes (distributed mode). A like reaches the database in a batch; every batch carries a
-- unique id that is recorded in the same transaction as its counts, so a batch that arrives
-- twice (a retried flush, a leader that died mid-sync, a backup file applied again) counts once.

-- The synced like count of each character (by ocid).
CREATE TABLE character_likes (
    ocid          CHAR(32) NOT NULL PRIMARY KEY,
    likes         BIGINT   NOT NULL,
    updated_at_ms BIGINT   NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_unicode_ci;

-- Batches already applied; pruned after a week (the horizon for re-delivery).
CREATE TABLE like_batches (
    id            VARCHAR(64) NOT NULL PRIMARY KEY,
    likes         BIGINT      NOT NULL,
    applied_at_ms BIGINT      NOT NULL,
    KEY like_batches_applied (applied_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = ascii COLLATE = ascii_bin;

-- Idempotency keys of likes written straight to the database (Redis keeps its own for 24 h).
CREATE TABLE like_idempotency (
    ocid          CHAR(32)     NOT NULL,
    ikey          VARCHAR(128) NOT NULL,
    created_at_ms BIGINT       NOT NULL,
    PRIMARY KEY (ocid, ikey),
    KEY like_idempotency_created (created_at_ms)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;

-- Fencing tokens: each acquisition of a named lock takes the next number; a write guarded by
-- the lock checks in its own transaction that its token is still the newest.
CREATE TABLE lock_fences (
    name          VARCHAR(128) NOT NULL PRIMARY KEY,
    issued        BIGINT       NOT NULL,
    holder        VARCHAR(128) NOT NULL,
    issued_at_ms  BIGINT       NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
