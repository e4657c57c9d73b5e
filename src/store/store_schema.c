/* store_schema: the schema, as migrations of each engine.  Append only:
 * never edit a migration that has shipped; a new table or column is a new
 * migration in both lists. */
#include "store_internal.h"

/* Migration N takes user_version from N to N+1; append only. */
const char *const store_lite_migrations[] = {
	/* 0 -> 1: the original system's models, plus runs and run events. */
	"CREATE TABLE projects ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
	"  image_providers TEXT NOT NULL DEFAULT '[]', params TEXT NOT NULL DEFAULT '{}',"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE TABLE project_stages ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  stage_type TEXT NOT NULL, status TEXT NOT NULL,"
	"  started_at TEXT, completed_at TEXT, error TEXT,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  UNIQUE (project_id, stage_type));"
	"CREATE TABLE storyboards ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  position INTEGER NOT NULL, image_prompt TEXT NOT NULL,"
	"  negative_prompt TEXT NOT NULL DEFAULT '', params TEXT NOT NULL DEFAULT '{}',"
	"  created_at TEXT NOT NULL, UNIQUE (project_id, position));"
	"CREATE TABLE model_providers ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	"  provider_type TEXT NOT NULL DEFAULT 'text2image', plugin TEXT NOT NULL,"
	"  model_name TEXT NOT NULL DEFAULT '', api_url TEXT NOT NULL DEFAULT '',"
	"  is_default INTEGER NOT NULL DEFAULT 0,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE TABLE runs ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL, storyboard_ids TEXT, no_cache INTEGER NOT NULL DEFAULT 0,"
	"  total INTEGER NOT NULL, success_count INTEGER NOT NULL DEFAULT 0,"
	"  failed_count INTEGER NOT NULL DEFAULT 0, last_seq INTEGER NOT NULL DEFAULT 0,"
	"  pid INTEGER, started_at TEXT NOT NULL, finished_at TEXT);"
	"CREATE INDEX runs_project ON runs (project_id, started_at);"
	"CREATE TABLE generated_images ("
	"  id TEXT PRIMARY KEY,"
	"  storyboard_id TEXT NOT NULL REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  run_id TEXT REFERENCES runs(id) ON DELETE SET NULL,"
	"  image_url TEXT, thumbnail_url TEXT, generation_params TEXT NOT NULL DEFAULT '{}',"
	"  model_provider_id TEXT REFERENCES model_providers(id),"
	"  status TEXT NOT NULL CHECK (status IN"
	"    ('pending', 'processing', 'completed', 'failed')),"
	"  width INTEGER, height INTEGER, file_size INTEGER, file_path TEXT,"
	"  thumbnail_path TEXT, sha256 TEXT, mime TEXT, error TEXT,"
	"  attempts INTEGER NOT NULL DEFAULT 0, cached INTEGER NOT NULL DEFAULT 0,"
	"  cache_key TEXT, is_primary INTEGER NOT NULL DEFAULT 1,"
	"  primary_id TEXT REFERENCES generated_images(id) ON DELETE CASCADE,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE INDEX generated_images_storyboard ON generated_images (storyboard_id, status);"
	"CREATE INDEX generated_images_run ON generated_images (run_id);"
	"CREATE INDEX generated_images_cache ON generated_images (cache_key)"
	"  WHERE status = 'completed' AND is_primary = 1;"
	"CREATE TABLE run_events ("
	"  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,"
	"  PRIMARY KEY (run_id, seq)) WITHOUT ROWID;",
	/* 1 -> 2: the latest image of a storyboard, read on every GET of a
	 * project, without scanning the storyboard's whole history. */
	"CREATE INDEX generated_images_latest ON generated_images"
	"  (storyboard_id, is_primary, created_at);",
	/* 2 -> 3: the provider task a plugin submitted and checkpointed (paid
	 * for), per storyboard, provider and generation parameters, so that a
	 * later attempt polls it instead of paying again (store_task.c). */
	"CREATE TABLE provider_tasks ("
	"  storyboard_id TEXT NOT NULL REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  model_provider_id TEXT NOT NULL REFERENCES model_providers(id),"
	"  cache_key TEXT NOT NULL,"
	"  image_id TEXT REFERENCES generated_images(id) ON DELETE SET NULL,"
	"  state TEXT NOT NULL CHECK (json_valid(state) AND json_type(state) = 'object'),"
	"  checkpoints INTEGER NOT NULL DEFAULT 1,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  PRIMARY KEY (storyboard_id, model_provider_id, cache_key)) WITHOUT ROWID;"
	"CREATE INDEX provider_tasks_image ON provider_tasks (image_id);",
	/* 3 -> 4: the webhook outbox, one row per event and endpoint, written
	 * in the transaction that records the event (store_webhook.c).  No
	 * secret is stored: rows are signed when they are sent. */
	"CREATE TABLE webhook_outbox ("
	"  webhook_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL,"
	"  run_id TEXT NOT NULL, seq INTEGER NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending', 'delivered', 'gave_up')),"
	"  attempts INTEGER NOT NULL DEFAULT 0, queued_ms INTEGER NOT NULL,"
	"  next_attempt_ms INTEGER NOT NULL, last_attempt_ms INTEGER,"
	"  last_status INTEGER, last_error TEXT, delivered_ms INTEGER,"
	"  UNIQUE (run_id, seq, endpoint),"
	"  FOREIGN KEY (run_id, seq) REFERENCES run_events (run_id, seq) ON DELETE CASCADE);"
	"CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_ms)"
	"  WHERE status = 'pending';",
	/* 4 -> 5: GET /v1/projects pages newest first by (created_at, rowid). */
	"CREATE INDEX projects_created"
	"  ON projects (created_at);",
	/* 5 -> 6: each storyboard's current image status (its latest completed
	 * primary image's, else its latest primary image's; NULL: none yet),
	 * and a project's storyboards counted by it, both kept by triggers on
	 * every write (whichever process makes it).  A project's counts then
	 * cost one indexed read, not a lookup per storyboard: 65 ms for
	 * 10,000 storyboards, on every view of the project. */
	"CREATE TABLE storyboard_status ("
	"  storyboard_id TEXT PRIMARY KEY REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  project_id TEXT NOT NULL, status TEXT) WITHOUT ROWID;"
	"CREATE TABLE project_counts ("
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL, n INTEGER NOT NULL,"
	"  PRIMARY KEY (project_id, status)) WITHOUT ROWID;"
	"INSERT INTO storyboard_status (storyboard_id, project_id, status)"
	"  SELECT s.id, s.project_id, (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = s.id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  FROM storyboards s;"
	"INSERT INTO project_counts (project_id, status, n)"
	"  SELECT project_id, coalesce(status, 'not_started'), count(*)"
	"  FROM storyboard_status GROUP BY 1, 2;"
	"CREATE TRIGGER storyboards_status_insert AFTER INSERT ON storyboards BEGIN"
	"  INSERT INTO storyboard_status (storyboard_id, project_id, status)"
	"  VALUES (NEW.id, NEW.project_id, NULL); END;"
	"CREATE TRIGGER storyboard_status_insert AFTER INSERT ON storyboard_status BEGIN"
	"  INSERT INTO project_counts (project_id, status, n)"
	"  VALUES (NEW.project_id, coalesce(NEW.status, 'not_started'), 1)"
	"  ON CONFLICT (project_id, status) DO UPDATE SET n = n + 1; END;"
	"CREATE TRIGGER storyboard_status_delete AFTER DELETE ON storyboard_status BEGIN"
	"  UPDATE project_counts SET n = n - 1 WHERE project_id = OLD.project_id"
	"  AND status = coalesce(OLD.status, 'not_started'); END;"
	"CREATE TRIGGER storyboard_status_update AFTER UPDATE OF status ON storyboard_status"
	"  WHEN OLD.status IS NOT NEW.status BEGIN"
	"  UPDATE project_counts SET n = n - 1 WHERE project_id = OLD.project_id"
	"  AND status = coalesce(OLD.status, 'not_started');"
	"  INSERT INTO project_counts (project_id, status, n)"
	"  VALUES (NEW.project_id, coalesce(NEW.status, 'not_started'), 1)"
	"  ON CONFLICT (project_id, status) DO UPDATE SET n = n + 1; END;"
	"CREATE TRIGGER images_status_insert AFTER INSERT ON generated_images"
	"  WHEN NEW.is_primary = 1 BEGIN"
	"  UPDATE storyboard_status SET status = (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = NEW.storyboard_id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  WHERE storyboard_id = NEW.storyboard_id; END;"
	"CREATE TRIGGER images_status_update"
	"  AFTER UPDATE OF status, is_primary, created_at ON generated_images BEGIN"
	"  UPDATE storyboard_status SET status = (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = NEW.storyboard_id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  WHERE storyboard_id = NEW.storyboard_id; END;"
	"CREATE TRIGGER images_status_delete AFTER DELETE ON generated_images"
	"  WHEN OLD.is_primary = 1 BEGIN"
	"  UPDATE storyboard_status SET status = (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = OLD.storyboard_id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  WHERE storyboard_id = OLD.storyboard_id; END;",
	/* 6 -> 7: the spend ledger, one row per request handed to a provider,
	 * reserved before it is sent and settled on the answer
	 * (store_spend.c), and the runs queued until the service has room
	 * for them (status 'queued'), taken oldest first.  A project's
	 * deletion keeps its spend: a day's budget counts it. */
	"CREATE TABLE spend_ledger ("
	"  id INTEGER PRIMARY KEY, provider TEXT NOT NULL,"
	"  run_id TEXT REFERENCES runs(id) ON DELETE SET NULL, image_id TEXT,"
	"  day TEXT NOT NULL, cost REAL NOT NULL CHECK (cost >= 0),"
	"  outcome TEXT NOT NULL DEFAULT 'reserved' CHECK (outcome IN"
	"    ('reserved', 'completed', 'failed', 'refused', 'local', 'unknown')),"
	"  error_class TEXT, created_at TEXT NOT NULL, settled_at TEXT);"
	"CREATE INDEX spend_ledger_day ON spend_ledger (day, provider);"
	"CREATE INDEX spend_ledger_run ON spend_ledger (run_id, provider);"
	"CREATE INDEX runs_queued ON runs (started_at) WHERE status = 'queued';",
};


