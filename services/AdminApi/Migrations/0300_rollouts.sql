-- 0300: model rollouts. A rollout splits a model's unversioned traffic between a stable and a candidate version (canary:
-- the candidate answers candidate_percent % of requests; shadow: it gets a copy of that share, compared and discarded).
-- InferenceApi replicas keep the rollouts in effect in memory (pub/sub + reconcile); AdminApi's controller judges each
-- window against the guardrails and records every change as an event. Rows stay after a rollout ends (history);
-- at most one per model is in effect. Versions are not foreign keys: a rollout must outlive a version's deletion as
-- history, and routing only ever uses versions that are active.
CREATE TABLE model_rollouts (
    id                uuid             PRIMARY KEY,
    model_name        text             NOT NULL REFERENCES models (name) ON DELETE CASCADE,
    stable_version    bigint           NOT NULL CHECK (stable_version >= 1),
    candidate_version bigint           NOT NULL CHECK (candidate_version >= 1),
    mode              text             NOT NULL CHECK (mode IN ('canary', 'shadow')),
    candidate_percent double precision NOT NULL CHECK (candidate_percent >= 0 AND candidate_percent <= 100),
    sticky            text             NOT NULL DEFAULT 'none' CHECK (sticky IN ('none', 'request_id', 'entity')),
    guardrails        jsonb            NOT NULL CHECK (jsonb_typeof(guardrails) = 'object'),
    window_ms         bigint           NOT NULL CHECK (window_ms > 0),
    promotion_steps   double precision[] NOT NULL DEFAULT '{}',
    state             text             NOT NULL CHECK (state IN ('running', 'rolled_back', 'promoted', 'ended')),
    generation        bigint           NOT NULL DEFAULT 1,
    step_started_at   timestamptz      NOT NULL,
    created_at        timestamptz      NOT NULL,
    updated_at        timestamptz      NOT NULL,
    CHECK (candidate_version <> stable_version)
);

-- One rollout per model decides routing; InferenceApi reads exactly these rows.
CREATE UNIQUE INDEX model_rollouts_in_effect ON model_rollouts (model_name) WHERE state <> 'ended';

CREATE TABLE model_rollout_events (
    id           bigserial        PRIMARY KEY,
    rollout_id   uuid             NOT NULL REFERENCES model_rollouts (id) ON DELETE CASCADE,
    model_name   text             NOT NULL,
    occurred_at  timestamptz      NOT NULL,
    kind         text             NOT NULL CHECK (kind IN ('created', 'updated', 'step', 'promoted', 'rolled_back', 'ended')),
    actor        text             NOT NULL CHECK (actor IN ('controller', 'admin')),
    from_percent double precision,
    to_percent   double precision NOT NULL,
    mode         text             NOT NULL,
    reason       text             NOT NULL,
    observed     jsonb
);

CREATE INDEX model_rollout_events_rollout ON model_rollout_events (rollout_id, id);
