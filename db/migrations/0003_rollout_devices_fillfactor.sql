-- Custom SQL migration file, put your code below! --
-- drizzle's schema cannot express storage parameters, so this migration is written by hand (the
-- one kind drizzle-kit leaves to us: `db:generate --custom`). Free space on each page lets the
-- engine's frequent row rewrites be HOT updates, which touch no index.
ALTER TABLE "rollout_devices" SET (fillfactor = 50);--> statement-breakpoint
ALTER TABLE "devices" SET (fillfactor = 80);
