-- Cost governance: per-tenant rate limits, model prices, budgets with soft thresholds, budget events, and the
-- extra attribution each usage record carries (the request id lets a client-side audit match records to calls).
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS rate_limit_per_second double precision;
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS rate_limit_burst      integer;
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS updated_at            timestamptz NOT NULL DEFAULT now();

ALTER TABLE api_keys ADD COLUMN IF NOT EXISTS last_used_at timestamptz;

ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS request_id     text;
ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS input_elements bigint  NOT NULL DEFAULT 0;
ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS cached         boolean NOT NULL DEFAULT false;

-- A price per model: per 1,000 inferences and/or per input element, in one currency (ISO 4217 code).
CREATE TABLE IF NOT EXISTS model_prices (
    model              text           PRIMARY KEY,
    per_1k_inferences  numeric(20, 9) NOT NULL DEFAULT 0,
    per_input_element  numeric(24, 15) NOT NULL DEFAULT 0,
    currency           text           NOT NULL,
    updated_at         timestamptz    NOT NULL DEFAULT now()
);

-- One budget per tenant: a limit per UTC day or calendar month (UTC), soft thresholds as fractions of the limit.
CREATE TABLE IF NOT EXISTS tenant_budgets (
    tenant_id        uuid             PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    period           text             NOT NULL CHECK (period IN ('daily', 'monthly')),
    limit_amount     numeric(20, 9)   NOT NULL CHECK (limit_amount > 0),
    currency         text             NOT NULL,
    soft_thresholds  double precision[] NOT NULL DEFAULT '{0.8,0.95}',
    updated_at       timestamptz      NOT NULL DEFAULT now()
);

-- Threshold crossings (kind 'soft' at a soft threshold, 'exhausted' at 100 %), written from the Redis buffer.
CREATE TABLE IF NOT EXISTS budget_events (
    id            uuid             PRIMARY KEY,
    tenant_id     uuid             NOT NULL,
    kind          text             NOT NULL,
    threshold     double precision NOT NULL,
    period        text             NOT NULL,
    period_start  timestamptz      NOT NULL,
    spent         numeric(20, 9)   NOT NULL,
    limit_amount  numeric(20, 9)   NOT NULL,
    currency      text             NOT NULL,
    occurred_at   timestamptz      NOT NULL
);

CREATE INDEX IF NOT EXISTS budget_events_tenant_time ON budget_events (tenant_id, occurred_at);
CREATE INDEX IF NOT EXISTS usage_records_request ON usage_records (request_id);
