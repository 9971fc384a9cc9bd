import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { StorageTarget } from "../../contracts/StorageTargetTypes.js";
import { ENGINES, openTestStore } from "../../test/helpers/stores.js";
import { Store } from "../store/Store.js";
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
	it("keeps credentials and the SSE-C key encrypted in the database file, and decrypts them on get", async () => {
		dir = mkdtempSync(path.join(os.tmpdir(), "consentry-st-"));
		const file = path.join(dir, "store.sqlite");
		const masterKey = randomBytes(32);
		const db = await Store.open({ file });
		const store = new StorageTargetStore(db, new SecretBox(masterKey));
		await store.save("tenant-a", target);
		expect(await store.get("tenant-a")).toEqual(target);
		expect(await store.getConfig("tenant-a")).toMatchObject({
			bucket: "acme-recordings",
			encryption: { type: "SSE-C" },
		});
		expect(JSON.stringify(await store.getConfig("tenant-a"))).not.toContain(SSEC);
		await db.close();

		const bytes = rawBytes(file);
		expect(bytes.includes(Buffer.from("acme-recordings"))).toBe(true); // the scan sees clear text …
		for (const secret of [SECRET, ACCESS, TOKEN, SSEC, Buffer.from(SSEC, "base64").toString("hex")]) {
			expect(bytes.includes(Buffer.from(secret)), secret).toBe(false); // … and no secret is there in clear
		}
		expect(bytes.includes(Buffer.from(SSEC, "base64"))).toBe(false);

		const reopened = await Store.open({ file });
		expect(await new StorageTargetStore(reopened, new SecretBox(masterKey)).get("tenant-a")).toEqual(target);
		await expect(new StorageTargetStore(reopened, new SecretBox(randomBytes(32))).get("tenant-a")).rejects.toThrow(
			/sealed under another master key/,
		);
		await reopened.close();
	});
});

describe.each(ENGINES)("StorageTargetStore (%s)", (engine) => {
	it("replaces, keeps tenants apart, refuses a row's secrets pasted into another tenant, removes", async () => {
		const db = await openTestStore(engine);
		const store = new StorageTargetStore(db, new SecretBox(randomBytes(32)));
		await store.save("a", target);
		const b: StorageTarget = { ...target, bucket: "bee-bucket", encryption: { type: "SSE-S3" } };
		await store.save("b", b);
		await store.save("a", { ...target, prefix: "" });
		expect((await store.get("a"))?.prefix).toBe("");
		expect(store.current("a")?.prefix).toBe(""); // what the last read saw (the capture path's synchronous view)
		expect(await store.get("b")).toEqual(b);
		const aSecrets = await db.db
			.selectFrom("storage_targets")
			.select("secrets")
			.where("tenant_id", "=", "a")
			.executeTakeFirstOrThrow();
		await db.db
			.updateTable("storage_targets")
			.set({ secrets: aSecrets.secrets })
			.where("tenant_id", "=", "b")
			.execute();
		await expect(store.get("b")).rejects.toThrow(expect.objectContaining({ code: "secret_tampered" }));
		expect(await store.remove("a")).toBe(true);
		expect(await store.remove("a")).toBe(false);
		expect(await store.get("a")).toBeUndefined();
		await db.close();
	});

	it("validates the shape on save", async () => {
		const db = await openTestStore(engine);
		const store = new StorageTargetStore(db, new SecretBox(randomBytes(32)));
		await expect(store.save("a", { ...target, prefix: "../etc" })).rejects.toThrow(/prefix/);
		await db.close();
	});
});
