# storybot — one container runs the scheduler and the web endpoints.
#   docker build -t storybot .                         (offline default)
#   docker build --build-arg EXTRAS=postgres,mastodon -t storybot .
FROM python:3.11-slim

ARG EXTRAS=postgres
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STORYBOT_CONFIG=/config/config.toml \
    STORYBOT_ALEMBIC_DIR=/app/alembic

# espeak-ng speaks the offline narration; ffmpeg itself ships inside imageio-ffmpeg.
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng fonts-dejavu-core curl \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY story_state ./story_state
COPY generation ./generation
COPY alembic ./alembic
COPY alembic.ini ./
RUN pip install ".[${EXTRAS}]"

# The default config, rewritten for the container: database and media under /data,
# web on all interfaces so the published port reaches it.
COPY config.toml /config/config.toml
RUN sed -i \
      -e 's|^url = "sqlite:///storybot.db"|url = "sqlite:////data/storybot.db"|' \
      -e 's|^root = "media"|root = "/data/media"|' \
      -e 's|^host = "127.0.0.1"|host = "0.0.0.0"|' \
      /config/config.toml \
    && useradd --create-home --uid 10001 storybot \
    && mkdir -p /data \
    && chown storybot:storybot /data

USER storybot
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1

CMD ["storybot", "run"]
