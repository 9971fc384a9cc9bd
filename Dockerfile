# consentry gateway image (Debian 12 + Node 20). The mediasoup worker is built from the
# npm package against Debian's libraries exactly as scripts/setup.sh does on a host.
FROM node:20-bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      g++ make patch pkg-config python3 python3-venv meson ninja-build libuv1-dev libssl-dev libsrtp2-dev \
      libflatbuffers-dev flatbuffers-compiler libabsl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY scripts/mediasoup-worker scripts/mediasoup-worker
RUN CONSENTRY_CACHE_DIR=/opt/consentry scripts/mediasoup-worker/build.sh | tail -1 > /opt/worker-path
RUN MEDIASOUP_WORKER_BIN=$(cat /opt/worker-path) npm install --no-audit --no-fund  # see scripts/setup.sh: not npm ci
COPY . .
# The embedded transcription engine (pocketsphinx, bundled English model) in its own venv, as scripts/setup.sh does.
RUN python3 -m venv /app/.venv-stt && /app/.venv-stt/bin/pip install --no-cache-dir pocketsphinx==5.1.1
RUN npm run build && npm prune --omit=dev \
    && cp recorder/transcription/pocketsphinx_stream.py dist/recorder/transcription/ \
    && mkdir -p node_modules/mediasoup/worker/out/Release \
    && cp "$(cat /opt/worker-path)" node_modules/mediasoup/worker/out/Release/mediasoup-worker

FROM node:20-bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libuv1 libssl3 libsrtp2-1 libabsl20220623 ffmpeg python3 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY --from=build /app/.venv-stt .venv-stt
RUN mkdir -p /app/data && chown node:node /app/data
ENV NODE_ENV=production CONSENTRY_HTTP_HOST=0.0.0.0 CONSENTRY_RTC_LISTEN_IP=0.0.0.0
USER node
EXPOSE 8080
CMD ["node", "dist/server/main.js"]
