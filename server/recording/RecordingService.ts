import type { CaptureSink } from "../compliance/CaptureService.js";
import { ConsentryError } from "../errors.js";
import type { Meeting } from "../meetings/MeetingTypes.js";
import type { StorageTargetStore } from "../storage/StorageTargetStore.js";

export interface RecordingServiceOptions {
	/** Undefined when the gateway has no master key: no tenant can have a storage target. */
	targets: StorageTargetStore | undefined;
}

/**
 * Recording, as a capture sink: it may start only where the tenant's own bucket
 * is configured (the operator provides no storage).
 */
export class RecordingService implements CaptureSink {
	readonly #targets: StorageTargetStore | undefined;

	constructor(options: RecordingServiceOptions) {
		this.#targets = options.targets;
	}

	async assertCanStart(meeting: Meeting): Promise<void> {
		if (!this.#targets?.getConfig(meeting.tenantId)) {
			throw new ConsentryError(
				"no_storage_target",
				"Recording needs your organisation's storage bucket, and none is set up. Ask your administrator to configure it (PUT /api/storage-target).",
				409,
			);
		}
	}
}
