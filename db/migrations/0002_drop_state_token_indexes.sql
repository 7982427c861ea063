DROP INDEX "rollout_devices_state_idx";--> statement-breakpoint
DROP INDEX "rollout_devices_token_idx";