CREATE TABLE "artifact_chunks" (
	"blob" uuid NOT NULL,
	"start" bigint NOT NULL,
	"data" "bytea" NOT NULL,
	CONSTRAINT "artifact_chunks_blob_start_pk" PRIMARY KEY("blob","start"),
	CONSTRAINT "artifact_chunks_start_positive" CHECK (start >= 0)
);
--> statement-breakpoint
ALTER TABLE "artifacts" DROP CONSTRAINT "artifacts_url_or_path";--> statement-breakpoint
ALTER TABLE "artifacts" ADD COLUMN "blob" uuid;--> statement-breakpoint
ALTER TABLE "artifacts" ADD CONSTRAINT "artifacts_url_or_path" CHECK (num_nonnulls(url, path, blob) = 1);