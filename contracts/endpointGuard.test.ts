import { describe, expect, it } from "vitest";
import { assertEndpointAllowed, forbiddenReason, type LookupAll } from "./endpointGuard.js";

const resolvesTo =
	(...addresses: string[]): LookupAll =>
	async () =>
		addresses.map((address) => ({ address, family: address.includes(":") ? 6 : 4 }));

describe("assertEndpointAllowed", () => {
	it("refuses cloud metadata addresses and names even with allowPrivate, naming the address", async () => {
		const open = { allowPrivate: true, allowHttp: true };
		for (const url of [
			"http://169.254.169.254/latest/meta-data",
			"https://[fd00:ec2::254]/",
			"http://metadata.google.internal/computeMetadata/v1",
			"https://[::ffff:169.254.169.254]/", // IPv4-mapped (the URL parser normalizes it to ::ffff:a9fe:a9fe)
		]) {
			await expect(assertEndpointAllowed(url, open), url).rejects.toMatchObject({
				code: "endpoint_forbidden",
				message: expect.stringMatching(/169\.254\.169\.254|fd00:ec2::254|metadata\.google\.internal/),
			});
		}
		await expect(
			assertEndpointAllowed("https://evil.example", { ...open, lookup: resolvesTo("169.254.169.254") }),
		).rejects.toThrow(/169\.254\.169\.254 \(evil\.example resolves to it\) is a cloud metadata/);
	});

	it("refuses link-local always, and private ranges unless allowPrivate", async () => {
		await expect(assertEndpointAllowed("https://169.254.10.1", { allowPrivate: true })).rejects.toThrow(/link-local/);
		await expect(assertEndpointAllowed("https://[fe80::1]", { allowPrivate: true })).rejects.toThrow(/link-local/);
		for (const url of [
			"https://10.0.0.1",
			"https://172.16.5.4",
			"https://192.168.1.1",
			"https://127.0.0.1",
			"https://100.64.0.1",
			"https://[::1]",
			"https://[fd12::1]",
		]) {
			await expect(assertEndpointAllowed(url), url).rejects.toMatchObject({
				code: "endpoint_forbidden",
				message: expect.stringContaining("private-network"),
			});
			await expect(assertEndpointAllowed(url, { allowPrivate: true }), url).resolves.toHaveLength(1);
		}
	});

	it("refuses a hostname resolving to loopback without allowPrivate (any of its addresses), allows it with", async () => {
		await expect(
			assertEndpointAllowed("https://s3.attacker.example", { lookup: resolvesTo("127.0.0.1") }),
		).rejects.toThrow(/127\.0\.0\.1 \(s3\.attacker\.example resolves to it\)/);
		await expect(
			assertEndpointAllowed("https://s3.mixed.example", { lookup: resolvesTo("93.184.216.34", "10.1.2.3") }),
		).rejects.toThrow(/10\.1\.2\.3/);
		// the real resolver: localhost → 127.0.0.1 (and maybe ::1)
		await expect(assertEndpointAllowed("https://localhost:9000")).rejects.toMatchObject({ code: "endpoint_forbidden" });
		await expect(assertEndpointAllowed("https://localhost:9000", { allowPrivate: true })).resolves.toContain(
			"127.0.0.1",
		);
		await expect(
			assertEndpointAllowed("http://127.0.0.1:9000", { allowPrivate: true, allowHttp: true }),
		).resolves.toEqual(["127.0.0.1"]);
		await expect(
			assertEndpointAllowed("https://s3.example.com", { lookup: resolvesTo("93.184.216.34") }),
		).resolves.toEqual(["93.184.216.34"]);
	});

	it("refuses http unless allowed, and reports an unresolvable host", async () => {
		await expect(assertEndpointAllowed("http://127.0.0.1:9000", { allowPrivate: true })).rejects.toThrow(/https/);
		await expect(assertEndpointAllowed("https://no-such-host.invalid")).rejects.toMatchObject({
			code: "endpoint_unresolvable",
			message: expect.stringContaining("no-such-host.invalid"),
		});
	});

	it("refuses every IPv6 form that embeds the metadata address, by URL or by DNS answer, even with allowPrivate", async () => {
		const open = { allowPrivate: true, allowHttp: true };
		const forms = {
			"IPv4-mapped": "::ffff:a9fe:a9fe",
			"IPv4-translated": "::ffff:0:a9fe:a9fe",
			"IPv4-compatible": "::a9fe:a9fe",
			NAT64: "64:ff9b::a9fe:a9fe",
			"local-use NAT64 /48": "64:ff9b:1:a9fe:a9:fe00::",
			"local-use NAT64 /96": "64:ff9b:1::a9fe:a9fe",
			"6to4": "2002:a9fe:a9fe::1",
			"Teredo server": "2001:0:a9fe:a9fe::1",
			"Teredo client": "2001:0:4136:e378:8000:63bf:5601:5601",
		};
		for (const [form, address] of Object.entries(forms)) {
			expect(forbiddenReason(address, open), form).toContain(`169.254.169.254 embedded in it (${form})`);
			await expect(assertEndpointAllowed(`https://[${address}]/`, open), form).rejects.toMatchObject({
				code: "endpoint_forbidden",
				message: expect.stringContaining("cloud metadata"),
			});
			await expect(
				assertEndpointAllowed("https://s3.rebind.example", { ...open, lookup: resolvesTo(address) }),
				form,
			).rejects.toThrow(/169\.254\.169\.254/);
		}
		// The same forms around a public IPv4 address are fine; private ones only with allowPrivate.
		expect(forbiddenReason("64:ff9b::5db8:d822", {})).toBeUndefined();
		expect(forbiddenReason("2002:5db8:d822::1", {})).toBeUndefined();
		expect(forbiddenReason("2002:0a00:0001::1", {})).toMatch(/10\.0\.0\.1 embedded in it \(6to4\),.*private/);
		expect(forbiddenReason("2002:0a00:0001::1", { allowPrivate: true })).toBeUndefined();
		expect(forbiddenReason("::7f00:1", {})).toMatch(/IPv4-compatible/);
	});

	it("classifies embedded IPv4 and public IPv6", () => {
		expect(forbiddenReason("64:ff9b::a00:1", {})).toMatch(/private/); // NAT64 of 10.0.0.1
		expect(forbiddenReason("::ffff:127.0.0.1", { allowPrivate: true })).toBeUndefined();
		expect(forbiddenReason("2606:4700::1111", {})).toBeUndefined();
		expect(forbiddenReason("0.0.0.0", { allowPrivate: true })).toMatch(/unspecified/);
	});
});
