import type { TranscriptionEngineSpec } from "../RecorderProtocol.js";
import type { RecorderConfig } from "../RecorderTypes.js";
import { PocketsphinxEngine } from "./PocketsphinxEngine.js";
import type { TranscriptionEngine } from "./TranscriptionEngineTypes.js";

export type {
	TranscriptionEngine,
	TranscriptionFailure,
	TranscriptionStream,
	TranscriptSegment,
	TranscriptWord,
} from "./TranscriptionEngineTypes.js";
export { PCM_BYTES_PER_MS, PCM_SAMPLE_RATE } from "./TranscriptionEngineTypes.js";

/**
 * The engine an `openTranscription` asks for: the embedded pocketsphinx (default), or AWS Transcribe Streaming
 * with the tenant's own region, credentials and language.
 */
export function createEngine(
	spec: TranscriptionEngineSpec,
	config: RecorderConfig,
	endpointPolicy: { allowHttp: boolean; allowPrivate: boolean },
): TranscriptionEngine {
	switch (spec.type) {
		case "pocketsphinx":
			return new PocketsphinxEngine({
				...(config.sttPythonPath ? { pythonPath: config.sttPythonPath } : {}),
				memoryLimitBytes: config.sttMemoryLimitBytes,
				maxRestarts: config.maxRestarts,
				restartWindowMs: config.restartWindowMs,
				...(spec.options ? { options: spec.options } : {}),
			});
		case "aws":
			// Loaded on first use: the AWS SDK stays out of recorders whose tenants don't use it.
			return {
				name: "aws",
				async open(options) {
					const { AwsTranscribeEngine } = await import("./AwsTranscribeEngine.js");
					return new AwsTranscribeEngine({
						region: spec.region,
						credentials: spec.credentials,
						languageCode: spec.languageCode,
						endpoint: spec.endpoint,
						vocabularyName: spec.vocabularyName,
						...endpointPolicy,
					}).open(options);
				},
			};
	}
}
