-- 0002: model registry. A model has settings and numbered versions; each version's ONNX file lives in the object store
-- under models/sha256/<sha256> (identical bytes are stored once). Versions are numbered per model from next_version,
-- which only grows, so a deleted version's number is never reused.
CREATE TABLE models (
    name               text        PRIMARY KEY,
    next_version       bigint      NOT NULL DEFAULT 1,
    max_batch_size     integer     NOT NULL DEFAULT 32      CHECK (max_batch_size BETWEEN 1 AND 4096),
    max_queue_delay_us bigint      NOT NULL DEFAULT 1000    CHECK (max_queue_delay_us BETWEEN 0 AND 10000000),
    queue_capacity     integer     NOT NULL DEFAULT 1024    CHECK (queue_capacity BETWEEN 1 AND 1000000),
    cache_enabled      boolean     NOT NULL DEFAULT false,
    cache_ttl_seconds  integer     NOT NULL DEFAULT 300     CHECK (cache_ttl_seconds BETWEEN 1 AND 2592000),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_versions (
    model_name text        NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    version    bigint      NOT NULL CHECK (version >= 1),
    sha256     text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    size_bytes bigint      NOT NULL CHECK (size_bytes > 0),
    inputs     jsonb       NOT NULL,
    outputs    jsonb       NOT NULL,
    state      text        NOT NULL DEFAULT 'inactive' CHECK (state IN ('inactive', 'active')),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model_name, version),
    UNIQUE (model_name, sha256)
);

-- Workers list the active set on every reconcile; deletes look up other users of the same bytes.
CREATE INDEX model_versions_active ON model_versions (model_name, version) WHERE state = 'active';
CREATE INDEX model_versions_sha256 ON model_versions (sha256);
