ALTER TABLE "rollouts" DROP CONSTRAINT "rollouts_action_known";--> statement-breakpoint
ALTER TABLE "rollouts" DROP CONSTRAINT "rollouts_artifact_unless_rollback";--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "server_key" text;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "server_key" text;--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_server_key_fingerprint" CHECK (server_key ~ '^[0-9a-f]{16}$');--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_server_key_if_rotate" CHECK ((action = 'rotate-key') = (server_key is not null) and server_key ~ '^[0-9a-f]{16}$');--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_action_known" CHECK (action in ('update', 'rollback', 'rotate-key'));--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_artifact_unless_rollback" CHECK ((action <> 'update') = (artifact_digest is null) and (artifact_digest is null) = (artifact_url is null));