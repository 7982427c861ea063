CREATE TABLE "api_tokens" (
	"id" uuid PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"role" text NOT NULL,
	"hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_used_at" timestamp with time zone,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "api_tokens_hash_unique" UNIQUE("hash"),
	CONSTRAINT "api_tokens_role_known" CHECK (role in ('viewer', 'operator', 'admin')),
	CONSTRAINT "api_tokens_hash_hex" CHECK (hash ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "artifacts" (
	"digest" text PRIMARY KEY NOT NULL,
	"size" bigint,
	"url" text,
	"path" text,
	"content_type" text DEFAULT 'application/octet-stream' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "artifacts_digest_hex" CHECK (digest ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "artifacts_url_or_path" CHECK ((url is null) <> (path is null)),
	CONSTRAINT "artifacts_size_positive" CHECK (size >= 0)
);
--> statement-breakpoint
CREATE TABLE "devices" (
	"id" uuid PRIMARY KEY NOT NULL,
	"public_key" text NOT NULL,
	"tags" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"current_digest" text,
	"previous_digest" text,
	"last_seen_at" timestamp with time zone,
	"last_sequence" numeric(20, 0),
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "devices_last_sequence_u64" CHECK (last_sequence between 0 and 18446744073709551615),
	CONSTRAINT "devices_current_digest_hex" CHECK (current_digest ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "devices_previous_digest_hex" CHECK (previous_digest ~ '^[0-9a-f]{64}$')
);
--> statement-breakpoint
CREATE TABLE "events" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "events_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"rollout_id" uuid,
	"device_id" uuid,
	"type" text NOT NULL,
	"actor" text,
	"data" jsonb DEFAULT '{}'::jsonb NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "rollout_devices" (
	"rollout_id" uuid NOT NULL,
	"device_id" uuid NOT NULL,
	"position" integer NOT NULL,
	"state" text DEFAULT 'pending' NOT NULL,
	"token" text,
	"attempt" integer DEFAULT 0 NOT NULL,
	"deadline" bigint,
	"last_status" integer,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rollout_devices_rollout_id_device_id_pk" PRIMARY KEY("rollout_id","device_id"),
	CONSTRAINT "rollout_devices_last_status_byte" CHECK (last_status between 0 and 255),
	CONSTRAINT "rollout_devices_token_hex" CHECK (token ~ '^([0-9a-f]{2})+$'),
	CONSTRAINT "rollout_devices_attempt_nonnegative" CHECK (attempt >= 0)
);
--> statement-breakpoint
CREATE TABLE "rollouts" (
	"id" uuid PRIMARY KEY NOT NULL,
	"state" text DEFAULT 'running' NOT NULL,
	"stage" integer DEFAULT 0 NOT NULL,
	"artifact_digest" text NOT NULL,
	"artifact_url" text NOT NULL,
	"policy" jsonb NOT NULL,
	"policy_name" text NOT NULL,
	"policy_sha256" text NOT NULL,
	"policy_commit" text,
	"targets" jsonb NOT NULL,
	"device_count" integer NOT NULL,
	"halt_reason" text,
	"halt_device" uuid,
	"snapshot" jsonb,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "rollouts_state_known" CHECK (state in ('running', 'paused', 'waiting_approval', 'halted', 'completed', 'cancelled')),
	CONSTRAINT "rollouts_digest_hex" CHECK (artifact_digest ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "rollouts_policy_sha256_hex" CHECK (policy_sha256 ~ '^[0-9a-f]{64}$'),
	CONSTRAINT "rollouts_stage_nonnegative" CHECK (stage >= 0)
);
--> statement-breakpoint
CREATE TABLE "server_state" (
	"key" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
ALTER TABLE "rollout_devices" ADD CONSTRAINT "rollout_devices_rollout_id_rollouts_id_fk" FOREIGN KEY ("rollout_id") REFERENCES "public"."rollouts"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_live_name_idx" ON "api_tokens" USING btree ("name") WHERE revoked_at is null;--> statement-breakpoint
CREATE INDEX "devices_tags_idx" ON "devices" USING gin ("tags" jsonb_path_ops);--> statement-breakpoint
CREATE INDEX "events_rollout_idx" ON "events" USING btree ("rollout_id","id");--> statement-breakpoint
CREATE INDEX "events_device_idx" ON "events" USING btree ("device_id","id");--> statement-breakpoint
CREATE UNIQUE INDEX "rollout_devices_position_idx" ON "rollout_devices" USING btree ("rollout_id","position");--> statement-breakpoint
CREATE INDEX "rollout_devices_state_idx" ON "rollout_devices" USING btree ("rollout_id","state");--> statement-breakpoint
CREATE INDEX "rollout_devices_token_idx" ON "rollout_devices" USING btree ("token");--> statement-breakpoint
CREATE INDEX "rollout_devices_device_idx" ON "rollout_devices" USING btree ("device_id");--> statement-breakpoint
CREATE INDEX "rollouts_state_idx" ON "rollouts" USING btree ("state");