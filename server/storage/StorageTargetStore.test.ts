import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { openDatabase } from "../store/Database.js";
import { StorageTargetStore } from "./StorageTargetStore.js";
import { SecretBox } from "./secretBox.js";

const SECRET = `SECRETKEY-${randomBytes(12).toString("hex")}`;
const ACCESS = `AKIA${randomBytes(8).toString("hex").toUpperCase()}`;
const TOKEN = `SESSIONTOKEN-${randomBytes(12).toString("hex")}`;
const SSEC = randomBytes(32).toString("base64");

const target: StorageTarget = {
	endpoint: "https://s3.eu-west-1.amazonaws.com",
	region: "eu-west-1",
	bucket: "acme-recordings",
	prefix: "consentry/acme",
	credentials: { accessKeyId: ACCESS, secretAccessKey: SECRET, sessionToken: TOKEN },
	forcePathStyle: false,
	encryption: { type: "SSE-C", key: SSEC },
};

let dir: string | undefined;
afterEach(() => {
	if (dir) rmSync(dir, { recursive: true, force: true });
	dir = undefined;
});

function rawBytes(file: string): Buffer {
	return Buffer.concat([file, `${file}-wal`].filter((f) => existsSync(f)).map((f) => readFileSync(f)));
}

describe("StorageTargetStore", () => {
	it("keeps credentials and the SSE-C key encrypted in the database file, and decrypts them on get", () => {
		dir = mkdtempSync(path.join(os.tmpdir(), "consentry-st-"));
		const file = path.join(dir, "store.sqlite");
		const masterKey = randomBytes(32);
		const db = openDatabase(file);
		const store = new StorageTargetStore(db, new SecretBox(masterKey));
		store.save("tenant-a", target);
		expect(store.get("tenant-a")).toEqual(target);
		expect(store.getConfig("tenant-a")).toMatchObject({ bucket: "acme-recordings", encryption: { type: "SSE-C" } });
		expect(JSON.stringify(store.getConfig("tenant-a"))).not.toContain(SSEC);
		db.close();

		const bytes = rawBytes(file);
		expect(bytes.includes(Buffer.from("acme-recordings"))).toBe(true); // the scan sees clear text …
		for (const secret of [SECRET, ACCESS, TOKEN, SSEC, Buffer.from(SSEC, "base64").toString("hex")]) {
			expect(bytes.includes(Buffer.from(secret)), secret).toBe(false); // … and no secret is there in clear
		}
		expect(bytes.includes(Buffer.from(SSEC, "base64"))).toBe(false);

		const reopened = openDatabase(file);
		expect(new StorageTargetStore(reopened, new SecretBox(masterKey)).get("tenant-a")).toEqual(target);
		expect(() => new StorageTargetStore(reopened, new SecretBox(randomBytes(32))).get("tenant-a")).toThrow(
			/sealed under another master key/,
		);
		reopened.close();
	});

	it("replaces, keeps tenants apart, refuses a row's secrets pasted into another tenant, removes", () => {
		const db = openDatabase(":memory:");
		const store = new StorageTargetStore(db, new SecretBox(randomBytes(32)));
		store.save("a", target);
		const b: StorageTarget = { ...target, bucket: "bee-bucket", encryption: { type: "SSE-S3" } };
		store.save("b", b);
		store.save("a", { ...target, prefix: "" });
		expect(store.get("a")?.prefix).toBe("");
		expect(store.get("b")).toEqual(b);
		db.prepare(
			"UPDATE storage_targets SET secrets = (SELECT secrets FROM storage_targets WHERE tenant_id = 'a') WHERE tenant_id = 'b'",
		).run();
		expect(() => store.get("b")).toThrow(expect.objectContaining({ code: "secret_tampered" }));
		expect(store.remove("a")).toBe(true);
		expect(store.remove("a")).toBe(false);
		expect(store.get("a")).toBeUndefined();
		db.close();
	});

	it("validates the shape on save", () => {
		const db = openDatabase(":memory:");
		const store = new StorageTargetStore(db, new SecretBox(randomBytes(32)));
		expect(() => store.save("a", { ...target, prefix: "../etc" })).toThrow(/prefix/);
		db.close();
	});
});
