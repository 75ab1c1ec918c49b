-- 0001: baseline. The runner itself creates schema_migrations (it must exist before anything is recorded);
-- this migration only establishes the platform's own bookkeeping. Models, tenants and usage tables come in later
-- migrations: add 0002_*.sql and never edit an applied file (its checksum is verified at every start).
CREATE TABLE IF NOT EXISTS platform_settings (
    key        text        PRIMARY KEY,
    value      text        NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
