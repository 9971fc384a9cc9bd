import { $, h } from "./dom.js";
import { formatTime, onLocaleChange, t, tMaybe } from "./i18n/index.js";

interface TenantRow {
	id: string;
	name: string;
	state: "active" | "suspended" | "terminated";
	reason: string | null;
}

interface MeetingRow {
	id: string;
	tenantId: string;
	host: string | null;
	startedAt: string | null;
	size: number;
	capture: { recording: string; transcription: string };
	disabled: boolean;
}

type Action = { url: string; confirm: string; label: string };

/**
 * `/operator`: the service operator's console (docs/operator.md). It calls the operator API with the operator's
 * token (from the URL fragment, `#token=…`, kept for the tab only): tenants (suspend, reinstate) and live meetings
 * (end, disable), every action behind a confirmation that asks for the reason (it lands in the tenant's audit chain).
 */
export function showOperatorConsole(token: string | undefined): void {
	const screen = $("#operator-screen");
	for (const s of document.querySelectorAll<HTMLElement>(".screen")) s.hidden = s !== screen;
	document.title = t("op.title");
	const error = $("#operator-error");
	let tenants: TenantRow[] = [];
	let meetings: MeetingRow[] = [];
	let hold: { until: string; reason: string; setBy: string } | null = null;

	const call = async (method: string, url: string, body?: unknown): Promise<Record<string, unknown>> => {
		const res = await fetch(url, {
			method,
			headers: {
				...(token ? { authorization: `Bearer ${token}` } : {}),
				...(body ? { "content-type": "application/json" } : {}),
			},
			...(body ? { body: JSON.stringify(body) } : {}),
		});
		const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
		if (!res.ok) throw Object.assign(new Error(String(json.message ?? res.status)), { code: String(json.code ?? "") });
		return json;
	};
	const fail = (err: unknown) => {
		const code = (err as { code?: string }).code ?? "";
		error.textContent = tMaybe(`op.error.${code}`) ?? t("op.error", { code: code || (err as Error).message });
	};

	const render = () => {
		// Issue 14: the security hold on log files (set and lifted through the operator API, docs/operator.md).
		$("#operator-hold").textContent = hold
			? t("op.hold.on", { until: formatTime(new Date(hold.until)), reason: hold.reason, by: hold.setBy })
			: t("op.hold.none");
		$("#operator-tenants").replaceChildren(
			h("tr", {}, h("th", {}, t("op.tenant")), h("th", {}, t("op.state")), h("th", {}, "")),
			...tenants.map((x) =>
				h(
					"tr",
					{ "data-tenant": x.id },
					h("td", {}, `${x.name} (${x.id})`),
					h("td", {}, t(`op.state.${x.state}`) + (x.reason ? ` — ${x.reason}` : "")),
					h(
						"td",
						{},
						x.state === "active"
							? button({
									url: `/api/operator/tenants/${x.id}/suspend`,
									label: t("op.suspend"),
									confirm: t("op.confirm.suspend", { id: x.id }),
								})
							: x.state === "suspended"
								? button({
										url: `/api/operator/tenants/${x.id}/reinstate`,
										label: t("op.reinstate"),
										confirm: t("op.confirm.reinstate", { id: x.id }),
									})
								: "",
					),
				),
			),
		);
		$("#operator-meetings").replaceChildren(
			h(
				"tr",
				{},
				h("th", {}, t("op.tenant")),
				h("th", {}, t("op.host")),
				h("th", {}, t("op.started")),
				h("th", {}, t("op.size")),
				h("th", {}, t("op.capture")),
				h("th", {}, ""),
			),
			...meetings.map((m) =>
				h(
					"tr",
					{ "data-meeting": m.id },
					h("td", {}, m.tenantId),
					h("td", { title: m.host ?? "" }, m.host ? `${m.host.slice(0, 12)}…` : ""),
					h("td", {}, m.startedAt ? formatTime(new Date(m.startedAt)) : ""),
					h("td", {}, String(m.size)),
					h("td", {}, `${m.capture.recording} / ${m.capture.transcription}`),
					h(
						"td",
						{},
						button({
							url: `/api/operator/meetings/${m.id}/end`,
							label: t("op.end"),
							confirm: t("op.confirm.end", { tenant: m.tenantId }),
						}),
						" ",
						button({
							url: `/api/operator/meetings/${m.id}/disable`,
							label: t("op.disable"),
							confirm: t("op.confirm.disable", { tenant: m.tenantId }),
						}),
					),
				),
			),
		);
		if (meetings.length === 0)
			$("#operator-meetings").append(h("tr", {}, h("td", { colspan: "6" }, t("op.noMeetings"))));
	};

	const button = (a: Action) => {
		const b = h("button", { type: "button", class: "danger" }, a.label);
		b.addEventListener("click", () => void confirmAndRun(a));
		return b;
	};

	const confirmAndRun = async (a: Action) => {
		const dialog = $<HTMLDialogElement>("#operator-dialog");
		const reason = $<HTMLInputElement>("#operator-reason");
		$("#operator-dialog-text").textContent = a.confirm;
		$("#operator-confirm").textContent = a.label;
		reason.value = "";
		dialog.showModal();
		const answer = await new Promise<string>((resolve) =>
			dialog.addEventListener("close", () => resolve(dialog.returnValue), { once: true }),
		);
		if (answer !== "ok" || !reason.value.trim()) return;
		try {
			await call("POST", a.url, { reason: reason.value.trim() });
			error.textContent = "";
		} catch (err) {
			fail(err);
		}
		await refresh();
	};

	const refresh = async () => {
		try {
			const [ts, ms, hs] = await Promise.all([
				call("GET", "/api/operator/tenants"),
				call("GET", "/api/operator/meetings"),
				call("GET", "/api/operator/security-hold").catch(() => ({ hold: null })),
			]);
			tenants = ts.tenants as TenantRow[];
			meetings = ms.meetings as MeetingRow[];
			hold = hs.hold as typeof hold;
			error.textContent = "";
		} catch (err) {
			fail(err);
		}
		render();
	};

	$("#operator-refresh").addEventListener("click", () => void refresh());
	onLocaleChange(() => {
		document.title = t("op.title");
		render();
	});
	if (!token) error.textContent = t("op.noToken");
	void refresh();
	setInterval(() => {
		if (!$<HTMLDialogElement>("#operator-dialog").open) void refresh();
	}, 5000);
}
