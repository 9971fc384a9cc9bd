import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { Page } from "playwright-core";

const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/** axe-core's WCAG 2.1 A/AA rules on the page as it is now; returns the violations, described. */
export async function axeViolations(page: Page): Promise<string[]> {
	// Evaluated over the DevTools protocol: the page's Content-Security-Policy does not apply to it.
	await page.evaluate(AXE);
	return page.evaluate(async () => {
		interface AxeResult {
			violations: { id: string; nodes: { target: string[]; failureSummary?: string }[] }[];
		}
		const axe = (window as unknown as { axe: { run(ctx: Document, o: unknown): Promise<AxeResult> } }).axe;
		const r = await axe.run(document, {
			runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
		});
		return r.violations.flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")} — ${n.failureSummary}`));
	});
}
