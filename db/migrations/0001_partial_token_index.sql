DROP INDEX "rollout_devices_token_idx";--> statement-breakpoint
CREATE INDEX "rollout_devices_token_idx" ON "rollout_devices" USING btree ("token") WHERE token is not null;