"""Streaming speech recognition with pocketsphinx, one audio stream per process.

Reads 16 kHz mono signed 16-bit little-endian PCM on stdin until EOF and writes
JSON lines on stdout (times in ms from the first byte of the stream):

  {"type": "ready"}                                            model loaded
  {"type": "partial", "text", "startMs", "endMs"}              while someone speaks
  {"type": "final", "text", "startMs", "endMs", "words": [{"word", "startMs", "endMs"}]}
                                                               per utterance (the VAD saw it end)
  {"type": "end", "audioMs"}                                   EOF reached, last utterance flushed
  {"type": "error", "message"}                                 then exit 1

Utterances are cut by pocketsphinx's Endpointer (WebRTC-style VAD over a
sliding window). Options come as one JSON argument (see OPTIONS). Nothing is
written to disk: the decoder's log goes to stderr, at error level.
"""

import json
import sys
from collections import deque

OPTIONS = {
    # Endpointer: window (s) over which `ratio` of the frames must be speech / non-speech to switch.
    "window": 0.3,
    "ratio": 0.9,
    # VAD aggressiveness 0 (loose) … 3 (strict).
    "vadMode": 0,
    # A partial at most this often (ms of audio), when its text changed.
    "partialIntervalMs": 300,
    # An utterance longer than this is cut (ms): long monologues still get finals.
    "maxUtteranceMs": 20000,
    # Audio from before the VAD's speech start fed to the decoder too (ms): without it the first word is
    # often lost (measured on flite speech: "please send" → "we send" with 0 ms, right from 100 ms on).
    "prerollMs": 200,
}
SAMPLE_RATE = 16000
FRAME_RATE = 100  # pocketsphinx feature frames per second (-frate)


def emit(message):
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def clean_word(word):
    """None for fillers (<s>, </s>, <sil>, [NOISE], …); alternate pronunciations lose their (2)."""
    if not word or word[0] in "<[":
        return None
    paren = word.find("(")
    return word[:paren] if paren > 0 else word


def main():
    opts = dict(OPTIONS)
    if len(sys.argv) > 1:
        opts.update(json.loads(sys.argv[1]))

    from pocketsphinx import Decoder, Endpointer, Vad

    decoder = Decoder(samprate=SAMPLE_RATE, loglevel="ERROR")
    modes = [Vad.LOOSE, Vad.MEDIUM_LOOSE, Vad.MEDIUM_STRICT, Vad.STRICT]
    endpointer = Endpointer(
        window=float(opts["window"]),
        ratio=float(opts["ratio"]),
        vad_mode=modes[max(0, min(3, int(opts["vadMode"])))],
        sample_rate=SAMPLE_RATE,
    )
    frame_bytes = endpointer.frame_bytes
    frame_ms = endpointer.frame_length * 1000.0
    partial_every = max(1, round(float(opts["partialIntervalMs"]) / frame_ms))
    max_utt_frames = max(10, round(float(opts["maxUtteranceMs"]) / frame_ms))
    preroll_ms = max(0.0, float(opts["prerollMs"]))
    # The endpointer answers `window` behind its input: keep enough input to find the pre-roll's frames.
    recent = deque(maxlen=int((float(opts["window"]) * 1000 + preroll_ms) / frame_ms) + 4)
    emit({"type": "ready", "frameMs": frame_ms})

    stdin = sys.stdin.buffer
    # start_ms: the VAD's speech start; origin_ms: where the decoder's audio (and its frame counts) begins.
    state = {"in_utt": False, "start_ms": 0.0, "origin_ms": 0.0, "frames": 0, "last_partial": ""}

    def start_utt(start_ms, preroll=True):
        decoder.start_utt()
        origin_ms = start_ms
        if preroll and preroll_ms > 0:
            before = [(t, f) for t, f in recent if start_ms - preroll_ms - frame_ms / 2 <= t < start_ms - frame_ms / 2]
            if before:
                origin_ms = before[0][0]
                decoder.process_raw(b"".join(f for _, f in before), False, False)
        state.update(in_utt=True, start_ms=start_ms, origin_ms=origin_ms, frames=0, last_partial="")

    def end_utt(end_ms):
        decoder.end_utt()
        state["in_utt"] = False
        hyp = decoder.hyp()
        words = []
        for seg in decoder.seg():
            word = clean_word(seg.word)
            if word is None:
                continue
            words.append(
                {
                    "word": word,
                    "startMs": round(state["origin_ms"] + seg.start_frame * 1000 / FRAME_RATE),
                    "endMs": round(state["origin_ms"] + (seg.end_frame + 1) * 1000 / FRAME_RATE),
                }
            )
        text = " ".join(w["word"] for w in words) if words else (hyp.hypstr.strip() if hyp else "")
        if text:
            emit(
                {
                    "type": "final",
                    "text": text,
                    "startMs": round(state["start_ms"]),
                    "endMs": round(max(end_ms, state["start_ms"])),
                    "words": words,
                }
            )

    def feed(speech, now_ms):
        decoder.process_raw(speech, False, False)
        state["frames"] += 1
        if state["frames"] % partial_every == 0:
            hyp = decoder.hyp()
            text = hyp.hypstr.strip() if hyp else ""
            if text and text != state["last_partial"]:
                state["last_partial"] = text
                emit({"type": "partial", "text": text, "startMs": round(state["start_ms"]), "endMs": round(now_ms)})

    position = 0  # bytes of the stream read so far
    while True:
        frame = stdin.read(frame_bytes)
        if len(frame) == frame_bytes:
            recent.append((position / 2 / SAMPLE_RATE * 1000, frame))
        position += len(frame)
        now_ms = position / 2 / SAMPLE_RATE * 1000
        if len(frame) < frame_bytes:
            # EOF: what the endpointer still holds (its window) is the end of the last utterance.
            # (end_stream takes at most a frame, and at least one sample: an empty read gets a frame of silence.)
            last = frame if frame else bytes(frame_bytes)
            speech = endpointer.end_stream(last) if endpointer.in_speech else None
            if speech is not None:
                if not state["in_utt"]:
                    start_utt(endpointer.speech_start * 1000)
                feed(speech, now_ms)
            break
        was_in_speech = endpointer.in_speech
        speech = endpointer.process(frame)
        if speech is None:
            continue
        if not was_in_speech or not state["in_utt"]:
            start_utt(endpointer.speech_start * 1000)
        feed(speech, now_ms)
        if not endpointer.in_speech:
            end_utt(endpointer.speech_end * 1000)
        elif state["frames"] >= max_utt_frames:
            # Cut a long utterance: the rest continues as a new one from here.
            end_utt(now_ms)
            start_utt(now_ms, preroll=False)
    if state["in_utt"]:
        end_utt(position / 2 / SAMPLE_RATE * 1000)
    emit({"type": "end", "audioMs": round(position / 2 / SAMPLE_RATE * 1000)})


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:
        sys.exit(0)
    except Exception as err:  # noqa: BLE001 - report anything as a protocol error
        try:
            emit({"type": "error", "message": f"{type(err).__name__}: {err}"})
        except Exception:  # noqa: BLE001
            pass
        sys.exit(1)
