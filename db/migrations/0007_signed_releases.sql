ALTER TABLE "artifacts" ADD COLUMN "manifest" text;--> statement-breakpoint
ALTER TABLE "devices" ADD COLUMN "frame_version" integer;--> statement-breakpoint
ALTER TABLE "devices" ADD CONSTRAINT "devices_frame_version_known" CHECK (frame_version between 1 and 3);