ALTER TABLE "rollouts" ALTER COLUMN "artifact_digest" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "rollouts" ALTER COLUMN "artifact_url" DROP NOT NULL;--> statement-breakpoint
ALTER TABLE "rollout_devices" ADD COLUMN "digest" text;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "action" text DEFAULT 'update' NOT NULL;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "rollback_of" uuid;--> statement-breakpoint
CREATE INDEX "rollouts_rollback_of_idx" ON "rollouts" USING btree ("rollback_of");--> statement-breakpoint
ALTER TABLE "rollout_devices" ADD CONSTRAINT "rollout_devices_digest_hex" CHECK (digest ~ '^[0-9a-f]{64}$');--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_action_known" CHECK (action in ('update', 'rollback'));--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_artifact_unless_rollback" CHECK ((action = 'rollback') = (artifact_digest is null) and (artifact_digest is null) = (artifact_url is null));