/* The same migrations for PostgreSQL, kept in step with SQLite's: version N
 * means the same tables on both.  PostgreSQL's first also has what only
 * several instances need (no PostgreSQL database predates it): the lease of
 * a generation (lease_owner, lease_token, lease_until, ready_at, begun, and
 * chain_attempts: the attempts on its current provider; position: its
 * storyboard's, so that claims come in order from the index, unsorted),
 * the counters a run's events are numbered and counted from (runs.last_seq,
 * runs.started), a cancel any instance can ask for (runs.cancel_requested),
 * and the instances alive (cluster_instances).  Integers are BIGINT
 * throughout, as SQLite's are 64 bits; times stay the same ISO text;
 * projects.rowid stands in for SQLite's implicit one. */
const char *const store_pg_migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE projects ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL DEFAULT '',"
	"  image_providers TEXT NOT NULL DEFAULT '[]', params TEXT NOT NULL DEFAULT '{}',"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  rowid BIGSERIAL NOT NULL UNIQUE);"
	"CREATE TABLE project_stages ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  stage_type TEXT NOT NULL, status TEXT NOT NULL,"
	"  started_at TEXT, completed_at TEXT, error TEXT,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  UNIQUE (project_id, stage_type));"
	"CREATE TABLE storyboards ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  position BIGINT NOT NULL, image_prompt TEXT NOT NULL,"
	"  negative_prompt TEXT NOT NULL DEFAULT '', params TEXT NOT NULL DEFAULT '{}',"
	"  created_at TEXT NOT NULL, UNIQUE (project_id, position));"
	"CREATE TABLE model_providers ("
	"  id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
	"  provider_type TEXT NOT NULL DEFAULT 'text2image', plugin TEXT NOT NULL,"
	"  model_name TEXT NOT NULL DEFAULT '', api_url TEXT NOT NULL DEFAULT '',"
	"  is_default BIGINT NOT NULL DEFAULT 0,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL);"
	"CREATE TABLE runs ("
	"  id TEXT PRIMARY KEY,"
	"  project_id TEXT NOT NULL REFERENCES projects(id) ON DELETE CASCADE,"
	"  status TEXT NOT NULL, storyboard_ids TEXT, no_cache BIGINT NOT NULL DEFAULT 0,"
	"  total BIGINT NOT NULL, success_count BIGINT NOT NULL DEFAULT 0,"
	"  failed_count BIGINT NOT NULL DEFAULT 0, last_seq BIGINT NOT NULL DEFAULT 0,"
	"  pid BIGINT, started_at TEXT NOT NULL, finished_at TEXT,"
	"  started BIGINT NOT NULL DEFAULT 0, cancel_requested BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX runs_project ON runs (project_id, started_at);"
	"CREATE INDEX runs_processing ON runs (started_at) WHERE status = 'processing';"
	"CREATE TABLE generated_images ("
	"  id TEXT PRIMARY KEY,"
	"  storyboard_id TEXT NOT NULL REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  run_id TEXT REFERENCES runs(id) ON DELETE SET NULL,"
	"  image_url TEXT, thumbnail_url TEXT, generation_params TEXT NOT NULL DEFAULT '{}',"
	"  model_provider_id TEXT REFERENCES model_providers(id),"
	"  status TEXT NOT NULL CHECK (status IN"
	"    ('pending', 'processing', 'completed', 'failed')),"
	"  width BIGINT, height BIGINT, file_size BIGINT, file_path TEXT,"
	"  thumbnail_path TEXT, sha256 TEXT, mime TEXT, error TEXT,"
	"  attempts BIGINT NOT NULL DEFAULT 0, cached BIGINT NOT NULL DEFAULT 0,"
	"  cache_key TEXT, is_primary BIGINT NOT NULL DEFAULT 1,"
	"  primary_id TEXT REFERENCES generated_images(id) ON DELETE CASCADE,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  lease_owner TEXT, lease_token TEXT, lease_until BIGINT,"
	"  ready_at BIGINT NOT NULL DEFAULT 0, begun BIGINT NOT NULL DEFAULT 0,"
	"  chain_attempts BIGINT NOT NULL DEFAULT 0, position BIGINT NOT NULL DEFAULT 0);"
	"CREATE INDEX generated_images_storyboard ON generated_images (storyboard_id, status);"
	"CREATE INDEX generated_images_run ON generated_images (run_id);"
	"CREATE INDEX generated_images_cache ON generated_images (cache_key)"
	"  WHERE status = 'completed' AND is_primary = 1;"
	/* What a claim looks for, and only that: pending primaries by time. */
	"CREATE INDEX generated_images_runnable ON generated_images"
	"  (run_id, model_provider_id, ready_at, position)"
	"  WHERE status = 'pending' AND is_primary = 1;"
	/* Identical requests of a run, which a claim takes one at a time. */
	"CREATE INDEX generated_images_run_key ON generated_images (run_id, cache_key)"
	"  WHERE status IN ('pending', 'processing') AND is_primary = 1;"
	/* What the rescue looks for: leases that may have expired. */
	"CREATE INDEX generated_images_leased ON generated_images (lease_until)"
	"  WHERE status = 'processing';"
	"CREATE TABLE run_events ("
	"  run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,"
	"  seq BIGINT NOT NULL, type TEXT NOT NULL, body TEXT NOT NULL,"
	"  PRIMARY KEY (run_id, seq));"
	/* Every event is announced to the instances that LISTEN, with a tiny
	 * payload (run:seq; NOTIFY holds at most 8000 bytes), at its commit. */
	"CREATE FUNCTION t2i_notify_event() RETURNS trigger LANGUAGE plpgsql AS $$"
	"  BEGIN PERFORM pg_notify('t2i_events', NEW.run_id || ':' || NEW.seq); RETURN NULL;"
	"  END $$;"
	"CREATE TRIGGER run_events_notify AFTER INSERT ON run_events"
	"  FOR EACH ROW EXECUTE FUNCTION t2i_notify_event();"
	"CREATE TABLE cluster_instances ("
	"  name TEXT PRIMARY KEY, host TEXT NOT NULL, pid BIGINT NOT NULL,"
	"  started_ms BIGINT NOT NULL, heartbeat_ms BIGINT NOT NULL,"
	"  providers TEXT NOT NULL, storage_marker TEXT NOT NULL,"
	"  stopped BIGINT NOT NULL DEFAULT 0);",
	/* 1 -> 2 */
	"CREATE INDEX generated_images_latest ON generated_images"
	"  (storyboard_id, is_primary, created_at);",
	/* 2 -> 3 */
	"CREATE TABLE provider_tasks ("
	"  storyboard_id TEXT NOT NULL REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  model_provider_id TEXT NOT NULL REFERENCES model_providers(id),"
	"  cache_key TEXT NOT NULL,"
	"  image_id TEXT REFERENCES generated_images(id) ON DELETE SET NULL,"
	"  state TEXT NOT NULL CHECK (jsonb_typeof(state::jsonb) = 'object'),"
	"  checkpoints BIGINT NOT NULL DEFAULT 1,"
	"  created_at TEXT NOT NULL, updated_at TEXT NOT NULL,"
	"  PRIMARY KEY (storyboard_id, model_provider_id, cache_key));"
	"CREATE INDEX provider_tasks_image ON provider_tasks (image_id);",
	/* 3 -> 4 */
	"CREATE TABLE webhook_outbox ("
	"  webhook_id TEXT PRIMARY KEY, endpoint TEXT NOT NULL,"
	"  run_id TEXT NOT NULL, seq BIGINT NOT NULL,"
	"  status TEXT NOT NULL DEFAULT 'pending'"
	"    CHECK (status IN ('pending', 'delivered', 'gave_up')),"
	"  attempts BIGINT NOT NULL DEFAULT 0, queued_ms BIGINT NOT NULL,"
	"  next_attempt_ms BIGINT NOT NULL, last_attempt_ms BIGINT,"
	"  last_status BIGINT, last_error TEXT, delivered_ms BIGINT,"
	"  UNIQUE (run_id, seq, endpoint),"
	"  FOREIGN KEY (run_id, seq) REFERENCES run_events (run_id, seq) ON DELETE CASCADE);"
	"CREATE INDEX webhook_outbox_due ON webhook_outbox (next_attempt_ms)"
	"  WHERE status = 'pending';",
	/* 4 -> 5 */
	"CREATE INDEX projects_created ON projects (created_at);",
	/* 5 -> 6: each storyboard's current image status, kept by PL/pgSQL
	 * triggers as SQLite's are, and counted per project by a read of
	 * storyboard_status (index storyboard_status_project).  No
	 * project_counts here: a counter row per project and status would be
	 * written by every instance's every transaction and held locked to
	 * its commit, so the instances would queue on it, and two
	 * transactions that move storyboards between statuses in opposite
	 * orders (one claims as the other completes) would deadlock.  A
	 * storyboard's own row is written only by the holder of its lease.
	 * generated_images.rowid stands in for SQLite's, in insert order, for
	 * the pages of a project's images. */
	"CREATE TABLE storyboard_status ("
	"  storyboard_id TEXT PRIMARY KEY REFERENCES storyboards(id) ON DELETE CASCADE,"
	"  project_id TEXT NOT NULL, status TEXT);"
	"CREATE INDEX storyboard_status_project ON storyboard_status (project_id, status);"
	"ALTER TABLE generated_images ADD COLUMN rowid BIGSERIAL NOT NULL UNIQUE;"
	"CREATE INDEX generated_images_page ON generated_images (storyboard_id, rowid);"
	"INSERT INTO storyboard_status (storyboard_id, project_id, status)"
	"  SELECT s.id, s.project_id, (SELECT g.status FROM generated_images g"
	"  WHERE g.storyboard_id = s.id AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1)"
	"  FROM storyboards s;"
	"CREATE FUNCTION t2i_storyboard_status_insert() RETURNS trigger LANGUAGE plpgsql AS $$"
	"  BEGIN INSERT INTO storyboard_status (storyboard_id, project_id, status)"
	"  VALUES (NEW.id, NEW.project_id, NULL); RETURN NULL; END $$;"
	"CREATE TRIGGER storyboards_status_insert AFTER INSERT ON storyboards"
	"  FOR EACH ROW EXECUTE FUNCTION t2i_storyboard_status_insert();"
	"CREATE FUNCTION t2i_image_status() RETURNS trigger LANGUAGE plpgsql AS $$"
	"  DECLARE sb TEXT; cur TEXT;"
	"  BEGIN"
	"  IF TG_OP = 'DELETE' THEN sb := OLD.storyboard_id; ELSE sb := NEW.storyboard_id;"
	"  END IF;"
	"  SELECT g.status INTO cur FROM generated_images g"
	"  WHERE g.storyboard_id = sb AND g.is_primary = 1"
	"  ORDER BY (g.status = 'completed') DESC, g.created_at DESC, g.id DESC LIMIT 1;"
	"  UPDATE storyboard_status SET status = cur"
	"  WHERE storyboard_id = sb AND status IS DISTINCT FROM cur;"
	"  RETURN NULL; END $$;"
	"CREATE TRIGGER images_status_insert AFTER INSERT ON generated_images"
	"  FOR EACH ROW WHEN (NEW.is_primary = 1) EXECUTE FUNCTION t2i_image_status();"
	"CREATE TRIGGER images_status_update"
	"  AFTER UPDATE OF status, is_primary, created_at ON generated_images"
	"  FOR EACH ROW EXECUTE FUNCTION t2i_image_status();"
	"CREATE TRIGGER images_status_delete AFTER DELETE ON generated_images"
	"  FOR EACH ROW WHEN (OLD.is_primary = 1) EXECUTE FUNCTION t2i_image_status();",
	/* 6 -> 7: the spend ledger and the queued runs, as SQLite's; and
	 * each provider's rate bucket, which every instance takes its tokens
	 * from under the provider's row lock (store_rate_refill). */
	"CREATE TABLE spend_ledger ("
	"  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, provider TEXT NOT NULL,"
	"  run_id TEXT REFERENCES runs(id) ON DELETE SET NULL, image_id TEXT,"
	"  day TEXT NOT NULL, cost DOUBLE PRECISION NOT NULL CHECK (cost >= 0),"
	"  outcome TEXT NOT NULL DEFAULT 'reserved' CHECK (outcome IN"
	"    ('reserved', 'completed', 'failed', 'refused', 'local', 'unknown')),"
	"  error_class TEXT, created_at TEXT NOT NULL, settled_at TEXT);"
	"CREATE INDEX spend_ledger_day ON spend_ledger (day, provider);"
	"CREATE INDEX spend_ledger_run ON spend_ledger (run_id, provider);"
	"CREATE INDEX runs_queued ON runs (started_at) WHERE status = 'queued';"
	"ALTER TABLE model_providers ADD COLUMN rate_tokens DOUBLE PRECISION NOT NULL DEFAULT 1,"
	"  ADD COLUMN rate_filled_ms BIGINT NOT NULL DEFAULT 0;",
};

const int store_nmigrations = (int)(sizeof(store_lite_migrations) /
				    sizeof(store_lite_migrations[0]));

_Static_assert(sizeof(store_lite_migrations) / sizeof(store_lite_migrations[0]) ==
	       STORE_SCHEMA_VERSION, "one migration per schema version");
_Static_assert(sizeof(store_pg_migrations) == sizeof(store_lite_migrations),
	       "PostgreSQL's migrations in step with SQLite's");
