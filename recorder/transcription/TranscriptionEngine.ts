import type { RecorderConfig } from "../../contracts/RecorderConfig.js";
import type { TranscriptionEngineSpec } from "../../contracts/RecorderProtocol.js";
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
 * The engine an `openTranscription` asks for: the embedded pocketsphinx (default), AWS Transcribe Streaming
 * with the tenant's own region, credentials and language, or a server the customer runs: Vosk (WebSocket) or an
 * OpenAI-compatible `/v1/audio/transcriptions` (whisper servers).
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
		case "vosk":
			return {
				name: "vosk",
				async open(options) {
					const { VoskEngine } = await import("./VoskEngine.js");
					return new VoskEngine({ endpoint: spec.endpoint, languageCode: spec.languageCode, ...endpointPolicy }).open(
						options,
					);
				},
			};
		case "openai":
			return {
				name: "openai",
				async open(options) {
					const { OpenAiTranscriptionEngine } = await import("./OpenAiTranscriptionEngine.js");
					return new OpenAiTranscriptionEngine({
						endpoint: spec.endpoint,
						model: spec.model,
						apiKey: spec.apiKey,
						languageCode: spec.languageCode,
						maxUtteranceMs: spec.maxUtteranceMs,
						...endpointPolicy,
					}).open(options);
				},
			};
	}
}
