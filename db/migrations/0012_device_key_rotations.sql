CREATE TABLE "device_key_rotations" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "device_key_rotations_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"device_id" uuid NOT NULL,
	"old_key" text NOT NULL,
	"new_key" text NOT NULL,
	"old_fingerprint" text NOT NULL,
	"new_fingerprint" text NOT NULL,
	"sequence" numeric(20, 0) NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "device_key_rotations_old_fingerprint_hex" CHECK (old_fingerprint ~ '^[0-9a-f]{16}$'),
	CONSTRAINT "device_key_rotations_new_fingerprint_hex" CHECK (new_fingerprint ~ '^[0-9a-f]{16}$'),
	CONSTRAINT "device_key_rotations_sequence_u64" CHECK (sequence between 0 and 18446744073709551615)
);
--> statement-breakpoint
ALTER TABLE "device_key_rotations" ADD CONSTRAINT "device_key_rotations_device_id_devices_id_fk" FOREIGN KEY ("device_id") REFERENCES "public"."devices"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "device_key_rotations_old_key_idx" ON "device_key_rotations" USING btree ("device_id","old_key");--> statement-breakpoint
CREATE UNIQUE INDEX "device_key_rotations_new_key_idx" ON "device_key_rotations" USING btree ("device_id","new_key");