ALTER TABLE "rollouts" DROP CONSTRAINT "rollouts_state_known";--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "joined" integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "start_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_joined_within_devices" CHECK (joined between 0 and device_count);--> statement-breakpoint
ALTER TABLE "rollouts" ADD CONSTRAINT "rollouts_state_known" CHECK (state in ('scheduled', 'running', 'paused', 'waiting_approval', 'halted', 'completed', 'cancelled'));