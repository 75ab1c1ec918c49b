-- Context enrichment (services/ContextEnrichment): entity features and documents with embeddings.
-- Postgres is the source of truth; Redis caches features, and each ContextEnrichment replica keeps
-- an in-memory copy of the vectors for exact similarity search.
CREATE TABLE IF NOT EXISTS entity_features (
    feature_set  text        NOT NULL,
    entity_key   text        NOT NULL,
    vals         real[]      NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (feature_set, entity_key)
);

CREATE TABLE IF NOT EXISTS documents (
    id          uuid        PRIMARY KEY,
    collection  text        NOT NULL,
    body        text        NOT NULL,
    metadata    jsonb       NOT NULL DEFAULT '{}'::jsonb,
    embedding   real[]      NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE INDEX IF NOT EXISTS documents_collection ON documents (collection);
