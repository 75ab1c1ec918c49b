-- 0101: feature bindings per model version (which input InferenceApi fills from which ContextEnrichment feature set,
-- with an optional default), as a JSON array [{"input","featureSet","default"}]. A column rather than a table: the list
-- is small, always read together with its version (the active-model views load it with the rest of the row), goes when
-- the version is deleted, and is replaced whole by PUT /api/models/{name}/versions/{v}/bindings.
ALTER TABLE model_versions ADD COLUMN IF NOT EXISTS feature_bindings jsonb NOT NULL DEFAULT '[]'::jsonb
    CHECK (jsonb_typeof(feature_bindings) = 'array');
