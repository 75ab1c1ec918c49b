-- Tenancy: tenants with attribution, API keys (salted hashes only) and durable usage records.
-- usage_records.id is the record's own id, so a writer that retries after a crash inserts nothing twice.
CREATE TABLE IF NOT EXISTS tenants (
    id             uuid        PRIMARY KEY,
    name           text        NOT NULL UNIQUE,
    team           text,
    project        text,
    customer       text,
    cost_center    text,
    environment    text,
    allowed_models text[]      NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS api_keys (
    id          uuid        PRIMARY KEY,
    tenant_id   uuid        NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    prefix      text        NOT NULL UNIQUE,
    salt        bytea       NOT NULL,
    hash        bytea       NOT NULL,
    name        text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz
);

CREATE TABLE IF NOT EXISTS usage_records (
    id          uuid           PRIMARY KEY,
    tenant_id   uuid           NOT NULL,
    key_id      uuid,
    model       text           NOT NULL,
    version     bigint         NOT NULL,
    status      integer        NOT NULL,
    latency_ms  double precision NOT NULL,
    batch_size  integer        NOT NULL,
    cost        numeric(20, 9) NOT NULL,
    currency    text           NOT NULL,
    trace_id    text,
    occurred_at timestamptz    NOT NULL,
    recorded_at timestamptz    NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS usage_records_tenant_time ON usage_records (tenant_id, occurred_at);
CREATE INDEX IF NOT EXISTS usage_records_model_time ON usage_records (model, occurred_at);
