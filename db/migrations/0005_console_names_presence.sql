ALTER TABLE "artifacts" ADD COLUMN "name" text;--> statement-breakpoint
ALTER TABLE "artifacts" ADD COLUMN "version" text;--> statement-breakpoint
ALTER TABLE "artifacts" ADD COLUMN "release_notes" text;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "online" boolean;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "name" text;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "description" text;--> statement-breakpoint
ALTER TABLE "rollouts" ADD COLUMN "created_by" text;