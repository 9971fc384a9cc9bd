import { readdirSync, readFileSync, readlinkSync, statSync } from "node:fs";

export interface WritableFile {
	pid: number;
	fd: number;
	path: string;
	flags: string;
}

/** The open file descriptors of `pid` that are regular files opened for writing (O_WRONLY or O_RDWR). */
export function writableRegularFiles(pid: number): WritableFile[] {
	const found: WritableFile[] = [];
	for (const name of readdirSync(`/proc/${pid}/fd`)) {
		const fd = Number(name);
		let target: string;
		let flags: string;
		try {
			target = readlinkSync(`/proc/${pid}/fd/${fd}`);
			flags = /^flags:\s*([0-7]+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"))?.[1] ?? "0";
			if (!statSync(`/proc/${pid}/fd/${fd}`).isFile()) continue; // pipes, sockets, devices, anon inodes
		} catch {
			continue; // closed meanwhile
		}
		const accessMode = Number.parseInt(flags, 8) & 0o3;
		if (accessMode === 0o1 || accessMode === 0o2) found.push({ pid, fd, path: target, flags });
	}
	return found;
}

/** Every fd of `pid` as `fd → target` (for failure messages). */
export function describeFds(pid: number): string[] {
	return readdirSync(`/proc/${pid}/fd`).map((fd) => {
		try {
			return `${fd} → ${readlinkSync(`/proc/${pid}/fd/${fd}`)}`;
		} catch {
			return `${fd} → ?`;
		}
	});
}

/** PIDs whose parent is `ppid`, with their command names. */
export function childrenOf(ppid: number): { pid: number; comm: string }[] {
	const out: { pid: number; comm: string }[] = [];
	for (const name of readdirSync("/proc")) {
		if (!/^\d+$/.test(name)) continue;
		try {
			const stat = readFileSync(`/proc/${name}/stat`, "utf8");
			const close = stat.lastIndexOf(")");
			const comm = stat.slice(stat.indexOf("(") + 1, close);
			const parent = Number(stat.slice(close + 2).split(" ")[1]);
			if (parent === ppid) out.push({ pid: Number(name), comm });
		} catch {
			// gone
		}
	}
	return out;
}

/** True while `pid` exists (and is not a zombie). */
export function isRunning(pid: number): boolean {
	try {
		const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
		return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
	} catch {
		return false;
	}
}
