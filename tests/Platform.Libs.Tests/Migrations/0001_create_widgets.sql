-- Deliberately not idempotent: applying it twice fails, which is what the concurrency test relies on.
CREATE TABLE widgets (id integer PRIMARY KEY, name text NOT NULL);
-- Widen the race window so concurrent runners really overlap.
SELECT pg_sleep(0.3);
